"""WebSocket client for the EXAI daemon (protocol: shared/reference/exai.md).

One call is in flight per connection, so a bare ``{"error": ...}`` frame is
never ambiguous. Connections live in a small pool (``max_connections``); a
connection goes back to the pool only when its last call ended with a frame
from the server. A call that is cancelled (or runs out of time) first tells the
server with ``cancel`` and waits briefly for ``cancelled``; then, like a call
that lost its connection, it closes that connection: the real daemon reads the
next frame only after the running tool returns, so closing is what frees it.
An idle pooled connection sends a ``ping`` every ``keepalive_interval`` and is
dropped when no ``pong`` comes back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from agent.exai.connection import Connection
from agent.exai.errors import ExaiError, ExaiOverCapacity, ExaiTimeout, ExaiUnavailable
from agent.exai.settings import ExaiSettings
from agent.exai.tools import TextCallback, ToolInfo, ToolResult

log = logging.getLogger(__name__)
T = TypeVar("T")

_LIST_TIME_LIMIT = 30.0
_RESTART_CODES = {"1001", "1012", "1013"}
"""Close codes meaning "going away / restarting / try again later": the call is repeated."""


class _Deadline:
    """A time limit whose clock starts on the first :meth:`start` (loop time)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._at: float | None = None

    def start(self) -> float:
        if self._at is None:
            self._at = asyncio.get_running_loop().time() + self.limit
        return self._at

    def left(self) -> float:
        return self.start() - asyncio.get_running_loop().time()


class _Stale(Exception):
    """A pooled connection died before the server saw our request: try a fresh one."""

    def __init__(self, cause: ExaiError) -> None:
        super().__init__(cause.message)
        self.cause = cause


class ExaiClient:
    """A bounded pool of EXAI connections. Use ``async with`` or call :meth:`aclose`."""

    def __init__(self, settings: ExaiSettings) -> None:
        self.settings = settings
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._permits = asyncio.Semaphore(max(1, settings.max_connections))
        self._closed = False
        self._pinging: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ExaiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def list_tools(self) -> list[ToolInfo]:
        return await self._with_connection(
            lambda conn: conn.list_tools(),
            _Deadline(_LIST_TIME_LIMIT),
            f"EXAI did not list its tools within {_LIST_TIME_LIMIT:g} s",
        )

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        on_progress: TextCallback | None = None,
        on_chunk: TextCallback | None = None,
        time_limit: float | None = None,
    ) -> ToolResult:
        """Call ``name`` and return its answer within ``time_limit`` seconds, counted from
        the moment a connection is ours (time queued behind other calls does not count).

        Retried: OVER_CAPACITY (after the server's ``retry_after_secs``), a pooled
        connection found dead, and a server going away or restarting mid-call (close
        1001/1012/1013), each a bounded number of times. Not retried: auth, tool errors,
        timeouts, a crash mid-call. Cancelling the awaiting task closes the call's connection.
        """
        clock = _Deadline(time_limit if time_limit is not None else self.settings.call_timeout)
        message = f"EXAI did not answer {name} within {clock.limit:g} s"
        busy = restarts = 0
        while True:
            try:
                return await self._with_connection(
                    lambda conn: conn.call(name, arguments, on_progress, on_chunk), clock, message
                )
            except ExaiOverCapacity as exc:
                busy += 1
                if busy >= self.settings.over_capacity_attempts:
                    raise ExaiOverCapacity(
                        f"{exc.message} (gave up after {busy} attempts)",
                        code=exc.code,
                        retry_after=exc.retry_after,
                    ) from None
                wait = exc.retry_after if exc.retry_after is not None else self._backoff(busy)
                wait = min(max(wait, 0.0), self.settings.max_retry_after)
            except ExaiUnavailable as exc:
                restarts += 1
                if exc.code not in _RESTART_CODES or restarts >= self.settings.connect_attempts:
                    raise
                wait = self._backoff(restarts)
                log.info("EXAI went away during %s (%s); calling again", name, exc.code)
            if clock.left() <= wait:
                raise ExaiTimeout(message)
            await asyncio.sleep(wait)

    async def _with_connection(
        self, work: Callable[[Connection], Awaitable[T]], clock: _Deadline, timeout_message: str
    ) -> T:
        while True:
            try:
                async with self._lease() as conn:
                    try:
                        async with asyncio.timeout_at(clock.start()):
                            return await work(conn)
                    except TimeoutError:
                        raise ExaiTimeout(timeout_message) from None
                    except ExaiUnavailable as exc:
                        if conn.reused and not conn.answered:
                            raise _Stale(exc) from None
                        raise
            except _Stale:
                log.debug("pooled EXAI connection was dead; opening a fresh one")

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[Connection]:
        if self._closed:
            raise ExaiUnavailable("the EXAI client is closed")
        async with self._permits:
            conn = await self._checkout()
            try:
                yield conn
            finally:
                if conn.in_flight or self._closed or not conn.is_open:
                    await self._discard(conn)
                else:
                    conn.reused = True
                    self._park(conn)

    async def _checkout(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            _stop_keepalive(conn)
            if conn.is_open:
                return conn
            await self._discard(conn)
        return await self._connect()

    def _park(self, conn: Connection) -> None:
        """Put ``conn`` in the pool with its keep-alive timer (a timer, not a task: an
        idle client holds no task)."""
        self._idle.append(conn)
        interval = self.settings.keepalive_interval
        if interval > 0:
            loop = asyncio.get_running_loop()
            conn.keepalive = loop.call_later(interval, self._start_ping, conn)

    def _start_ping(self, conn: Connection) -> None:
        conn.keepalive = None
        if self._closed or conn not in self._idle:
            return
        self._idle.remove(conn)  # nobody may lease it while the ping is out
        task = asyncio.create_task(self._keepalive(conn), name="exai-keepalive")
        self._pinging.add(task)
        task.add_done_callback(self._pinging.discard)

    async def _keepalive(self, conn: Connection) -> None:
        alive = await conn.ping(self.settings.pong_timeout)
        if alive and conn.is_open and not self._closed:
            self._park(conn)
        else:
            log.info("idle EXAI connection did not answer ping; closing it")
            await self._discard(conn)

    async def _connect(self) -> Connection:
        attempts = max(1, self.settings.connect_attempts)
        attempt = 1
        while True:
            try:
                conn = await Connection.open(self.settings)
            except ExaiUnavailable as exc:
                if attempt >= attempts:
                    raise ExaiUnavailable(
                        f"{exc.message} (after {attempts} attempts)", code=exc.code
                    ) from None
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            self._open.add(conn)
            return conn

    def _backoff(self, attempt: int) -> float:
        base = self.settings.backoff_initial * 2.0 ** (attempt - 1)
        return min(base, self.settings.backoff_max) * random.uniform(0.5, 1.0)

    async def _discard(self, conn: Connection) -> None:
        self._open.discard(conn)
        _stop_keepalive(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        await conn.close()

    async def ping(self) -> float:
        """Seconds for a fresh connection's hello round-trip (outside the pool's permits)."""
        started = time.monotonic()
        conn = await Connection.open(self.settings)
        elapsed = time.monotonic() - started
        await conn.close()
        return elapsed

    async def aclose(self) -> None:
        """Close every connection, including those of calls still running (they fail)."""
        self._closed = True
        for task in list(self._pinging):
            task.cancel()
        await asyncio.gather(*self._pinging, return_exceptions=True)
        for conn in list(self._open):
            await self._discard(conn)
        self._idle.clear()


def _stop_keepalive(conn: Connection) -> None:
    if conn.keepalive is not None:
        conn.keepalive.cancel()
        conn.keepalive = None
