"""Temp files in a hub shared by several writers: a writer cleans up only after the dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sync.remotes.local import LocalHub
from sync.temp_area import ABANDONED_AFTER, TempArea

ROOT = Path(__file__).resolve().parent.parent


def test_a_second_writer_leaves_the_first_ones_temp_files_alone(tmp_path: Path) -> None:
    first = TempArea(tmp_path / ".tmp")
    in_flight = Path(first.new_path())
    in_flight.write_bytes(b"half of a blob")
    second = TempArea(tmp_path / ".tmp")  # another process opening the same hub
    assert in_flight.read_bytes() == b"half of a blob"
    first.close()
    second.close()
    assert not list((tmp_path / ".tmp").iterdir())


def test_temp_files_of_a_killed_writer_are_removed_at_the_next_start(tmp_path: Path) -> None:
    folder = tmp_path / ".tmp"
    script = (
        "import sys, time; from pathlib import Path; from sync.temp_area import TempArea\n"
        "area = TempArea(Path(sys.argv[1]))\n"
        "Path(area.new_path()).write_bytes(b'partial')\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        alive = TempArea(folder)  # the writer still holds its lock: nothing is removed
        assert len([p for p in folder.glob("*.part")]) == 1
        alive.close()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    after_crash = TempArea(folder)
    assert [p.name for p in folder.iterdir()] == [f"{after_crash._owner}-lock"]
    after_crash.close()


def test_without_a_lock_file_only_day_old_temp_files_go(tmp_path: Path) -> None:
    folder = tmp_path / ".tmp"
    folder.mkdir()
    old, fresh = folder / "0a0a0a0a0a0a-3.part", folder / "0b0b0b0b0b0b-1.part"
    old.write_bytes(b"old")
    fresh.write_bytes(b"fresh")
    long_ago = time.time() - ABANDONED_AFTER - 60
    os.utime(old, (long_ago, long_ago))
    area = TempArea(folder)
    assert not old.exists() and fresh.exists()
    area.close()


async def test_a_hub_opened_twice_keeps_both_writers_blobs_whole(tmp_path: Path) -> None:
    """Regression: opening a hub removed every temp file, including those another
    process was writing at that moment (its rename then failed)."""
    first = LocalHub(tmp_path / "hub")
    in_flight = Path(first._temps.new_path())
    in_flight.write_bytes(b"being written")
    second = LocalHub(tmp_path / "hub")
    try:
        assert in_flight.exists()
    finally:
        await second.close()
        await first.close()


def test_odd_things_in_the_temp_folder_never_stop_a_hub_opening(tmp_path: Path) -> None:
    folder = tmp_path / ".tmp"
    (folder / "0c0c0c0c0c0c-lock").mkdir(parents=True)  # a folder where a lock file goes
    (folder / "0c0c0c0c0c0c-1.part").mkdir()
    long_ago = time.time() - ABANDONED_AFTER - 60
    os.utime(folder / "0c0c0c0c0c0c-1.part", (long_ago, long_ago))
    area = TempArea(folder)
    Path(area.new_path()).write_bytes(b"works")
    area.close()
