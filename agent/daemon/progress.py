"""A pass's progress for the tray: the latest ``progress`` answer and its events.

The engine reports progress as it goes; uploads move their byte counts from
transfer threads, so while a pass runs a ticker also publishes what it sees at
``PROGRESS_INTERVAL``, from the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from agent.control.payloads import ProgressEvent
from sync.engine import Progress

PROGRESS_INTERVAL = 0.2


class ProgressFeed:
    def __init__(self, publish: Callable[[str, Any], object]) -> None:
        self._publish = publish
        self.current: ProgressEvent | None = None
        """The pass under way as shown (None: no pass since the last one ended)."""
        self._live: Progress | None = None
        self._last = 0.0

    def update(self, p: Progress) -> None:
        """The engine's progress callback."""
        self._live = p
        self.current = progress_dict(p)
        now = time.monotonic()
        if p.phase == "done" or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._publish("progress", self.current)

    async def tick(self) -> None:
        """While a pass runs, publish its byte progress (uploads report from threads)."""
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            live = self._live
            if live is not None and live.phase != "done":
                self.current = progress_dict(live)
                self._publish("progress", self.current)

    def pass_ended(self) -> None:
        self._live = None


def progress_dict(p: Progress) -> ProgressEvent:
    return {
        "phase": p.phase,
        "root": p.root,
        "files_done": p.files_done,
        "files_total": p.files_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "current": p.current,
        "current_size": p.current_size,
        "active": [
            {"path": rel, "bytes_done": done, "bytes_total": total}
            for rel, (done, total) in list(p.active.items())[:10]
        ],
        "queue": [{"path": rel, "size": size} for rel, size in list(p.waiting.items())[:20]],
    }
