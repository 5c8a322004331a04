"""Data-safety defects a user or an attacker can reach through the real CLI (issue 14)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.test_cli import hubsync


def _sync(home: Path) -> None:
    done = hubsync(home, "sync", "--once")
    assert done.returncode == 0, done.stderr


def test_restore_at_the_time_history_shows_restores_that_version(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.md"
    note.write_text("one")
    assert hubsync(home, "add", str(docs)).returncode == 0
    _sync(home)
    time.sleep(1.1)  # the versions fall in different printed seconds
    note.write_text("two, longer")
    _sync(home)
    shown = json.loads(hubsync(home, "history", str(note), "--json").stdout)
    for row in shown:
        out = tmp_path / f"at-v{row['version']}"
        done = hubsync(
            home, "restore", str(note), "--at", row["recorded_at"], "--to", str(out), "--json"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["version"] == row["version"]
