"""The agent's background compaction: due rounds only, one at a time, savings reported."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from agent.daemon.history_compactor import IDLE_INTERVAL, HistoryCompactor
from sync.remotes.local import LocalHub
from tests.history_helpers import read_back, save, text_version


async def _settle(compactor: HistoryCompactor) -> None:
    task = compactor._task
    if task is not None:
        await task


async def test_a_due_round_compresses_history_and_reports_the_savings(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    try:
        old = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
        await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
        compactor = HistoryCompactor(interval=0.0, work_dir=tmp_path / "work")
        compactor.poke({"local": hub})
        compactor.poke({"local": hub})  # one round at a time: this one is not started
        await _settle(compactor)
        status = compactor.status()
        assert status["rounds"] == 1 and status["compressed"] == 1
        local = status["hubs"]["local"]
        assert local["blobs"] == 1 and 0 < local["stored_bytes"] < local["raw_bytes"] * 0.5
        assert not hub.blob_file(old.key).exists()
        assert await read_back(hub, old, tmp_path) == text_version("a", 1)
    finally:
        await hub.close()


async def test_no_round_before_the_interval_or_when_switched_off(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    try:
        old = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
        await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
        waiting = HistoryCompactor(interval=3600.0, work_dir=tmp_path)
        off = HistoryCompactor(interval=0.0, work_dir=tmp_path, enabled=False)
        for compactor in (waiting, off):
            compactor.poke({"local": hub})
            await asyncio.sleep(0)
            await _settle(compactor)
            assert compactor.rounds == 0
        assert hub.blob_file(old.key).exists()
    finally:
        await hub.close()


async def test_content_recorded_again_is_raw_again_right_after_the_pass(tmp_path: Path) -> None:
    """A journal that still knows a packed blob's key records it without uploading: the
    pass that did so asks for a revival, which runs at once, not at the next round."""
    hub = LocalHub(tmp_path / "hub")
    try:
        old = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
        await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
        compactor = HistoryCompactor(interval=0.0, work_dir=tmp_path / "work")
        compactor.poke({"local": hub})
        compactor.revive_soon({"local": hub})  # a round is running: owed, not lost
        await _settle(compactor)
        assert not hub.blob_file(old.key).exists()
        await hub.record([replace(old, version=3, mtime_ns=3)])  # current again, no upload
        compactor.interval = 3600.0  # no compression round is due
        compactor.poke({"local": hub})  # the owed revival
        await _settle(compactor)
        assert hub.blob_file(old.key).read_bytes() == text_version("a", 1)
        assert compactor.rounds == 1  # revivals are not compression rounds
    finally:
        await hub.close()


async def test_rounds_that_find_nothing_space_out_until_a_pass_changes_something(
    tmp_path: Path,
) -> None:
    """A round reads the whole manifest: an idle agent must not pay it every interval."""
    hub = LocalHub(tmp_path / "hub")
    try:
        first = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)  # current: no history
        compactor = HistoryCompactor(interval=600.0, work_dir=tmp_path / "work")
        remotes = {"local": hub}

        async def round_after(seconds: float) -> bool:
            """Whether a poke ``seconds`` after the last round starts one."""
            before = compactor.rounds
            compactor._last -= seconds
            compactor.poke(remotes)
            await _settle(compactor)
            return compactor.rounds > before

        assert await round_after(600.0)  # the first round comes after the interval
        assert not await round_after(601.0)  # it found nothing: the next waits twice as long
        assert await round_after(600.0)  # 1201 s after
        assert compactor.wait() == 2400.0
        for _ in range(10):
            await round_after(compactor.wait())
        assert compactor.wait() == IDLE_INTERVAL  # at most 6 h between rounds
        await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
        compactor.changed()  # a pass recorded a new version: version 1 is history
        assert await round_after(600.0)
        assert not hub.blob_file(first.key).exists()  # compressed
        assert compactor.compressed == 1 and compactor.wait() == 600.0
    finally:
        await hub.close()
