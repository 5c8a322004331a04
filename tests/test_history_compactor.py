"""The agent's background compaction: due rounds only, one at a time, savings reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.history_compactor import HistoryCompactor
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
