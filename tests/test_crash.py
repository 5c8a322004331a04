"""kill -9 at random moments of a sync loses nothing and repeats no finished upload."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.engine import assert_hub_mirrors, blob_files

FILES = 600
KILLS = 12


def _make_corpus(folder: Path, rng: random.Random) -> None:
    for i in range(FILES):
        path = folder / f"d{i % 12}" / f"file{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 160 * 1024)))


def _sync(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "sync", "--once", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    home, docs = tmp_path / "home", tmp_path / "docs"
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    _make_corpus(docs, rng)
    subprocess.run(
        [sys.executable, "-m", "agent", "add", str(docs)], env=env, check=True, capture_output=True
    )
    hub = home / "data" / "hub"
    seen_blobs: dict[str, tuple[int, int]] = {}
    killed_mid_sync = 0
    for round_ in range(KILLS):
        # New work every round: edits, additions, deletions, a rename.
        for i in rng.sample(range(FILES), 200):
            target = docs / f"d{i % 12}" / f"file{i}.bin"
            if target.exists():
                target.write_bytes(rng.randbytes(rng.randint(1024, 160 * 1024)))
        (docs / "new").mkdir(exist_ok=True)
        for j in range(10):
            (docs / "new" / f"r{round_}-{j}.txt").write_bytes(rng.randbytes(4096))
        victims = sorted((docs / "new").iterdir())[:3]
        for v in victims:
            v.rename(v.with_name("renamed-" + v.name))
        before = len(blob_files(hub)) if hub.exists() else 0
        proc = _sync(env)
        # Kill after a random number of new blobs landed (mid-upload), or on
        # odd rounds at a random moment (start-up, scanning, hashing, recording).
        target = rng.randint(1, 190)
        deadline = time.monotonic() + (rng.uniform(0.05, 1.5) if round_ % 2 else 30)
        while proc.poll() is None and time.monotonic() < deadline:
            if round_ % 2 == 0 and hub.exists() and len(blob_files(hub)) - before >= target:
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_sync += 1
        proc.wait()
        journal = sqlite3.connect(home / "data" / "journal.sqlite3")
        assert journal.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        journal.close()
        hubdb = sqlite3.connect(hub / "hub.sqlite3")
        assert hubdb.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        hubdb.close()
        now = blob_files(hub)
        for key, ident in seen_blobs.items():
            assert now.get(key) == ident, f"blob {key} was rewritten or lost"
        seen_blobs.update(now)
        assert not list((hub / ".tmp").iterdir()) or proc.returncode == -signal.SIGKILL
    assert killed_mid_sync >= 10, "kills must land while the sync runs"
    final = subprocess.run(
        [sys.executable, "-m", "agent", "sync", "--once", "--json"], env=env, capture_output=True
    )
    assert final.returncode == 0, final.stdout[-2000:]
    assert not list((hub / ".tmp").iterdir())
    after = blob_files(hub)
    for key, ident in seen_blobs.items():
        assert after.get(key) == ident, f"blob {key} was rewritten or lost"
    journal = sqlite3.connect(home / "data" / "journal.sqlite3")
    (root_id,) = journal.execute("SELECT id FROM roots").fetchone()
    journal.close()
    assert_hub_mirrors(hub, root_id, docs)
    hubdb = sqlite3.connect(hub / "hub.sqlite3")
    dupes = hubdb.execute(
        "SELECT sha256_hash, count(*) FROM file_metadata GROUP BY sha256_hash HAVING count(*) > 1"
    ).fetchall()
    hubdb.close()
    assert dupes == []
