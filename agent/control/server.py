"""The control API server: an asyncio Unix-socket server for same-user clients.

Security: the socket lives in a 0700 runtime directory and is itself 0600, and
every accepted connection is checked with the kernel's peer credentials; a peer
running as another uid gets a ``forbidden`` error frame and is closed.

Flow control: each client has one writer task. Responses are bounded by the
number of requests in flight (reading stops while ``max_inflight`` responses
are unsent); queued events are bounded by ``queue_limit`` frames and
``queue_bytes`` bytes — a subscriber that falls that far behind gets a
``lagged`` event and is disconnected, so publishing never waits on a slow client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import stat
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from agent.control.peercred import is_same_user
from agent.control.protocol import (
    BAD_FRAME,
    BAD_PARAMS,
    FORBIDDEN,
    FRAME_TOO_LARGE,
    HELLO_EVENT,
    INTERNAL,
    LAGGED_EVENT,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    UNKNOWN_METHOD,
    ControlError,
    Event,
    Request,
    Response,
    decode_frame,
)
from sync.errors import SyncError

log = logging.getLogger("hubsync.control")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

BUILTIN_METHODS = frozenset({"subscribe", "unsubscribe"})
# Longest path a sockaddr_un holds on every supported OS (macOS: 104 incl. NUL).
MAX_SOCKET_PATH = 103
CLOSE_GRACE_SECONDS = 1.0
LAGGED_GRACE_SECONDS = 10.0
"""How long a dropped client has to read its backlog and the ``lagged`` notice."""
# Kinds of queued frames: replies free an in-flight slot, events count toward the lag limit.
_REPLY, _EVENT, _NOTICE = 0, 1, 2


class _Client:
    """One accepted connection and its outgoing queue."""

    def __init__(
        self, cid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inflight: int
    ) -> None:
        self.cid = cid
        self.reader = reader
        self.writer = writer
        self.out: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self.pending_events = 0
        self.pending_bytes = 0
        self.slots = asyncio.Semaphore(inflight)
        self.topics: frozenset[str] | None = None
        """``None``: not subscribed; empty: every event; else only these."""
        self.lagged = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.writer_task: asyncio.Task[None] | None = None
        self.drop_task: asyncio.Task[None] | None = None

    def wants(self, event: str) -> bool:
        return self.topics is not None and (not self.topics or event in self.topics)

    def send_reply(self, frame: bytes) -> None:
        """Queue the answer to one frame read; the caller holds one of ``slots``."""
        self.out.put_nowait((frame, _REPLY))

    def send_event(self, frame: bytes) -> None:
        self.pending_events += 1
        self.pending_bytes += len(frame)
        self.out.put_nowait((frame, _EVENT))

    def send_notice(self, frame: bytes) -> None:
        self.out.put_nowait((frame, _NOTICE))


class ControlServer:
    """Serve registered methods and published events on ``socket_path``.

    Use ``async with ControlServer(path) as server`` or ``await start()`` /
    ``await close()``. ``register`` and ``publish`` must be called from the
    event loop's thread.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        queue_limit: int = 1000,
        queue_bytes: int = 16 * 1024 * 1024,
        max_inflight: int = 16,
        max_frame: int = MAX_FRAME_BYTES,
        allowed_uid: int | None = None,
        server_info: dict[str, Any] | None = None,
        lagged_grace: float = LAGGED_GRACE_SECONDS,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.queue_limit = queue_limit
        self.queue_bytes = queue_bytes
        self.max_inflight = max_inflight
        self.max_frame = max_frame
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self.server_info = dict(server_info or {})
        self.lagged_grace = lagged_grace
        self._handlers: dict[str, Handler] = {}
        self._clients: set[_Client] = set()
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._open_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        """Every per-client task (writers, handlers, drops): ``close`` ends them all."""
        self._loop_thread: int | None = None
        """The thread of the loop serving; ``publish`` refuses any other."""
        """Accepted connections whose socket is not closed yet (``close`` waits for them)."""
        self._ids = itertools.count(1)
        self._seq = 0
        self._server: asyncio.Server | None = None
        self._socket_ino: int | None = None

    # -- registry and events -------------------------------------------------

    def register(self, name: str, handler: Handler) -> None:
        """Serve ``name`` with ``await handler(params)``; its return value is the result.

        A handler reports failure by raising ``ControlError(code, message)`` or a
        ``sync.errors.SyncError`` (its ``kind`` becomes the code); anything else
        becomes ``internal`` and is logged, never echoed to the client.
        """
        if name in BUILTIN_METHODS:
            raise ValueError(f"{name!r} is built in")
        if name in self._handlers:
            raise ValueError(f"method {name!r} is already registered")
        self._handlers[name] = handler

    @property
    def methods(self) -> list[str]:
        return sorted({*self._handlers, *BUILTIN_METHODS})

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def seq(self) -> int:
        """Sequence number of the last published event."""
        return self._seq

    def publish(self, event: str, data: Any) -> int:
        """Queue an event for every subscriber of ``event``; never blocks. Returns its seq.

        An event that cannot be encoded (not JSON, or over the frame limit) is a
        bug of the caller: it is logged and dropped, the agent carries on. Called
        from another thread (a transfer's), it raises: the clients' queues belong to
        the loop, so hand the event over with ``loop.call_soon_threadsafe``.
        """
        if self._loop_thread is not None and threading.get_ident() != self._loop_thread:
            raise RuntimeError(
                f"ControlServer.publish({event!r}) called off the event loop's thread"
            )
        self._seq += 1
        targets = [c for c in self._clients if not c.lagged and c.wants(event)]
        if not targets:
            return self._seq
        try:
            frame = Event(event, data, self._seq).encode()
        except ValueError:
            log.exception("control API: event %r could not be encoded; dropped", event)
            return self._seq
        for client in targets:
            if (
                client.pending_events >= self.queue_limit
                or client.pending_bytes + len(frame) > self.queue_bytes
            ):
                self._drop_lagged(client)
            else:
                client.send_event(frame)
        return self._seq

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        sock = self._bind()
        self._loop_thread = threading.get_ident()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=self.max_frame
            )
        except BaseException:
            sock.close()
            self._unlink_socket()
            raise
        log.info("control API listening on %s", self.socket_path)

    async def close(self) -> None:
        """Stop accepting, flush what is queued to each client, close them all."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._conn_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Teardowns interrupted by the cancellation may have left tasks and sockets behind.
        leftovers = list(self._tasks)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for writer in list(self._open_writers):
            await _close_writer(writer, 0)
        await server.wait_closed()
        self._unlink_socket()
        log.info("control API closed")

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _bind(self) -> socket.socket:
        path = self.socket_path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ValueError(f"control socket path too long for a Unix socket: {path}")
        runtime = path.parent
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = runtime.stat()
        if st.st_uid != os.getuid():
            raise PermissionError(f"{runtime} belongs to another user")
        if stat.S_IMODE(st.st_mode) & 0o077:
            runtime.chmod(0o700)
        self._remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(path))
            # The directory is 0700, so nobody else can reach the socket between bind and chmod.
            path.chmod(0o600)
            self._socket_ino = path.stat().st_ino
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            self._unlink_socket()
            raise
        return sock

    @staticmethod
    def _remove_stale(path: Path) -> None:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            path.unlink(missing_ok=True)  # nobody listens: left over from a crash
            return
        finally:
            probe.close()
        raise FileExistsError(f"another process is serving on {path}")

    def _unlink_socket(self) -> None:
        with contextlib.suppress(OSError):
            if self._socket_ino is not None and self.socket_path.stat().st_ino == self._socket_ino:
                self.socket_path.unlink()
        self._socket_ino = None

    # -- one connection ----------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        self._open_writers.add(writer)
        client = _Client(next(self._ids), reader, writer, self.max_inflight)
        flush = False
        try:
            sock = writer.get_extra_info("socket")
            if sock is None or not is_same_user(sock, self.allowed_uid):
                log.warning("control API: refused a connection from another user")
                writer.write(
                    Response(
                        None, False, error=ControlError(FORBIDDEN, "not the agent's user")
                    ).encode()
                )
                return
            self._clients.add(client)
            client.writer_task = self._spawn(self._write_loop(client))
            hello = {"protocol": PROTOCOL_VERSION, "methods": self.methods, **self.server_info}
            client.send_notice(Event(HELLO_EVENT, hello, self._seq).encode())
            await self._read_loop(client)
        except asyncio.CancelledError:
            flush = True  # server shutdown: deliver what is queued, then close
        finally:
            try:
                await self._teardown(client, flush=flush)
            except asyncio.CancelledError:
                # close() interrupted this teardown and finishes it; a connection task
                # must not end cancelled (asyncio's stream callback would log an error).
                pass
            finally:
                self._conn_tasks.discard(task)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read_loop(self, client: _Client) -> None:
        reader = client.reader
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                line = b""
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # peer closed (possibly mid-frame)
            if client.lagged:
                return
            await client.slots.acquire()  # every frame read gets exactly one reply
            if not line:
                if not await _skip_line(reader):
                    return
                err = ControlError(FRAME_TOO_LARGE, f"frames are limited to {self.max_frame} bytes")
                client.send_reply(Response(None, False, error=err).encode())
                continue
            try:
                frame = decode_frame(line)
            except ControlError as exc:
                client.send_reply(Response(None, False, error=exc).encode())
                continue
            if not isinstance(frame, Request):
                err = ControlError(BAD_FRAME, "clients may only send requests")
                client.send_reply(Response(None, False, error=err).encode())
                continue
            task = self._spawn(self._dispatch(client, frame))
            client.tasks.add(task)
            task.add_done_callback(client.tasks.discard)

    async def _write_loop(self, client: _Client) -> None:
        writer = client.writer
        while True:
            frame, kind = await client.out.get()
            if kind == _EVENT:
                client.pending_events -= 1
                client.pending_bytes -= len(frame)
            writer.write(frame)
            if kind == _REPLY:
                client.slots.release()
            try:
                await writer.drain()
            except ConnectionError:
                return

    async def _dispatch(self, client: _Client, req: Request) -> None:
        try:
            if req.method in BUILTIN_METHODS:
                result = self._subscription(client, req)
            else:
                handler = self._handlers.get(req.method)
                if handler is None:
                    raise ControlError(UNKNOWN_METHOD, f"no method {req.method!r}")
                result = await handler(req.params)
            try:
                frame = Response(req.id, True, result).encode()
            except ValueError:
                log.exception("control API: method %s returned an unencodable result", req.method)
                raise ControlError(INTERNAL, "the result could not be encoded") from None
        except ControlError as exc:
            frame = Response(req.id, False, error=exc).encode()
        except SyncError as exc:
            frame = Response(req.id, False, error=ControlError(exc.kind, exc.message)).encode()
        except Exception:
            log.exception("control API: method %s failed", req.method)
            err = ControlError(INTERNAL, "internal error (see the agent log)")
            frame = Response(req.id, False, error=err).encode()
        client.send_reply(frame)

    def _subscription(self, client: _Client, req: Request) -> dict[str, Any]:
        if req.method == "unsubscribe":
            client.topics = None
            return {"topics": None, "seq": self._seq}
        topics = req.params.get("topics") or []
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ControlError(BAD_PARAMS, "topics must be a list of event names")
        client.topics = frozenset(topics)
        return {"topics": sorted(client.topics), "seq": self._seq}

    def _drop_lagged(self, client: _Client) -> None:
        """Replace the client's backlog with a ``lagged`` notice and disconnect it."""
        client.lagged = True
        log.warning(
            "control API: client %d fell %d events (%d bytes) behind; dropped",
            client.cid,
            client.pending_events,
            client.pending_bytes,
        )
        if client.writer_task is not None:
            client.writer_task.cancel()
        notice = Event(LAGGED_EVENT, {"limit": self.queue_limit, "seq": self._seq}, self._seq)
        client.writer.write(notice.encode())
        client.writer.close()  # stops reading; connection_lost (and EOF) once flushed...
        # ...or, if the client does not read its backlog in time, it is cut off.
        client.drop_task = self._spawn(_close_writer(client.writer, self.lagged_grace))

    async def _flush_and_stop_writer(self, client: _Client) -> None:
        """Write whatever is queued without waiting for the peer, then stop the writer."""
        if client.writer_task is not None:
            client.writer_task.cancel()
            await asyncio.gather(client.writer_task, return_exceptions=True)
            client.writer_task = None
        transport = client.writer.transport
        while not client.out.empty() and not transport.is_closing():
            frame, _ = client.out.get_nowait()
            transport.write(frame)

    async def _teardown(self, client: _Client, *, flush: bool) -> None:
        self._clients.discard(client)
        pending = list(client.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if flush:
            await self._flush_and_stop_writer(client)
        elif client.writer_task is not None:
            client.writer_task.cancel()
            await asyncio.gather(client.writer_task, return_exceptions=True)
        if client.drop_task is not None:  # dropped for lagging: closing already
            await asyncio.gather(client.drop_task, return_exceptions=True)
        else:
            await _close_writer(client.writer, CLOSE_GRACE_SECONDS)
        self._open_writers.discard(client.writer)


async def _close_writer(writer: asyncio.StreamWriter, grace: float) -> None:
    """Close; give the peer ``grace`` seconds to take what is buffered, then cut it off.

    Returns once the socket is closed. (``asyncio.wait`` rather than ``wait_for``:
    cancelling ``wait_closed`` would cancel the protocol's own close future.)
    """
    writer.close()
    waiter = asyncio.ensure_future(writer.wait_closed())
    waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
    done, _ = await asyncio.wait({waiter}, timeout=grace)
    if not done:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.fileno() != -1:  # abort() of a lost transport raises
            writer.transport.abort()
        await asyncio.wait({waiter})


async def _skip_line(reader: asyncio.StreamReader) -> bool:
    """Discard the rest of an oversized frame, up to its newline; False if the peer left."""
    while True:
        try:
            await reader.readuntil(b"\n")
            return True
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
