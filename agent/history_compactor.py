"""The agent's background compaction of history (see :mod:`sync.compaction`).

After passes, at most once per interval, one bounded round per connected hub
runs in a task of its own: it never holds up a pass, and a round stopped by the
agent's exit (or a kill) is finished by a later one, since the hub's rows say
how far each blob got.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sync.compaction import CompactionReport, HistoryStats, compact
from sync.errors import SyncError
from sync.history_store import packed_history
from sync.remotes.base import Remote

log = logging.getLogger(__name__)


class HistoryCompactor:
    def __init__(self, interval: float, work_dir: Path, enabled: bool = True) -> None:
        self.interval = interval
        self.work_dir = work_dir
        self.enabled = enabled
        self._task: asyncio.Task[None] | None = None
        self._last = time.monotonic()
        self.rounds = 0
        self.compressed = 0
        self.saved_bytes = 0
        """By the rounds of this run."""
        self.stats: dict[str, HistoryStats] = {}
        """Per hub, as the hub said after the last round."""

    def poke(self, remotes: Mapping[str, Remote]) -> None:
        """Start a round when one is due and none is running."""
        if not self.enabled or (self._task is not None and not self._task.done()):
            return
        if time.monotonic() - self._last < self.interval:
            return
        self._task = asyncio.create_task(self._round(dict(remotes)), name="hubsync-compaction")

    async def _round(self, remotes: dict[str, Remote]) -> None:
        try:
            for name, remote in remotes.items():
                history = packed_history(remote)
                if history is None:
                    continue
                try:
                    report = await compact(history, work_dir=self.work_dir)
                    self._count(report)
                    self.stats[name] = await history.stats()
                except SyncError as exc:
                    log.info("compressing history in the %s hub: %s", name, exc.message)
        finally:
            self._last = time.monotonic()
            self.rounds += 1

    def _count(self, report: CompactionReport) -> None:
        self.compressed += report.compressed
        self.saved_bytes += report.saved

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "rounds": self.rounds,
            "compressed": self.compressed,
            "hubs": {
                name: {"blobs": s.blobs, "raw_bytes": s.raw_bytes, "stored_bytes": s.stored_bytes}
                for name, s in self.stats.items()
            },
        }

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
