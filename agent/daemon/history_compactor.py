"""The agent's background compaction of history (see :mod:`sync.compaction`).

After passes, at most once per interval, one bounded round per connected hub
runs in a task of its own: it never holds up a pass, and a round stopped by the
agent's exit (or a kill) is finished by a later one, since the hub's rows say
how far each blob got.

A round reads every manifest row of the hub (~1 s of CPU at 100k files), so while
rounds find nothing the wait doubles, up to ``IDLE_INTERVAL``: an idle agent does
not pay it every ten minutes. A pass that changed something here (new versions
supersede old ones) makes the next round due at the usual interval again; versions
superseded by another device wait at most ``IDLE_INTERVAL``, which only delays
saving space.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from agent.control.payloads import HistoryStatus
from sync.compaction import CompactionReport, HistoryStats, compact
from sync.errors import SyncError
from sync.history_store import packed_history
from sync.remotes.base import Remote

log = logging.getLogger(__name__)

IDLE_INTERVAL = 6 * 3600.0
"""The longest wait between rounds that find nothing to do."""


class HistoryCompactor:
    def __init__(self, interval: float, work_dir: Path, enabled: bool = True) -> None:
        self.interval = interval
        self._idle_rounds = 0
        """Rounds in a row that found nothing: each doubles the wait for the next."""
        self.work_dir = work_dir
        self.enabled = enabled
        self._task: asyncio.Task[None] | None = None
        self._last = time.monotonic()
        self._revive_owed = False
        self.rounds = 0
        self.compressed = 0
        self.saved_bytes = 0
        """By the rounds of this run."""
        self.stats: dict[str, HistoryStats] = {}
        """Per hub, as the hub said after the last round."""

    def poke(self, remotes: Mapping[str, Remote]) -> None:
        """Start a round when one is due and none is running (or a revival is owed)."""
        if not self.enabled or (self._task is not None and not self._task.done()):
            return
        if self._revive_owed:
            self.revive_soon(remotes)
        elif time.monotonic() - self._last >= self.wait():
            self._start(remotes, revive_only=False)

    def wait(self) -> float:
        """Seconds from one compression round to the next."""
        longest = max(self.interval, IDLE_INTERVAL)
        return min(longest, self.interval * 2.0 ** min(self._idle_rounds, 32))

    def changed(self) -> None:
        """A pass recorded new versions or deletions: history may have grown."""
        self._idle_rounds = 0

    def revive_soon(self, remotes: Mapping[str, Remote]) -> None:
        """After a pass recorded content without uploading it: if that content was stored
        compressed as history, it is current again and goes back to raw at once, since
        EXAI and other clients read a current version by its raw key."""
        if not self.enabled:
            return
        if self._task is not None and not self._task.done():
            self._revive_owed = True  # the next poke, after this round
            return
        self._revive_owed = False
        self._start(remotes, revive_only=True)

    def _start(self, remotes: Mapping[str, Remote], *, revive_only: bool) -> None:
        self._task = asyncio.create_task(
            self._round(dict(remotes), revive_only), name="hubsync-compaction"
        )

    async def _round(self, remotes: dict[str, Remote], revive_only: bool) -> None:
        found = False
        try:
            for name, remote in remotes.items():
                history = packed_history(remote)
                if history is None:
                    continue
                try:
                    report = await compact(history, work_dir=self.work_dir, revive_only=revive_only)
                    self._count(report)
                    found |= bool(report.compressed or report.left_raw or report.revived)
                    self.stats[name] = await history.stats()
                except SyncError as exc:
                    log.info("compressing history in the %s hub: %s", name, exc.message)
        finally:
            if not revive_only:
                self._last = time.monotonic()
                self.rounds += 1
                self._idle_rounds = 0 if found else self._idle_rounds + 1

    def _count(self, report: CompactionReport) -> None:
        self.compressed += report.compressed
        self.saved_bytes += report.saved

    def status(self) -> HistoryStatus:
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
