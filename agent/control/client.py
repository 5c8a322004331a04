"""Clients of the control API: an async connection, a reconnecting link, a sync call."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.control.peercred import is_same_user
from agent.control.protocol import (
    FORBIDDEN,
    HELLO_EVENT,
    LAGGED_EVENT,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    TIMEOUT,
    ControlError,
    Event,
    Request,
    Response,
    decode_frame,
)

log = logging.getLogger("hubsync.control.client")

CONNECTION_EVENT = "connection"
"""Synthetic event ``AgentLink.events`` yields (seq -1) when the link goes up or down."""


class AgentUnavailable(ConnectionError):
    """No agent answers on the socket, or the connection to it was lost."""


class ControlClient:
    """One connection to the agent. Create it with ``await ControlClient.connect(path)``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hello: dict[str, Any],
        *,
        event_buffer: int = 10_000,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.hello = hello
        """The server's greeting: ``protocol``, ``methods`` and agent info."""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._write_lock = asyncio.Lock()
        self._event_buffer = event_buffer
        self._events: asyncio.Queue[Event | None] | None = None
        self._closed = False
        self._reader_task = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        socket_path: Path,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - per-call deadline
        event_buffer: int = 10_000,
    ) -> ControlClient:
        """Connect and read the agent's ``hello``.

        ``event_buffer``: events received but not yet iterated; a subscriber that
        lets more pile up is disconnected (as the agent does with slow clients).
        """
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(
                    socket_path, limit=MAX_FRAME_BYTES
                )
        except (OSError, TimeoutError) as exc:
            raise AgentUnavailable(f"no agent is running (socket {socket_path}): {exc}") from None
        try:
            sock = writer.get_extra_info("socket")
            if sock is None or not is_same_user(sock, os.getuid()):
                # Whoever serves this socket is not us: never send it a request.
                raise ControlError(FORBIDDEN, f"{socket_path} is served by another user")
            try:
                async with asyncio.timeout(timeout):
                    hello = await _read_hello(reader)
            except TimeoutError:
                raise AgentUnavailable(
                    f"the agent on {socket_path} does not answer (hung or overloaded)"
                ) from None
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            raise
        return cls(reader, writer, hello, event_buffer=event_buffer)

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call deadline is the API
    ) -> Any:
        """Call ``method`` and return its result; a failure raises ``ControlError``."""
        if self._closed:
            raise AgentUnavailable("connection to the agent is closed")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            async with self._write_lock:
                self._writer.write(Request(rid, method, dict(params or {})).encode())
                await self._writer.drain()
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise ControlError(TIMEOUT, f"{method} did not answer within {timeout:g} s") from None
        except ConnectionError as exc:
            raise AgentUnavailable(f"connection to the agent lost: {exc}") from None
        finally:
            self._pending.pop(rid, None)

    async def subscribe(self, topics: Iterable[str] | None = None) -> AsyncIterator[Event]:
        """Subscribe to ``topics`` (every event when empty); returns the events in order.

        The subscription is active when this returns. Iteration ends when the
        connection closes; a ``lagged`` event comes first when the agent dropped
        this client for reading too slowly.
        """
        if self._events is not None:
            raise RuntimeError("this connection is already subscribed")
        self._events = asyncio.Queue()
        await self.call("subscribe", {"topics": list(topics or [])})
        return self._iter_events(self._events)

    @staticmethod
    async def _iter_events(queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
        while (event := await queue.get()) is not None:
            yield event
        queue.put_nowait(None)  # a later iteration ends at once too

    async def close(self) -> None:
        self._closed = True
        self._reader_task.cancel()
        await asyncio.gather(self._reader_task, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._reader.readuntil(b"\n")
                frame = decode_frame(line)
                if isinstance(frame, Response):
                    self._resolve(frame)
                elif isinstance(frame, Event):
                    self._deliver(frame)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except ControlError as exc:
            log.warning("control client: bad frame from the agent: %s", exc.message)
        finally:
            self._closed = True
            self._writer.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AgentUnavailable("connection to the agent lost"))
            if self._events is not None:
                self._events.put_nowait(None)

    def _resolve(self, response: Response) -> None:
        future = self._pending.get(response.id) if isinstance(response.id, int) else None
        if future is None or future.done():
            if response.error is not None:
                log.warning("control client: agent error %s", response.error)
            return
        if response.ok:
            future.set_result(response.result)
        else:
            assert response.error is not None
            future.set_exception(response.error)

    def _deliver(self, event: Event) -> None:
        if self._events is None:
            return
        if self._events.qsize() >= self._event_buffer and event.event != LAGGED_EVENT:
            raise ConnectionError("events are not being consumed")  # ends the read loop
        self._events.put_nowait(event)


async def _read_hello(reader: asyncio.StreamReader) -> dict[str, Any]:
    try:
        line = await reader.readuntil(b"\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise AgentUnavailable(f"the agent closed the connection: {exc}") from None
    frame = decode_frame(line)
    if isinstance(frame, Response) and frame.error is not None:
        raise frame.error  # e.g. forbidden
    if not isinstance(frame, Event) or frame.event != HELLO_EVENT:
        raise ControlError("bad_frame", "the agent did not greet with hello")
    if not isinstance(frame.data, dict):
        raise ControlError("bad_frame", "the agent did not greet with hello")
    version = frame.data.get("protocol")
    if version != PROTOCOL_VERSION:
        raise ControlError(
            "version_mismatch", f"agent speaks protocol {version}, this client {PROTOCOL_VERSION}"
        )
    return frame.data


class AgentLink:
    """A connection that comes back: reconnects with exponential backoff and jitter.

    ``events()`` drives it: it yields a ``connection`` event
    (``{"connected": True, "hello": {...}}`` / ``{"connected": False}``, seq -1)
    on each change, and the subscribed events in between. ``call()`` uses the
    current connection or raises ``AgentUnavailable``.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        topics: Iterable[str] | None = None,
        initial_backoff: float = 0.2,
        max_backoff: float = 10.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.socket_path = socket_path
        self.topics = list(topics or [])
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.client: ControlClient | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call deadline is the API
    ) -> Any:
        client = self.client
        if client is None or client.closed:
            raise AgentUnavailable("not connected to the agent")
        return await client.call(method, params, timeout=timeout)

    async def events(self) -> AsyncGenerator[Event, None]:
        delay = self.initial_backoff
        try:
            while True:
                try:
                    client = await ControlClient.connect(
                        self.socket_path, timeout=self.connect_timeout
                    )
                except (AgentUnavailable, ControlError) as exc:
                    log.debug("agent link: %s; retrying in %.1f s", exc, delay)
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self.max_backoff)
                    continue
                self.client = client
                try:
                    stream = await client.subscribe(self.topics)
                    delay = self.initial_backoff
                    yield Event(CONNECTION_EVENT, {"connected": True, "hello": client.hello}, -1)
                    async for event in stream:
                        yield event
                except (AgentUnavailable, ControlError) as exc:
                    log.debug("agent link: subscription failed: %s", exc)
                finally:
                    self.client = None
                    await client.close()
                yield Event(CONNECTION_EVENT, {"connected": False}, -1)
        finally:
            await self.close()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()


def call_sync(
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    socket_path: Path | None = None,
    timeout: float = 10.0,
) -> Any:
    """One call from synchronous code (the CLI); raises ``AgentUnavailable`` or ``ControlError``."""
    if socket_path is None:
        from agent.platform.paths import resolve_paths

        socket_path = resolve_paths().control_socket

    async def once() -> Any:
        async with await ControlClient.connect(socket_path, timeout=timeout) as client:
            return await client.call(method, params, timeout=timeout)

    return asyncio.run(once())
