"""The journal's disk is full: passes wait, longer each time, until space is back.

Nothing was written half (SQLite rolled back); the first pass that gets through
goes on. While waiting, free space is looked at every ``DISK_LOOK`` seconds (a
statvfs) so freeing space is noticed without waiting out the whole backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from sync.disk_space import disk_full, free_bytes
from sync.errors import DiskFull

log = logging.getLogger("hubsync.agent")

DISK_LOOK = 2.0
"""While the journal's disk is full, free space is looked at this often (a statvfs)."""
SPACE_FREED = 1 << 20
"""This much more free space than when the disk was found full: try again at once."""


class DiskWatch:
    def __init__(
        self,
        journal: Path,
        *,
        retry: float,
        retry_max: float,
        on_full: Callable[[DiskFull], object],
    ) -> None:
        self._journal = journal
        self._retry, self._retry_max = retry, retry_max
        self._on_full = on_full
        """Called when the disk is first found full (not on every wait after)."""
        self.full: DiskFull | None = None
        self.retry_at = 0.0
        """No pass before this (monotonic) time."""
        self._waits = 0
        self._last_look = 0.0

    def error_of(self, exc: BaseException) -> DiskFull | None:
        """``exc`` (from a journal write, or the engine's own files) as a full disk."""
        return disk_full(exc, self._journal)

    def out_of_space(self, full: DiskFull) -> None:
        self._waits += 1
        wait = min(self._retry_max, self._retry * 2 ** (self._waits - 1))
        self.retry_at = time.monotonic() + wait
        first = self.full is None
        self.full = full
        if first:
            self._on_full(full)
        log.warning(
            "%s: HubSync cannot write its journal; syncing waits (trying again in %.0f s)",
            full.message,
            wait,
        )

    def blocks(self, now: float) -> bool:
        """Whether passes must wait at ``now``; looks at the free space now and then."""
        if now < self.retry_at and now - self._last_look >= DISK_LOOK:
            self._last_look = now
            if self._freed():
                self.retry_at = now  # try at once, not at the end of the wait
        return now < self.retry_at

    def next_look(self, now: float) -> float | None:
        """Seconds until the scheduler should look again, or None when not waiting."""
        if self.retry_at > now:
            return min(DISK_LOOK, self.retry_at - now)
        return None

    def space_again(self) -> bool:
        """A pass got through: True when the disk had been full (the waiting is over)."""
        if self.full is None:
            return False
        log.info("space again on %s: syncing goes on", self.full.where)
        self.full = None
        self._waits = 0
        self.retry_at = 0.0
        return True

    def _freed(self) -> bool:
        assert self.full is not None
        free = free_bytes(self._journal)
        return free is not None and free >= self.full.free + SPACE_FREED
