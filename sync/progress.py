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
    """Changes of a :class:`Progress` made on the loop, whichever thread asks for them.

    Changes asked from threads are applied together a moment later (:data:`EVERY`):
    a batch of ten thousand small files then wakes the loop a few times a second,
    not once per file. :meth:`flush` applies what is waiting at once.
    """

    EVERY = 0.05
    """Seconds between two applications of changes asked from threads."""

    def __init__(self, state: Progress, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[Change] = []
        self._scheduled = False

    def post(self, change: Change) -> None:
        """Apply ``change`` on the loop, in the order asked, within :data:`EVERY` seconds."""
        with self._lock:
            self._pending.append(change)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._loop.call_later, self.EVERY, self.flush)
        except RuntimeError:  # the loop is closed: nobody is watching any more
            pass

    def flush(self) -> None:
        """Apply every change asked so far (on the loop)."""
        with self._lock:
            changes, self._pending = self._pending, []
            self._scheduled = False
        for change in changes:
            change(self.state)
