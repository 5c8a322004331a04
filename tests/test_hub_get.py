"""B gets one of A's files from the hub; reads are recorded; reads are routed offline.

Both hubs: the local hub (two HUBSYNC_HOMEs on one hub folder) and the Supabase test
server (two homes signed in as one user).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from tests.fixtures.supabase import SupabaseUser
from tests.supabase_server import SupabaseTestServer
from tests.test_hub_find import Cli, _runner
from tests.test_supabase_sync import cli_env

pytest_plugins = ["tests.fixtures.supabase"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _docs(docs: Path) -> None:
    (docs / "notes").mkdir(parents=True)
    (docs / "notes/plan.md").write_bytes(b"plan, first")
    (docs / "report.pdf").write_bytes(b"%PDF" + b"r" * 3000)


def _failing(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    return done


def _check_get(a: Cli, b: Cli, docs: Path, out: Path) -> None:
    """get: the bytes, by its folder's name or path; again from the cache (a local
    hub's blob read once is a cache entry linked to it); never overwrites; --at gives
    an earlier version."""
    first = json.loads(b("get", f"laptop:{docs.name}/notes/plan.md", "--to", str(out), "--json"))
    assert (out / "plan.md").read_bytes() == b"plan, first"
    assert first["source"] != "cache" and not first["offline_copy"] and first["version"] == 1
    again = json.loads(
        b("get", f"laptop:{docs.resolve()}/notes/plan.md", "--to", str(out), "--json")
    )
    assert again["source"] == "cache" and again["identical"]
    between = datetime.now().astimezone().isoformat()
    time.sleep(0.05)
    (docs / "notes/plan.md").write_bytes(b"plan, second")
    a("sync", "--once")
    newer = json.loads(b("get", f"laptop:{docs.name}/notes/plan.md", "--to", str(out), "--json"))
    assert newer["version"] == 2 and newer["kept_both"]
    assert (out / "plan.md").read_bytes() == b"plan, first"  # the different file is kept
    assert Path(newer["written_to"]).read_bytes() == b"plan, second"
    older = out / "older"
    b("get", f"laptop:{docs.name}/notes/plan.md", "--to", str(older), "--at", between)
    assert (older / "plan.md").read_bytes() == b"plan, first"


def _check_refusals(b_env: dict[str, str], docs: Path, tmp_path: Path) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "plan.md").symlink_to(tmp_path / "elsewhere.md")
    # The folder named is trusted; a link where the file goes is not followed.
    args = ["get", f"laptop:{docs.name}/notes/plan.md", "--to", str(trap), "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=b_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "elsewhere.md").exists() and (trap / "plan.md").is_symlink()
    missing = _failing(b_env, "get", f"laptop:{docs.name}/nope.md")
    assert (
        "no version of nope.md" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    )
    assert "DEVICE:PATH" in _failing(b_env, "get", "no-colon").stderr
    assert "no hub knows" in _failing(b_env, "get", "phone:docs/a.md").stderr


def _home_on_local_hub(tmp_path: Path, hub: Path, label: str, name: str) -> dict[str, str]:
    config = tmp_path / label / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[hub]\nlocal_path = "{hub}"\n[device]\nname = "{name}"\n')
    env = {**os.environ, "HUBSYNC_HOME": str(tmp_path / label)}
    env.pop("HUBSYNC_DEVICE_NAME", None)
    return env


def test_get_from_the_local_hub_records_reads(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    a_env = _home_on_local_hub(tmp_path, hub, "a", "laptop")
    b_env = _home_on_local_hub(tmp_path, hub, "b", "desk")
    a, b = _runner(a_env), _runner(b_env)
    docs = tmp_path / "docs"
    _docs(docs)
    a("add", str(docs))
    a("sync", "--once")

    def counts() -> dict[str, tuple[int, str | None]]:
        with sqlite3.connect(hub / "hub.sqlite3") as db:
            rows = db.execute("SELECT sha256_hash, access_count, last_accessed FROM file_metadata")
            return {r[0]: (r[1], r[2]) for r in rows}

    assert counts()[_sha(b"plan, first")] == (0, None)
    _check_get(a, b, docs, tmp_path / "out")
    seen = counts()
    assert seen[_sha(b"plan, first")][0] == 3 and seen[_sha(b"plan, first")][1] is not None
    assert seen[_sha(b"plan, second")][0] == 1
    # What the cache holds are hard links to the hub's blobs: no byte was copied there.
    cached = {p.stat().st_ino for p in (tmp_path / "b" / "cache" / "blobs").glob("??/*")}
    hub_blobs = {p.stat().st_ino for p in hub.rglob("*") if p.is_file()}
    assert cached and cached <= hub_blobs
    b("pull", f"laptop:{docs.name}", str(tmp_path / "pulled"))
    assert counts()[_sha((docs / "report.pdf").read_bytes())][0] == 1
    assert counts()[_sha(b"plan, second")][0] == 2
    with sqlite3.connect(hub / "hub.sqlite3") as db:
        downloads = db.execute(
            "SELECT status, json_extract(metadata, '$.source') FROM file_operations"
            " WHERE operation_type = 'download'"
        ).fetchall()
    assert len(downloads) == 6 and {d[0] for d in downloads} == {"completed"}
    assert {d[1] for d in downloads} == {"local", "cache"}  # content read before: a hit
    _check_refusals(b_env, docs, tmp_path)


def _supabase_home(
    tmp_path: Path, server: SupabaseTestServer, user: SupabaseUser, label: str, name: str
) -> tuple[Cli, dict[str, str]]:
    env = {**cli_env(tmp_path, server), "HUBSYNC_HOME": str(tmp_path / label)}
    env["HUBSYNC_DEVICE_NAME"] = name
    cli = _runner(env)
    cli("login", "--email", user.email, "--password-stdin", stdin=user.password + "\n")
    return cli, env


def test_get_from_supabase_records_reads_and_falls_back_to_an_offline_copy(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    a, _ = _supabase_home(tmp_path, supabase_server, supabase_user, "a", "laptop")
    b, b_env = _supabase_home(tmp_path, supabase_server, supabase_user, "b", "desk")
    docs = tmp_path / "docs"
    _docs(docs)
    a("add", str(docs), "--hub", "supabase")
    a("sync", "--once")

    def counts() -> dict[str, tuple[int, str | None]]:
        rows = supabase_server.rest.snapshot("file_metadata")
        return {
            r["sha256_hash"]: (r.get("access_count") or 0, r.get("last_accessed")) for r in rows
        }

    assert counts()[_sha(b"plan, first")] == (0, None)
    _check_get(a, b, docs, tmp_path / "out")
    seen = counts()
    assert seen[_sha(b"plan, first")][0] == 3 and seen[_sha(b"plan, first")][1] is not None
    assert seen[_sha(b"plan, second")][0] == 1
    downloads = [
        r
        for r in supabase_server.rest.snapshot("file_operations")
        if r["operation_type"] == "download"
    ]
    assert len(downloads) == 4 and {r["metadata"]["source"] for r in downloads} == {
        "supabase",
        "cache",
    }

    # B holds the same report in its local hub; Supabase Storage stops answering.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "copy of report.pdf").write_bytes((docs / "report.pdf").read_bytes())
    b("add", str(mine), "--hub", "local")
    b("sync", "--once")
    supabase_server.faults.fail(rate=1.0, prefix="/storage/v1/object/user-files")
    offline = json.loads(
        b("get", f"laptop:{docs.name}/report.pdf", "--to", str(tmp_path / "o"), "--json")
    )
    assert offline["offline_copy"] and offline["source"] == "local"
    assert (tmp_path / "o/report.pdf").read_bytes() == (docs / "report.pdf").read_bytes()
    text = b("get", f"laptop:{docs.name}/report.pdf", "--to", str(tmp_path / "o2"))
    assert "cache" in text  # served from the cache now, which filled from the local hub
    (docs / "only-there.txt").write_bytes(b"nowhere else")
    supabase_server.faults.clear()
    a("sync", "--once")
    supabase_server.faults.fail(rate=1.0, prefix="/storage/v1/object/user-files")
    nowhere = _failing(b_env, "get", f"laptop:{docs.name}/only-there.txt", "--to", str(tmp_path))
    assert "cannot be reached" in nowhere.stderr and "no other hub" in nowhere.stderr
    errors = [line for line in nowhere.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: only-there.txt: the supabase hub")


def test_get_of_this_devices_file_while_supabase_is_down_is_an_offline_copy(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    """The hub cannot even be connected to: this device's journal knows the versions,
    and the local hub has the same content."""
    a, a_env = _supabase_home(tmp_path, supabase_server, supabase_user, "a", "laptop")
    docs, mine = tmp_path / "docs", tmp_path / "mine"
    _docs(docs)
    mine.mkdir()
    (mine / "report copy.pdf").write_bytes((docs / "report.pdf").read_bytes())
    a("add", str(docs), "--hub", "supabase")
    a("add", str(mine), "--hub", "local")
    a("sync", "--once")
    supabase_server.stop()
    out = tmp_path / "out"
    got = json.loads(a("get", f"laptop:{docs.name}/report.pdf", "--to", str(out), "--json"))
    assert got["offline_copy"] and got["source"] == "local" and got["hub"] == "supabase"
    assert (out / "report.pdf").read_bytes() == (docs / "report.pdf").read_bytes()
    nowhere = _failing(a_env, "get", f"laptop:{docs.name}/notes/plan.md", "--to", str(out))
    errors = [line for line in nowhere.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "cannot be reached" in errors[0], nowhere.stderr


def test_a_refused_get_or_pull_prints_its_error_alone(tmp_path: Path) -> None:
    """The progress bar (none when stderr is not a terminal) leaves no blank line first."""
    env = {**os.environ, "HUBSYNC_HOME": str(tmp_path / "home")}
    for args in (["get", "nope"], ["pull", "nope", str(tmp_path / "to")]):
        done = _failing(env, *args)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
