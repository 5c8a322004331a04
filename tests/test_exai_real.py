"""HubSync beside the real EXAI daemon (issue 13): no shared disk (EXAI downloads the hub
file itself), a JWT in hello, and Ctrl-C reaching the server as ``cancel``.

The CLI runs as its own process (``python -m agent``) against the Supabase test server
and the EXAI test server, which behaves like the real daemon: its ``smart_file_query``
reads only server paths and its ``smart_file_download`` fetches from Supabase Storage
with the service key into its own disk (a temp folder, not shared with the CLI).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli.exai import exai_app
from tests.exai_server import ExaiTestServer
from tests.fixtures.exai import threaded_exai_server
from tests.fixtures.supabase import SupabaseUser
from tests.supabase_server import SupabaseTestServer

pytest_plugins = ["tests.fixtures.supabase"]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "real-exai-token-0123456789"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJodWJzeW5jIn0.c2lnbmF0dXJl"
QUESTION = "What are the quarterly numbers?"
CLI = [sys.executable, "-m", "agent"]


def sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "docs" / "Q3 notes.md"
    path.parent.mkdir()
    path.write_text("# Q3\nRevenue up 12%, costs flat.\n" * 40)
    return path


def base_env(home: Path, server: ExaiTestServer) -> dict[str, str]:
    env = {
        **os.environ,
        "HUBSYNC_HOME": str(home),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "HUBSYNC_ALLOW_FILE_SECRETS": "1",
        "EXAI_WS_HOST": "127.0.0.1",
        "EXAI_WS_PORT": str(server.port),
        "EXAI_WS_TOKEN": TOKEN,
    }
    for name in ("SUPABASE_URL", "SUPABASE_ANON_KEY", "EXAI_WS_JWT", "SUPABASE_SERVICE_ROLE_KEY"):
        env.pop(name, None)
    return env


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60
    )


@pytest.fixture
def signed_in(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> Iterator[tuple[dict[str, str], ExaiTestServer]]:
    """The CLI signed in to the Supabase test server; an EXAI server (requiring nothing
    beyond its token) that downloads from that Supabase with the service key."""
    with threaded_exai_server(
        token=TOKEN,
        progress_interval=0.05,
        supabase_url=supabase_server.url,
        service_key=supabase_server.service_key,
    ) as exai:
        env = {
            **base_env(tmp_path / "home", exai),
            "SUPABASE_URL": supabase_server.url,
            "SUPABASE_ANON_KEY": supabase_server.anon_key,
        }
        login = run(env, "login", "--email", supabase_user.email, "--password-stdin",
                    stdin=supabase_user.password + "\n")  # fmt: skip
        assert login.returncode == 0, login.stdout + login.stderr
        yield env, exai


def process_rows(server: SupabaseTestServer) -> list[dict[str, Any]]:
    rows = [r for r in server.rest.snapshot("file_operations") if r["operation_type"] == "process"]
    for row in rows:
        if isinstance(row.get("metadata"), str):
            row["metadata"] = json.loads(row["metadata"])
    return rows


# -- acceptance 2: no path map, no shared folder ----------------------------------------------


def test_ask_with_a_path_only_tool_has_exai_download_the_file_from_the_hub(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    signed_in: tuple[dict[str, str], ExaiTestServer],
    notes: Path,
) -> None:
    env, exai = signed_in
    asked = run(env, "exai", "ask", str(notes), QUESTION, "--tool", "smart_file_query", "--json")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    outcome = json.loads(asked.stdout)
    sha = sha_of(notes.read_bytes())
    key = outcome["file_ref"].removeprefix("user-files/")
    assert key.startswith(f"{supabase_user.uid}/{sha[:2]}/{sha}/")

    # EXAI was asked to download the hub object, then to read the path it answered
    server_path = f"/mnt/project/Personal_AI_Agent/hubsync-downloads/{sha}/{key.rsplit('/')[-1]}"
    assert [name for name, _ in exai.calls] == ["smart_file_download", "smart_file_query"]
    assert exai.calls[0][1] == {"file_id": f"user-files/{key}", "destination": server_path}
    assert exai.calls[1][1]["file_path"] == server_path
    assert exai.calls[1][1]["question"] == QUESTION
    assert exai.downloads == [server_path]
    assert exai.local_path(server_path).read_bytes() == notes.read_bytes()
    assert not str(exai.local_path(server_path)).startswith(str(tmp_path))  # not shared

    # the answer (about the very bytes EXAI downloaded) is in the results folder...
    result = Path(outcome["result_path"])
    assert result.parent == (tmp_path / "home" / "data" / "results").resolve()
    text = result.read_text("utf-8")
    assert QUESTION in text and f"sha256 {sha}" in text
    # ... and in the results bucket of the hub
    stored = supabase_server.storage.get("results", outcome["result_key"])
    assert stored is not None and bytes(stored.data) == result.read_bytes()

    rows = process_rows(supabase_server)
    assert [r["status"] for r in rows] == ["pending", "processing", "completed"]
    done = rows[-1]
    assert done["user_id"] == supabase_user.uid and done["error_message"] is None
    assert done["metadata"]["server_path"] == server_path
    assert done["metadata"]["result_key"] == f"results/{outcome['result_key']}"


def test_a_file_the_hub_does_not_serve_ends_failed_with_exais_reason(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    signed_in: tuple[dict[str, str], ExaiTestServer],
    notes: Path,
) -> None:
    env, exai = signed_in
    exai.service_key = "not-the-service-key"  # EXAI's own Supabase credentials are wrong
    asked = run(env, "exai", "ask", str(notes), QUESTION, "--tool", "smart_file_query")
    assert asked.returncode == 1
    assert "smart_file_download reported an error: Failed to download from Supabase" in (
        asked.stderr
    )
    assert [r["status"] for r in process_rows(supabase_server)][-1] == "failed"
    assert not (tmp_path / "home" / "data" / "results").exists() or not any(
        (tmp_path / "home" / "data" / "results").iterdir()
    )
    assert [name for name, _ in exai.calls] == ["smart_file_download"]


# -- acceptance 3: a server that requires a JWT ------------------------------------------------


def test_a_server_requiring_a_jwt_is_explained_and_works_once_one_is_set(
    tmp_path: Path, notes: Path
) -> None:
    with threaded_exai_server(token=TOKEN, jwt=JWT, progress_interval=0.05) as exai:
        env = base_env(tmp_path / "home", exai)
        runner = CliRunner()  # in-process (the server has a loop of its own): fast
        args = ["ask", str(notes), QUESTION, "--tool", "analyze_file"]
        refused = runner.invoke(exai_app, args, env=env)
        assert refused.exit_code == 1
        message = refused.stderr.strip().splitlines()[-1]  # after the progress lines
        assert message.startswith("error: this EXAI server needs a JWT: none is set"), message
        assert "EXAI_WS_JWT" in message and "hubsync exai token --jwt" in message

        wrong = runner.invoke(exai_app, args, env={**env, "EXAI_WS_JWT": "eyJ.wrong.jwt"})
        assert wrong.exit_code == 1
        assert "needs a JWT: it refused the JWT HubSync sent" in wrong.stderr
        assert "eyJ.wrong.jwt" not in wrong.output

        works = runner.invoke(exai_app, args, env={**env, "EXAI_WS_JWT": JWT})
        assert works.exit_code == 0, works.output
        assert QUESTION in Path(works.stdout.strip()).read_text("utf-8")
        assert exai.rejected_hellos == 2

        # stored with `hubsync exai token --jwt` (its own processes: the file secret store)
        stored = run(env, "exai", "token", "--jwt", "--stdin", stdin=JWT + "\n")
        assert stored.returncode == 0 and "EXAI JWT stored" in stored.stdout, stored.stderr
        status = run(env, "exai", "status", "--json")
        state = json.loads(status.stdout)
        assert state["jwt_source"] == "keyring" and state["round_trip_ms"] is not None
        assert JWT not in status.stdout + status.stderr
        assert exai.rejected_hellos == 2  # the stored JWT was accepted


# -- acceptance 4: Ctrl-C --------------------------------------------------------------------


def test_ctrl_c_sends_cancel_and_the_job_is_recorded_cancelled_with_nothing_written(
    tmp_path: Path, notes: Path
) -> None:
    home = tmp_path / "home"
    with threaded_exai_server(token=TOKEN, progress_interval=0.05, slow_seconds=60) as exai:
        env = {**base_env(home, exai), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [*CLI, "exai", "ask", str(notes), QUESTION, "--tool", "slow_query"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None and proc.stdout is not None
        seen: list[str] = []
        for line in proc.stderr:  # wait until the tool is running on the server
            seen.append(line)
            if "working…" in line:
                break
        assert exai.requests and exai.requests[-1][1] == "slow_query", seen
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == 130, "".join(seen) + stderr
        assert "interrupted" in stderr and stdout == ""
        rid = exai.requests[-1][0]
        deadline = time.monotonic() + 5
        while exai.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert exai.cancels == [rid]  # the server was told, for that very call
        assert exai.open_connections == 0

    with closing(sqlite3.connect(home / "data" / "hub" / "hub.sqlite3")) as db:
        rows = db.execute(
            "SELECT status, error_message, metadata FROM file_operations "
            "WHERE operation_type='process' ORDER BY rowid"
        ).fetchall()
    assert [r[0] for r in rows] == ["pending", "processing", "failed"]
    assert rows[-1][1] == "cancelled"
    assert json.loads(rows[-1][2])["error_kind"] == "cancelled"
    results = home / "data" / "results"
    assert not results.exists() or list(results.iterdir()) == []
    hub_results = home / "data" / "hub" / "results"
    assert not hub_results.exists() or not [p for p in hub_results.rglob("*") if p.is_file()]
