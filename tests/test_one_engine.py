"""One engine per journal: with an agent running, the CLI's passes, restores and
confirmations go through it; without one, a second syncing process is kept out."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.platform.journal_lock import one_engine
from agent.platform.paths import resolve_paths
from tests.fixtures.agent import start_agent_process
from tests.fixtures.engine import Rig, sha_of


class Killed(Exception):
    pass


def hubsync(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def hub_db(home: Path) -> Path:
    found = list(home.rglob("hub.sqlite3"))
    assert len(found) == 1, found
    return found[0]


def duplicate_versions(home: Path) -> list[tuple[str, str, int]]:
    """(path, sha256, count) of contents recorded as more than one version in a row."""
    db = sqlite3.connect(hub_db(home))
    try:
        rows = db.execute(
            "SELECT rel_path, sha256, deleted FROM hubsync_manifest ORDER BY rel_path, version"
        ).fetchall()
    finally:
        db.close()
    twice: list[tuple[str, str, int]] = []
    last: tuple[str, str, int] | None = None
    for row in rows:
        if row == last:
            twice.append((row[0], row[1], 2))
        last = row
    return twice


def wait_for(check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_sync_once_beside_a_running_agent_is_the_agents_pass(tmp_path: Path) -> None:
    """600 files written while the agent watches and ``sync --once`` runs: one engine
    records them, each once (two engines gave files two identical versions)."""
    home, docs = tmp_path / "h", tmp_path / "docs"
    docs.mkdir()
    (docs / "first.txt").write_text("first")
    assert hubsync(home, "add", str(docs)).returncode == 0
    agent = start_agent_process(home)
    try:

        def writer() -> None:
            for i in range(600):
                (docs / f"f{i:03}.txt").write_text(f"file {i}")
                if i % 50 == 0:
                    time.sleep(0.05)

        thread = threading.Thread(target=writer)
        thread.start()
        passes = []
        while thread.is_alive():
            passes.append(hubsync(home, "sync", "--once", "--json"))
        thread.join()
        passes.append(hubsync(home, "sync", "--once", "--json"))
        for done in passes:
            assert done.returncode == 0, done.stderr
        wait_for(
            lambda: (
                json.loads(hubsync(home, "status", "--json").stdout)["roots"][0]["counts"]
                == {"synced": 601}
            )
        )
        assert duplicate_versions(home) == []
    finally:
        agent.stop()


def test_restore_and_confirm_deletes_go_through_the_agent(tmp_path: Path) -> None:
    home, docs = tmp_path / "h", tmp_path / "docs"
    for i in range(20):
        (docs / "big").mkdir(parents=True, exist_ok=True)
        (docs / "big" / f"f{i:02}.txt").write_text(f"file {i}")
    (docs / "note.txt").write_text("one")
    assert hubsync(home, "add", str(docs)).returncode == 0
    assert hubsync(home, "sync", "--once").returncode == 0
    agent = start_agent_process(home)
    try:
        (docs / "note.txt").write_text("two, longer")
        assert hubsync(home, "sync", "--once").returncode == 0
        # The agent holds the journal: a restore not asked of it would be refused.
        restored = hubsync(home, "restore", str(docs / "note.txt"), "--version", "1", "--json")
        assert restored.returncode == 0, restored.stderr
        row = json.loads(restored.stdout)[0]
        assert row["version"] == 1 and Path(row["written_to"]).read_text() == "one"
        for i in range(20):
            (docs / "big" / f"f{i:02}.txt").unlink()
        held = hubsync(home, "sync", "--once")
        assert held.returncode == 2 and "held 20 deletions" in held.stdout
        confirmed = hubsync(home, "sync", "--once", "--confirm-deletes", "--json")
        assert confirmed.returncode == 0, confirmed.stderr + confirmed.stdout
        assert "Deleting the 20 held files" in confirmed.stderr
        live = json.loads(hubsync(home, "status", "--json").stdout)
        assert live["roots"][0]["counts"].get("deleted") == 20
        assert "held" not in live["roots"][0]["counts"]
    finally:
        agent.stop()


def test_a_second_process_is_kept_out_of_the_journal(tmp_path: Path) -> None:
    home, docs = tmp_path / "h", tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    assert hubsync(home, "add", str(docs)).returncode == 0
    journal = resolve_paths({"HUBSYNC_HOME": str(home)}).journal
    with one_engine(journal):  # another process syncing with this journal, no agent
        for args in (("sync", "--once"), ("restore", str(docs / "a.txt"))):
            kept_out = hubsync(home, *args)
            assert kept_out.returncode == 1, kept_out.stdout
            assert "another HubSync process" in kept_out.stderr
            assert f"pid {os.getpid()}" in kept_out.stderr
            assert "Traceback" not in kept_out.stderr
    done = hubsync(home, "sync", "--once")
    assert done.returncode == 0 and "every file is in the hub" in done.stdout


async def test_identical_content_is_never_a_second_version(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Touched, or recorded in the hub by a pass killed before its journal commit (or by
    another engine meanwhile): the content is the version the hub has, not a new one."""
    docs = rig.folder()
    note = docs / "note.txt"
    note.write_text("one")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    os.utime(note, (time.time() + 5, time.time() + 5))
    touched = await rig.engine.sync_root(root)
    assert touched.recorded == 1 and touched.complete
    note.write_text("two")

    def killed(*args: object) -> None:
        raise Killed  # as if killed after the hub recorded, before the journal

    with monkeypatch.context() as patch:
        patch.setattr(rig.journal, "mark_synced", killed)
        with pytest.raises(Killed):
            await rig.engine.sync_root(root)
    again = await rig.engine.sync_root(root)
    assert again.recorded == 1 and again.complete
    versions = await rig.hub.history(rig.journal.device_id, root.id, "note.txt")
    assert [(v.version, v.sha256 == sha_of(note)) for v in versions] == [(1, False), (2, True)]
    assert [v.version for v in rig.journal.versions(root.id, "note.txt")] == [1, 2]
