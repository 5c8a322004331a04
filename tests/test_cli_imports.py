"""A local-hub ``hubsync`` does not load the Supabase or EXAI clients.

supabase-py (with supabase_auth, tuspy, postgrest...) costs every CLI start ~0.35 s
and the suite runs the CLI hundreds of times; one eager import anywhere on the way
brings it back, so the real commands run here in one process and its modules are
checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SUPABASE = {"supabase", "supabase_auth", "tusclient", "postgrest", "storage3", "realtime"}
CLIENTS = {"websockets", "httpx"}
"""The EXAI WebSocket client and the HTTP client: only commands that talk to a server."""
CHARTS = {"numpy", "matplotlib"}
"""Only ``hubsync report`` draws charts (sqlite_utils would load numpy: sync.journal.sqlite_db)."""

PROBE = """
import json, sys
from agent.cli.main import main

steps = []
for argv in json.loads(sys.argv[1]):
    sys.argv = ["hubsync", *argv]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    loaded = sorted({m.split(".")[0] for m in sys.modules})
    steps.append({"argv": argv, "code": code, "loaded": loaded})
sys.stderr.write("\\nPROBE " + json.dumps(steps) + "\\n")
"""


def _run_commands(home: Path, commands: list[list[str]]) -> list[tuple[int, set[str]]]:
    """Each command's exit code and the top-level packages loaded once it ran."""
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    for name in ("SUPABASE_URL", "SUPABASE_ANON_KEY"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("PROBE "))
    return [(s["code"], set(s["loaded"])) for s in json.loads(line.removeprefix("PROBE "))]


def test_local_hub_commands_load_no_supabase_nor_network_clients(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("one")
    commands = [["--help"], ["add", str(docs)], ["sync", "--once"], ["status"], ["list"]]
    *local, whoami = _run_commands(tmp_path / "home", [*commands, ["whoami"]])
    for argv, (code, loaded) in zip(commands, local, strict=True):
        assert code == 0, argv
        assert loaded & SUPABASE == set(), argv
        assert loaded & CLIENTS == set(), argv
        assert loaded & CHARTS == set(), argv
    # The probe does see a Supabase command load it: whoami (not configured here)
    # fails with a message, having loaded supabase-py to try.
    code, loaded = whoami
    assert code == 1
    assert loaded & SUPABASE == SUPABASE
