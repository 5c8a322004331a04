"""Compressed history as a user meets it: ``hubsync stats --compact``, then ``restore``,
``get`` and ``pull`` of old versions, byte for byte, and a restored version raw again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.history_helpers import text_version

pytestmark = pytest.mark.slow


def hubsync(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSYNC_HOME": str(home), "HUBSYNC_DEVICE_NAME": "box"}
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _raw_blobs(home: Path) -> dict[str, bytes]:
    """sha → bytes of every raw blob in the local hub."""
    (db,) = home.rglob("hub.sqlite3")
    files = (db.parent / "user-files").rglob("*")
    return {
        p.parent.name: p.read_bytes() for p in files if p.is_file() and "history" not in p.parts
    }


def test_old_versions_restore_get_and_pull_after_compaction(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.md"
    versions = [text_version("note", n) for n in (1, 2, 3)]
    times = []
    assert hubsync(home, "add", str(docs)).returncode == 0
    for data in versions:
        note.write_bytes(data)
        assert hubsync(home, "sync", "--once").returncode == 0
        time.sleep(0.05)
        times.append(datetime.now().astimezone().isoformat())
    stats = json.loads(hubsync(home, "stats", "--compact", "--json").stdout)
    assert stats[0]["hub"] == "local" and stats[0]["compressed_now"] == 2
    assert stats[0]["saved_bytes"] > stats[0]["raw_bytes"] // 2
    raw = _raw_blobs(home)
    sha = [hashlib.sha256(d).hexdigest() for d in versions]
    assert set(raw) == {sha[2]} and hashlib.sha256(raw[sha[2]]).hexdigest() == sha[2]

    out = tmp_path / "restored"
    assert hubsync(home, "restore", str(note), "--version", "1", "--to", str(out)).returncode == 0
    assert (out / "note.md").read_bytes() == versions[0]
    got = tmp_path / "got"
    got.mkdir()
    done = hubsync(home, "get", "box:docs/note.md", "--at", times[1], "--to", str(got))
    assert done.returncode == 0, done.stderr
    assert (got / "note.md").read_bytes() == versions[1]
    pulled = tmp_path / "pulled"
    done = hubsync(home, "pull", "box:docs", str(pulled), "--at", times[0])
    assert done.returncode == 0, done.stderr
    assert (pulled / "note.md").read_bytes() == versions[0]

    # Version 1 restored in place is current again: stored raw again.
    assert hubsync(home, "restore", str(note), "--version", "1", "--json").returncode == 0
    note.write_bytes(versions[0])  # (restore kept both: make the file itself version 1)
    assert hubsync(home, "sync", "--once").returncode == 0
    stats = json.loads(hubsync(home, "stats", "--compact", "--json").stdout)
    raw = _raw_blobs(home)
    assert hashlib.sha256(raw[sha[0]]).hexdigest() == sha[0]
    assert sha[1] not in raw and stats[0]["blobs"] == 2  # versions 2 and 3 now
