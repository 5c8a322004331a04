"""Bandwidth limits: a token bucket that transfer threads pay into as bytes move.

Transfers report progress from their worker threads after each chunk; the
limiter makes the reporting thread wait until the bytes fit the rate, which
slows that transfer down without touching the event loop. A rate of 0 means
unlimited, and the rate can change while transfers run (settings).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sync.remotes.base import ProgressFn


class Bandwidth:
    def __init__(self, bytes_per_second: float = 0.0, *, burst_seconds: float = 0.25) -> None:
        self._lock = threading.Lock()
        self._rate = 0.0
        self._burst_seconds = burst_seconds
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self.set_rate(bytes_per_second)

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, bytes_per_second: float) -> None:
        with self._lock:
            self._rate = max(0.0, float(bytes_per_second))
            self._tokens = min(self._tokens, self._rate * self._burst_seconds)

    def consume(self, n: int) -> None:
        """Account for ``n`` bytes; blocks the calling (worker) thread while over the rate."""
        with self._lock:
            if self._rate <= 0:
                return
            now = time.monotonic()
            cap = self._rate * self._burst_seconds
            self._tokens = min(cap, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)

    def wrap(self, progress: ProgressFn | None) -> ProgressFn | None:
        """A progress callback that also pays for the bytes (None stays None when unlimited)."""
        if progress is None and self._rate <= 0:
            return None
        inner: Callable[[int], None] = progress or (lambda _n: None)

        def paying(n: int) -> None:
            self.consume(n)
            inner(n)

        return paying
