"""What a pass shows while it runs, and how transfer threads hand it their counts.

:class:`Progress` belongs to the event loop: the engine reads it and hands it to
the progress sink there. Bytes counted in hub or transfer threads reach it through
:class:`ThreadedProgress`, which posts them to the loop with
``call_soon_threadsafe`` (one wake-up per burst, not one per block).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    phase: str
    root: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str = ""
    current_size: int = 0
    """Size of ``current`` (bytes), shown beside its name."""
    active: dict[str, list[int]] = field(default_factory=dict)
    """Uploads under way: relpath → [bytes done, bytes total]."""
    waiting: dict[str, int] = field(default_factory=dict)
    """Uploads of the current chunk not started yet: relpath → size."""


ProgressSink = Callable[[Progress], None]
Change = Callable[[Progress], None]


class ThreadedProgress:
    """Changes of a :class:`Progress` made on the loop, whichever thread asks for them."""

    def __init__(self, state: Progress, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[Change] = []

    def post(self, change: Change) -> None:
        """Apply ``change`` on the loop, in the order asked, as soon as the loop runs."""
        with self._lock:
            self._pending.append(change)
            if len(self._pending) > 1:
                return  # a drain is on its way
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is watching any more
            pass

    def _drain(self) -> None:
        with self._lock:
            changes, self._pending = self._pending, []
        for change in changes:
            change(self.state)
