"""The one pooled HTTP client every Supabase call goes through.

supabase-py's auth, PostgREST and Storage clients and HubSync's own streaming
downloads and TUS requests all share one ``httpx.AsyncClient``. Its event hooks
do two jobs for all of them at once: a token bucket paces requests to the
configured rate, and the status and ``Retry-After`` of every response are noted
in a context variable, because storage3 and postgrest drop both when they turn
a response into an exception (see :mod:`sync.remotes.supabase.errors`).
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx


@dataclass(frozen=True, slots=True)
class ResponseNote:
    status: int
    retry_after: float | None


_last_response: ContextVar[ResponseNote | None] = ContextVar("hubsync_last_response", default=None)


def last_response() -> ResponseNote | None:
    """Status of the latest response seen by the current task."""
    return _last_response.get()


def forget_response() -> None:
    _last_response.set(None)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class TokenBucket:
    """Client-side request pacing: ``rate`` requests/s with bursts up to ``burst``.

    ``rate <= 0`` disables the limit. Waiters are served in arrival order.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._pause_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a 429 with Retry-After)."""
        self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._pause_until > now:
                await asyncio.sleep(self._pause_until - now)
            if self.rate <= 0:
                return
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
                self._stamp = time.monotonic()
                self._tokens = 1.0
            self._tokens -= 1.0


def make_http_client(
    bucket: TokenBucket,
    *,
    timeout: float = 60.0,
    max_connections: int = 16,
) -> httpx.AsyncClient:
    """The shared client: pooled, paced, with response notes for error mapping."""

    async def on_request(request: httpx.Request) -> None:
        await bucket.acquire()

    async def on_response(response: httpx.Response) -> None:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        _last_response.set(ResponseNote(response.status_code, retry_after))
        if response.status_code == 429 and retry_after:
            bucket.pause(min(retry_after, 300.0))

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=10.0),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=True,
        event_hooks={"request": [on_request], "response": [on_response]},
    )
