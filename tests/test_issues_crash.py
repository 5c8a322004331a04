"""kill -9 while failures are being grouped loses nothing and leaves no half-counted group:
a file's error, its group's count and its membership are committed together."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sync.journal import Journal

WRITER = r"""
import sys, time
from pathlib import Path
from sync.journal import Failure, Journal

journal = Journal(Path(sys.argv[1]))
root = journal.roots()[0]
i = int(journal.get_meta("iterations") or 0)
while True:
    names = [f"f{(i * 7 + k) % 300}.txt" for k in range(25)]
    now = time.time()
    with journal.transaction():
        journal.mark_seen(root.id, [(n, 1, 1, 1) for n in names])
        for n in names:
            journal.mark_error(root.id, n, "transient", f"{n}: HTTP 503 ({i})", 60, now)
        journal.record_failures(
            root.id, [Failure(n, "transient", f"{n}: HTTP 503 ({i})", "upload") for n in names], now
        )
        if i % 3 == 0:  # some files sync: they leave their group
            journal.mark_synced(root.id, [(n, 1, 1, 1, "0" * 64, 1, "k") for n in names[:5]], now)
        i += 1
        journal.set_meta("iterations", str(i))
"""


def test_sigkill_while_grouping_failures_keeps_counts_and_members_whole(tmp_path: Path) -> None:
    rng = random.Random(17)
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    journal.add_root(tmp_path, "local")
    journal.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
        time.sleep(rng.uniform(0.4, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check = Journal(path)
        try:
            done = int(check.get_meta("iterations") or 0)
            (group,) = check.error_groups()
            assert group.count == done * 25  # every committed batch counted, none half
            root_id = check.roots()[0].id
            members = {r for r, g in check.groups_of(root_id).items() if g == group.id}
            failing = set(check.error_rows(root_id))
            assert members == failing and group.open_files == len(failing)
            assert check.integrity_check() == "ok"
        finally:
            check.close()
    assert done > 0
