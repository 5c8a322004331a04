"""A full disk is reported as such, waited out and loses nothing (issue 14, defect 6).

The disks are real: a small tmpfs filled until the kernel says ENOSPC (see
tests/fixtures/small_fs.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from tests.fixtures.small_fs import SmallFs
from tests.test_cli import hubsync


def _home_with_hub_at(home: Path, hub: Path) -> None:
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        f'[hub]\ndefault = "local"\nlocal_path = "{hub}"\n'
    )


def _integrity(journal: Path) -> str:
    with sqlite3.connect(journal) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_sync_once_on_a_full_home_says_disk_full_and_loses_nothing(
    tmp_path: Path, small_fs: SmallFs
) -> None:
    home, hub, docs = small_fs.path / "home", tmp_path / "hub", tmp_path / "docs"
    _home_with_hub_at(home, hub)
    docs.mkdir()
    for i in range(20):
        (docs / f"old{i}.txt").write_text(f"old {i}")
    assert hubsync(home, "add", str(docs)).returncode == 0
    assert hubsync(home, "sync", "--once").returncode == 0
    for i in range(300):
        (docs / f"new{i}.txt").write_bytes(os.urandom(2000))
    small_fs.fill()

    full = hubsync(home, "sync", "--once")
    assert full.returncode != 0
    assert f"disk full (0 MB free on {small_fs.path})" in full.stderr
    assert "damaged" not in full.stderr and "Move it aside" not in full.stderr
    assert "Traceback" not in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1

    small_fs.free()
    assert _integrity(home / "data" / "journal.sqlite3") == "ok"
    after = hubsync(home, "sync", "--once")
    assert after.returncode == 0, after.stderr
    assert "every file is in the hub" in after.stdout
    listed = hubsync(home, "find", "--json")
    assert listed.stdout.count('"new') == 300 and listed.stdout.count('"old') == 20


def _status(home: Path) -> dict[str, Any]:
    done = hubsync(home, "status", "--json")
    assert done.returncode == 0, done.stderr
    return cast(dict[str, Any], json.loads(done.stdout))


def _wait_for(check: Callable[[], bool], what: str, within: float = 40.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in time: {what}")
        time.sleep(0.3)


def _synced(home: Path, n: int) -> Callable[[], bool]:
    def check() -> bool:
        status = _status(home)
        return status["roots"][0]["counts"].get("synced", 0) == n and not status.get("disk_full")

    return check


def _agent(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "agent"],
        env={**os.environ, "HUBSYNC_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(agent: subprocess.Popen[str]) -> str:
    """Stop the agent (it must still be running); returns what it wrote on stderr."""
    assert agent.poll() is None, agent.communicate()[1]
    agent.send_signal(signal.SIGTERM)
    return agent.communicate(timeout=30)[1]


def test_agent_waits_out_a_full_home_and_goes_on(tmp_path: Path, small_fs: SmallFs) -> None:
    home, hub, docs = small_fs.path / "home", tmp_path / "hub", tmp_path / "docs"
    _home_with_hub_at(home, hub)
    docs.mkdir()
    (docs / "first.txt").write_text("first")
    assert hubsync(home, "add", str(docs)).returncode == 0
    agent = _agent(home)
    try:
        _wait_for(lambda: (home / "run" / "agent.sock").exists(), "agent started")
        _wait_for(_synced(home, 1), "first file synced")
        small_fs.fill()
        for i in range(200):
            (docs / f"new{i}.txt").write_bytes(os.urandom(1500))
        _wait_for(lambda: _status(home)["state"] == "disk_full", "disk full reported")
        status = _status(home)
        assert f"disk full (0 MB free on {small_fs.path})" in status["disk_full"]
        shown = hubsync(home, "status")
        assert "waiting for space: disk full (0 MB free" in shown.stdout
        asked = hubsync(home, "sync", "--once")  # the agent's pass, asked for now
        assert asked.returncode == 2 and "not synced: disk full (0 MB free" in asked.stdout
        small_fs.free()
        _wait_for(_synced(home, 201), "every file synced after space came back")
    finally:
        stderr = _stop(agent)
    assert "Traceback" not in stderr and "Logging error" not in stderr
    assert f"disk full (0 MB free on {small_fs.path})" in stderr
    assert "space again" in stderr
    assert _integrity(home / "data" / "journal.sqlite3") == "ok"


def test_agent_started_on_a_full_home_waits_for_space(tmp_path: Path, small_fs: SmallFs) -> None:
    home, hub, docs = small_fs.path / "home", tmp_path / "hub", tmp_path / "docs"
    _home_with_hub_at(home, hub)
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    assert hubsync(home, "add", str(docs)).returncode == 0
    small_fs.fill()
    agent = _agent(home)
    try:
        time.sleep(3)
        assert agent.poll() is None, agent.communicate()[1]
        small_fs.free()
        _wait_for(lambda: (home / "run" / "agent.sock").exists(), "agent started")
        _wait_for(_synced(home, 1), "the file synced")
    finally:
        stderr = _stop(agent)
    assert "Traceback" not in stderr
    assert stderr.count("the agent starts when there is space") == 1


def test_hub_on_a_full_disk_logs_one_line_per_wait(tmp_path: Path, small_fs: SmallFs) -> None:
    home, hub, docs = tmp_path / "home", small_fs.path / "hub", tmp_path / "docs"
    _home_with_hub_at(home, hub)
    hub.mkdir()
    docs.mkdir()
    (docs / "first.txt").write_text("first")
    assert hubsync(home, "add", str(docs)).returncode == 0
    agent = _agent(home)
    log_file = home / "logs" / "hubsync.log"
    try:
        _wait_for(_synced(home, 1), "first file synced")
        small_fs.fill()
        for i in range(60):
            (docs / f"new{i}.txt").write_bytes(os.urandom(3000))
        (docs / "big.bin").write_bytes(os.urandom(2_000_000))
        waits = f"hub disk full (0 MB free on {small_fs.path}); trying again in"
        _wait_for(lambda: log_file.read_text().count(waits) >= 2, "two retry waits logged")
        logged = log_file.read_text()
        assert "retry_scheduled" not in logged
        assert "new1.txt" not in logged and "big.bin" not in logged  # no line per file
        assert _status(home)["roots"][0]["counts"].get("error", 0) == 0  # waiting, not failed
        small_fs.free()
        again = hubsync(home, "sync", "--once")  # through the agent: at once
        assert again.returncode == 0, again.stdout + again.stderr
        assert _synced(home, 62)()
    finally:
        stderr = _stop(agent)
    assert "Traceback" not in stderr
