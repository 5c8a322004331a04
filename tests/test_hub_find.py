"""B finds A's files in the hub by name, type, size, time and content: local hub and Supabase."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import keyring
from keyring.core import load_keyring
from typer.testing import CliRunner

from agent.cli.main import app
from sync.find import FindQuery
from sync.remotes.base import ManifestEntry
from sync.remotes.local import LocalHub
from tests.fixtures.supabase import SupabaseUser
from tests.supabase_server import SupabaseTestServer
from tests.test_supabase_sync import cli_env

pytest_plugins = ["tests.fixtures.supabase"]

Cli = Callable[..., str]


def _corpus(docs: Path) -> dict[str, bytes]:
    files = {
        "report.pdf": b"%PDF" + b"p" * 5000,
        "notes/plan.md": b"plan",
        "notes/old.md": b"old notes",
        "img/photo.JPG": b"j" * 20000,
        "a,b (1).txt": b"odd name",
    }
    for rel, data in files.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_bytes(data)
    old = (datetime.now() - timedelta(days=10)).timestamp()
    os.utime(docs / "notes/old.md", (old, old))
    return files


def _paths(out: str, hub: str) -> set[str]:
    return {r["path"] for r in json.loads(out) if r["hub"] == hub}


def _check_find(b: Cli, hub: str, docs: Path, files: dict[str, bytes], a_name: str) -> None:
    """The filters, each through the real command line; all but the first in this process
    (``_in_process``): a process start per filter is most of these tests' time."""
    in_b = _in_process(b)

    def find(*args: str, cli: Cli = in_b) -> set[str]:
        return _paths(cli("find", *args, "--json"), hub)

    assert find(cli=b) == set(files)
    assert find("*.md") == {"notes/plan.md", "notes/old.md"}
    assert find("notes/p*") == {"notes/plan.md"}
    assert find("a,b (1).txt") == {"a,b (1).txt"}
    assert find("--type", "jpg") == {"img/photo.JPG"}
    assert find("--larger", "4k") == {"report.pdf", "img/photo.JPG"}
    assert find("--larger", "4k", "--smaller", "10k") == {"report.pdf"}
    week_ago = (datetime.now() - timedelta(days=7)).isoformat(timespec="seconds")
    assert find("--until", week_ago) == {"notes/old.md"}
    assert find("--since", week_ago) == set(files) - {"notes/old.md"}
    sha = hashlib.sha256(files["notes/plan.md"]).hexdigest()
    assert find("--sha", sha) == {"notes/plan.md"}
    assert find("--device", a_name, "--folder", docs.name, "plan.md") == {"notes/plan.md"}
    assert find("--device", a_name, "--folder", str(docs.resolve()), "*.pdf") == {"report.pdf"}
    rows = [r for r in json.loads(in_b("find", "report.pdf", "--json")) if r["hub"] == hub]
    assert rows[0]["device"] == a_name and rows[0]["size"] == len(files["report.pdf"])


def _check_changes(a: Cli, b: Cli, hub: str, docs: Path) -> None:
    """Only current versions are found; a deleted file only with --deleted; pull --at
    gives the folder as it was."""
    before = _tree(docs)
    between = datetime.now().astimezone().isoformat()
    time.sleep(0.05)
    (docs / "notes/plan.md").write_bytes(b"plan, second version, longer")
    (docs / "report.pdf").unlink()
    a("sync", "--once")

    def find(*args: str) -> set[str]:
        return _paths(b("find", *args, "--json"), hub)

    assert find("--smaller", "5") == set()  # plan.md's first version (4 bytes) is gone
    assert find("plan.md", "--larger", "20") == {"notes/plan.md"}
    assert find("*.pdf") == set()
    assert find("--deleted") == {"report.pdf"}
    then = docs.parent / "then"
    b("pull", f"laptop:{docs.name}", str(then), "--at", between)
    assert _tree(then) == before
    now = docs.parent / "now"
    b("pull", f"laptop:{docs.name}", str(now))
    assert _tree(now) == _tree(docs) != before


def test_find_on_the_local_hub(tmp_path: Path) -> None:
    hub = tmp_path / "hub"

    def home(label: str, name: str) -> Cli:
        config = tmp_path / label / "config" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[hub]\nlocal_path = "{hub}"\n[device]\nname = "{name}"\n')
        env = {**os.environ, "HUBSYNC_HOME": str(tmp_path / label)}
        env.pop("HUBSYNC_DEVICE_NAME", None)
        return _runner(env)

    a, b = home("a", "laptop"), home("b", "desk")
    docs = tmp_path / "docs"
    files = _corpus(docs)
    a("add", str(docs))
    a("sync", "--once")
    _check_find(b, "local", docs, files, "laptop")
    _check_changes(a, b, "local", docs)
    unknown = subprocess.run(
        [sys.executable, "-m", "agent", "find", "--device", "nope"],
        env={**os.environ, "HUBSYNC_HOME": str(tmp_path / "b")},
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 1 and "no hub knows the device 'nope'" in unknown.stderr


def test_find_on_the_supabase_hub(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    def home(label: str, name: str) -> Cli:
        env = {**cli_env(tmp_path, supabase_server), "HUBSYNC_HOME": str(tmp_path / label)}
        env["HUBSYNC_DEVICE_NAME"] = name
        cli = _runner(env)
        cli(
            "login",
            "--email",
            supabase_user.email,
            "--password-stdin",
            stdin=supabase_user.password + "\n",
        )
        return cli

    a, b = home("a", "laptop"), home("b", "desk")
    docs = tmp_path / "docs"
    files = _corpus(docs)
    a("add", str(docs), "--hub", "supabase")
    a("sync", "--once")
    _check_find(b, "supabase", docs, files, "laptop")
    _check_pull(a, b, docs, tmp_path / "pulled", "laptop")
    _check_changes(a, b, "supabase", docs)


def _runner(env: dict[str, str]) -> Cli:
    def cli(*args: str, stdin: str | None = None, in_process: bool = False) -> str:
        if in_process:
            return _invoke(env, args)
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    return cli


def _in_process(cli: Cli) -> Cli:
    return functools.partial(cli, in_process=True)


def _invoke(env: dict[str, str], args: tuple[str, ...]) -> str:
    """``hubsync ARGS`` run by the CLI's own app in this process, with ``env`` as the
    environment and, like a fresh process with that env, its keyring backend."""
    previous = keyring.get_keyring()
    keyring.set_keyring(
        load_keyring(env["PYTHON_KEYRING_BACKEND"]) if "PYTHON_KEYRING_BACKEND" in env else previous
    )
    try:
        unset: dict[str, str | None] = {k: None for k in os.environ if k not in env}
        done = CliRunner().invoke(app, list(args), env={**unset, **env}, catch_exceptions=False)
    finally:
        keyring.set_keyring(previous)
    assert done.exit_code == 0, f"{args}: {done.output}"
    return done.stdout


def _entry(relpath: str, version: int = 1, size: int = 3) -> ManifestEntry:
    sha = hashlib.sha256(f"{relpath}{version}".encode()).hexdigest()
    return ManifestEntry(
        device="dev-a",
        root_id="root",
        root_path="/docs",
        relpath=relpath,
        sha256=sha,
        size=size,
        mtime_ns=1,
        version=version,
        key=f"local/{sha[:2]}/{sha}/x",
    )


async def test_find_answers_are_cached_until_the_hub_changes(tmp_path: Path) -> None:
    writer, reader = LocalHub(tmp_path / "hub"), LocalHub(tmp_path / "hub")
    try:
        await writer.record([_entry("a.md")])
        query = FindQuery(pattern="*.md")
        assert [e.relpath for e in await reader.find(query)] == ["a.md"]
        assert [e.relpath for e in await reader.find(query)] == ["a.md"]
        assert reader.find_cache_hits == 1
        await writer.record([_entry("b.md")])  # another process (connection) writes
        assert [e.relpath for e in await reader.find(query)] == ["a.md", "b.md"]
        assert reader.find_cache_hits == 1
        await reader.record([_entry("a.md", version=2, size=50)])  # its own write
        assert [e.size for e in await reader.find(query)] == [50, 3]
        assert reader.find_cache_hits == 1
        assert len(await reader.find(query)) == 2 and reader.find_cache_hits == 2
    finally:
        await writer.close()
        await reader.close()


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _check_pull(a: Cli, b: Cli, docs: Path, dest: Path, a_name: str) -> None:
    """B pulls A's folder: equal hash by hash; again, into another folder: all from the
    cache (a local hub's blobs are cache entries linked to them); never overwrites."""
    first = json.loads(b("pull", f"{a_name}:{docs.name}", str(dest), "--json"))
    assert _tree(dest) == _tree(docs) and first["files"] == len(_tree(docs))
    again = dest.parent / "again"
    second = json.loads(b("pull", f"{a_name}:{docs.resolve()}", str(again), "--json"))
    assert _tree(again) == _tree(docs)
    assert second["cache_hits"] == second["files"] > 0
    status = json.loads(b("status", "--json"))
    assert status["cache"]["hits"] >= second["files"]
    (again / "notes/plan.md").write_bytes(b"mine, different")
    third = json.loads(b("pull", f"{a_name}:{docs.name}", str(again), "--json"))
    assert (again / "notes/plan.md").read_bytes() == b"mine, different"
    assert third["kept_both"] == [str(again / "notes/plan (restored v1).md")]
    assert third["identical"] == third["files"] - 1
    assert third["cache_hits"] == third["files"]  # in place already, or in the cache


def test_pull_from_the_local_hub(tmp_path: Path) -> None:
    hub = tmp_path / "hub"

    def home(label: str, name: str) -> Cli:
        config = tmp_path / label / "config" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[hub]\nlocal_path = "{hub}"\n[device]\nname = "{name}"\n')
        env = {**os.environ, "HUBSYNC_HOME": str(tmp_path / label)}
        env.pop("HUBSYNC_DEVICE_NAME", None)
        return _runner(env)

    a, b = home("a", "laptop"), home("b", "desk")
    docs = tmp_path / "docs"
    _corpus(docs)
    a("add", str(docs))
    a("sync", "--once")
    _check_pull(a, b, docs, tmp_path / "pulled", "laptop")
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "notes").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refused = subprocess.run(
        [sys.executable, "-m", "agent", "pull", f"laptop:{docs.name}", str(trap)],
        env={**os.environ, "HUBSYNC_HOME": str(tmp_path / "b")},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "symbolic link" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "elsewhere").exists()
