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


def test_restore_refuses_to_write_through_a_symlinked_folder(tmp_path: Path) -> None:
    home, docs, outside = tmp_path / "home", tmp_path / "docs", tmp_path / "outside"
    (docs / "sub").mkdir(parents=True)
    (docs / "gone").mkdir()
    (docs / "sub" / "s.txt").write_text("secret-ish")
    (docs / "gone" / "g.txt").write_text("gone file")
    (outside / "subdir").mkdir(parents=True)
    (outside / "gonedir").mkdir()
    assert hubsync(home, "add", str(docs)).returncode == 0
    _sync(home)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside / "subdir")
    via_to = hubsync(home, "restore", str(docs / "sub" / "s.txt"), "--to", str(dest))
    assert via_to.returncode == 1 and "traverses a symbolic link" in via_to.stderr
    assert "Traceback" not in via_to.stderr
    for child in (docs / "gone").iterdir():
        child.unlink()
    (docs / "gone").rmdir()
    _sync(home)
    (docs / "gone").symlink_to(outside / "gonedir")
    in_root = hubsync(home, "restore", str(docs / "gone"))
    assert in_root.returncode == 1 and "traverses a symbolic link" in in_root.stderr
    assert "Traceback" not in in_root.stderr
    assert list(outside.rglob("*.txt")) == []
    fine = hubsync(home, "restore", str(docs / "sub" / "s.txt"), "--to", str(tmp_path / "ok"))
    assert fine.returncode == 0 and (tmp_path / "ok" / "sub" / "s.txt").read_text() == "secret-ish"
