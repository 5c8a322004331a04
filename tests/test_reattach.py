"""A folder mirrored before and added again takes its history back from the hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def hubsync(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=60
    )


def versions(home: Path, path: Path) -> list[int]:
    shown = hubsync(home, "history", str(path), "--json")
    assert shown.returncode == 0, shown.stderr
    return [v["version"] for v in json.loads(shown.stdout)]


@pytest.mark.parametrize("recovery", ["remove-add", "journal-moved-aside"])
def test_history_comes_back_after_the_advised_recovery(tmp_path: Path, recovery: str) -> None:
    home, docs = tmp_path / "h", tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.txt"
    assert hubsync(home, "add", str(docs)).returncode == 0
    for text in ("one", "two!", "three."):
        note.write_text(text)
        assert hubsync(home, "sync", "--once").returncode == 0
    (docs / "gone.txt").write_text("gone")
    assert hubsync(home, "sync", "--once").returncode == 0
    (docs / "gone.txt").unlink()
    assert hubsync(home, "sync", "--once").returncode == 0
    assert versions(home, note) == [1, 2, 3]
    if recovery == "remove-add":
        assert hubsync(home, "remove", str(docs)).returncode == 0
    else:
        journal = next(home.rglob("journal.sqlite3"))
        for part in journal.parent.glob("journal.sqlite3*"):
            if not part.name.endswith(".device"):
                part.rename(part.with_name(part.name + ".aside"))
    added = hubsync(home, "add", str(docs))
    assert added.returncode == 0, added.stderr
    assert "history of its 2 files is back" in added.stderr
    assert versions(home, note) == [1, 2, 3]
    out = tmp_path / "out"
    second = hubsync(home, "restore", str(note), "--version", "2", "--to", str(out))
    assert second.returncode == 0, second.stderr
    assert (out / "note.txt").read_text() == "two!"
    again = json.loads(hubsync(home, "sync", "--once", "--json").stdout)[0]
    assert (again["uploaded"], again["deleted"], again["held_deletes"]) == (0, 0, [])
    assert versions(home, note) == [1, 2, 3]  # the same content, no new version
    assert versions(home, docs / "gone.txt") == [1, 2]
    note.write_text("four")
    assert hubsync(home, "sync", "--once").returncode == 0
    assert versions(home, note) == [1, 2, 3, 4]
