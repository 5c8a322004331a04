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
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from agent.exai.errors import (
    ExaiAuthError,
    ExaiError,
    ExaiOverCapacity,
    ExaiProtocolError,
    ExaiTimeout,
    ExaiToolError,
    ExaiUnavailable,
)
from agent.exai.settings import ExaiSettings

log = logging.getLogger(__name__)
_frames_log = logging.getLogger(__name__ + ".frames")
_frames_log.setLevel(logging.INFO)
"""websockets logs every frame at DEBUG, our hello (with the token) included: never that."""

T = TypeVar("T")
TextCallback = Callable[[str], None]
"""Receives one progress message or one streamed chunk."""

_MAX_REASON = 300
_LIST_TIME_LIMIT = 30.0
_RESTART_CODES = {"1001", "1012", "1013"}
"""Close codes meaning "going away / restarting / try again later": the call is repeated."""


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def properties(self) -> Mapping[str, Any]:
        props = self.input_schema.get("properties")
        return props if isinstance(props, Mapping) else {}

    @property
    def required(self) -> list[str]:
        req = self.input_schema.get("required")
        return [str(r) for r in req] if isinstance(req, list) else []


@dataclass(frozen=True)
class ToolResult:
    """The answer of one call, unwrapped from EXAI's ``{status, content, ...}`` envelope."""

    tool: str
    content: str
    content_type: str
    metadata: Mapping[str, Any]
    structured: bool
    """True when ``content`` is JSON (written as ``.json``)."""
    streamed: str = ""

    @property
    def extension(self) -> str:
        return "json" if self.structured else "md"


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _json_value(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def parse_outputs(tool: str, outputs: object, streamed: str = "") -> ToolResult:
    """Turn ``call_tool_res.outputs`` into a result; a ``status: error`` envelope raises."""
    texts = [
        o["text"]
        for o in (outputs if isinstance(outputs, list) else [])
        if isinstance(o, dict)
        and o.get("type", "text") == "text"
        and isinstance(o.get("text"), str)
    ]
    text = "\n".join(texts) if texts else streamed
    value = _json_value(text)
    if isinstance(value, dict) and "status" in value:
        metadata = value.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        content = value.get("content")
        if str(value["status"]).lower() in ("error", "failed", "failure"):
            reason = content or metadata.get("error") or "no reason given"
            raise ExaiToolError(f"EXAI tool {tool} reported an error: {_short(reason)}")
        content_type = str(value.get("content_type") or "text")
        if isinstance(content, str) and content_type == "json":
            content = _json_value(content) if _json_value(content) is not None else content
        if isinstance(content, dict | list):
            body = json.dumps(content, indent=2, ensure_ascii=False)
            return ToolResult(tool, body, "json", metadata, True, streamed)
        body = "" if content is None else str(content)
        return ToolResult(tool, body, content_type, metadata, False, streamed)
    if isinstance(value, dict | list):
        body = json.dumps(value, indent=2, ensure_ascii=False)
        return ToolResult(tool, body, "json", {}, True, streamed)
    return ToolResult(tool, text, "text", {}, False, streamed)


def error_from_frame(error: object, tool: str | None) -> ExaiError:
    """Map any of the three error shapes' ``error`` member to an error kind."""
    if isinstance(error, dict):
        code = str(error.get("code") or "ERROR")
        message = _short(error.get("message") or code)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    else:
        code, message, details = "ERROR", _short(error), {}
    what = f"EXAI tool {tool}" if tool else "EXAI"
    if code == "OVER_CAPACITY":
        retry = details.get("retry_after_secs") if isinstance(details, dict) else None
        retry_after = float(retry) if isinstance(retry, int | float) else None
        return ExaiOverCapacity(f"{what} is busy: {message}", code=code, retry_after=retry_after)
    if code == "TIMEOUT":
        return ExaiTimeout(f"{what} timed out on the server: {message}", code=code)
    return ExaiToolError(f"{what} failed: {message} ({code})", code=code)


def closed_error(exc: ConnectionClosed, during: str) -> ExaiError:
    """Explain a close code the EXAI daemon uses."""
    frame = exc.rcvd if exc.rcvd is not None else exc.sent
    code = frame.code if frame else None
    if code == 1009:
        return ExaiProtocolError("EXAI sent a message over the size limit (1009)", code="1009")
    reason = f": {_short(frame.reason)}" if frame and frame.reason else ""
    if code == 4003:
        if frame and frame.reason in (JWT_REQUIRED, UNAUTHORIZED):
            return hello_rejected(frame.reason, None)
        return ExaiAuthError(f"EXAI rejected the token (close 4003{reason})", code="4003")
    if code == 4002:
        return ExaiProtocolError("EXAI closed the connection: no hello in time (4002)", code="4002")
    if code == 4000:
        return ExaiProtocolError(f"EXAI could not parse a message (4000{reason})", code="4000")
    if code == 4001:
        return ExaiProtocolError(f"EXAI does not speak this protocol (4001{reason})", code="4001")
    if code == 1008:
        return ExaiUnavailable(
            f"EXAI refused the connection: too many connections (1008{reason})", code="1008"
        )
    shown = code if code is not None else "none"
    return ExaiUnavailable(
        f"EXAI closed the connection {during} (code {shown}{reason})",
        code=None if code is None else str(code),
    )


JWT_REQUIRED = "jwt_required"
UNAUTHORIZED = "unauthorized"


def hello_rejected(error: str, settings: ExaiSettings | None) -> ExaiAuthError:
    """The one message for each reason the daemon refuses a hello (it closes 4003 after)."""
    if error == JWT_REQUIRED:
        if settings is not None and settings.jwt:
            why = "it refused the JWT HubSync sent (expired, or signed with another secret)"
        else:
            why = "none is set"
        return ExaiAuthError(
            f"this EXAI server needs a JWT: {why}; set EXAI_WS_JWT or store one with "
            "`hubsync exai token --jwt`",
            code=JWT_REQUIRED,
        )
    if error == UNAUTHORIZED:
        hint = (
            "check EXAI_WS_TOKEN or `hubsync exai token`"
            if settings is None or settings.token
            else "no token set (EXAI_WS_TOKEN or `hubsync exai token`)"
        )
        return ExaiAuthError(f"EXAI rejected the token (unauthorized): {hint}", code=UNAUTHORIZED)
    why = _short(error or "no reason given")
    hint = (
        ""
        if settings is None or settings.token
        else "; no token set (EXAI_WS_TOKEN or the keyring)"
    )
    return ExaiAuthError(f"EXAI rejected the token ({why}{hint})", code="4003")


class Connection:
    """One authenticated WebSocket; carries at most one request at a time."""

    def __init__(self, ws: ClientConnection, session_id: str, cancel_grace: float = 1.0) -> None:
        self.ws = ws
        self.session_id = session_id
        self.cancel_grace = cancel_grace
        self.in_flight = False
        """True from sending a request until its final frame: then the connection is dirty."""
        self.answered = False
        """True once any frame of the current request arrived (the server saw it)."""
        self.reused = False
        self.keepalive: asyncio.TimerHandle | None = None
        """The pending ``ping`` of an idle pooled connection."""

    @classmethod
    async def open(cls, settings: ExaiSettings) -> Connection:
        try:
            ws = await connect(
                settings.url,
                open_timeout=settings.open_timeout,
                max_size=settings.max_message_bytes,
                close_timeout=2,
                proxy=None,
                logger=_frames_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise ExaiAuthError(f"EXAI rejected the token (HTTP {status})") from None
            raise ExaiUnavailable(f"EXAI at {settings.url} answered HTTP {status}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            reason = _short(str(exc) or type(exc).__name__)
            raise ExaiUnavailable(f"cannot reach EXAI at {settings.url}: {reason}") from None
        session_id = f"hubsync-{secrets.token_hex(8)}"
        conn = cls(ws, session_id, settings.cancel_grace)
        try:
            await conn._hello(settings)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _hello(self, settings: ExaiSettings) -> None:
        hello = {"op": "hello", "session_id": self.session_id, "token": settings.token}
        if settings.jwt:
            hello["jwt"] = settings.jwt
        try:
            async with asyncio.timeout(settings.hello_timeout):
                await self.send(hello, "during hello")
                while True:
                    msg = await self.receive("during hello")
                    if msg.get("op") == "hello_ack":
                        break
                    if "error" in msg:
                        raise error_from_frame(msg["error"], None)
        except TimeoutError:
            raise ExaiUnavailable(
                f"EXAI at {settings.url} did not acknowledge hello within "
                f"{settings.hello_timeout:g} s"
            ) from None
        if msg.get("ok") is not True:
            raise hello_rejected(str(msg.get("error") or ""), settings)

    @property
    def is_open(self) -> bool:
        return self.ws.state is State.OPEN

    async def receive(self, during: str) -> dict[str, Any]:
        try:
            raw = await self.ws.recv()
        except ConnectionClosed as exc:
            raise closed_error(exc, during) from None
        if isinstance(raw, bytes):
            raise ExaiProtocolError("EXAI sent a binary frame; the protocol is JSON text")
        try:
            msg = json.loads(raw)
        except ValueError:
            raise ExaiProtocolError("EXAI sent a frame that is not JSON") from None
        if not isinstance(msg, dict):
            raise ExaiProtocolError("EXAI sent a JSON frame that is not an object")
        return msg

    async def send(self, msg: Mapping[str, Any], during: str) -> None:
        try:
            await self.ws.send(json.dumps(msg))
        except ConnectionClosed as exc:
            raise closed_error(exc, during) from None

    async def list_tools(self) -> list[ToolInfo]:
        self.in_flight, self.answered = True, False
        await self.send({"op": "list_tools"}, "before list_tools")
        while True:
            msg = await self.receive("during list_tools")
            self.answered = True
            op = msg.get("op")
            if op == "list_tools_res":
                self.in_flight = False
                return [_tool_info(t) for t in msg.get("tools") or [] if isinstance(t, dict)]
            if "error" in msg and op in (None, "error", "list_tools_res"):
                self.in_flight = False
                raise error_from_frame(msg["error"], None)

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        on_progress: TextCallback | None,
        on_chunk: TextCallback | None,
    ) -> ToolResult:
        request_id = f"r-{secrets.token_hex(8)}"
        self.in_flight, self.answered = True, False
        frame = {"op": "call_tool", "request_id": request_id, "name": name, "arguments": arguments}
        await self.send(frame, "before the call was sent")
        try:
            return await self._answer(request_id, name, on_progress, on_chunk)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(request_id))
            raise

    async def _cancel(self, request_id: str) -> None:
        """Send ``cancel`` for the running call and wait briefly for ``cancelled``; the
        connection stays dirty (``in_flight``), so the pool closes it afterwards."""
        with contextlib.suppress(ExaiError, TimeoutError):
            async with asyncio.timeout(self.cancel_grace):
                await self.send({"op": "cancel", "request_id": request_id}, "sending cancel")
                while True:
                    msg = await self.receive("waiting for cancelled")
                    if msg.get("op") == "cancelled" and msg.get("request_id") == request_id:
                        return

    async def ping(self, time_limit: float) -> bool:
        """A ``ping`` round-trip on an idle connection; False when no ``pong`` came back."""
        request_id = f"p-{secrets.token_hex(8)}"
        with contextlib.suppress(ExaiError, TimeoutError):
            async with asyncio.timeout(time_limit):
                await self.send({"op": "ping", "request_id": request_id}, "sending ping")
                while True:
                    msg = await self.receive("waiting for pong")
                    if msg.get("op") == "pong":
                        return True
        return False

    async def _answer(
        self,
        request_id: str,
        name: str,
        on_progress: TextCallback | None,
        on_chunk: TextCallback | None,
    ) -> ToolResult:
        chunks: list[str] = []
        while True:
            msg = await self.receive(f"during {name}")
            rid = msg.get("request_id")
            if rid is not None and rid != request_id:
                continue  # a late frame of an earlier request
            self.answered = True
            op = msg.get("op")
            if op == "progress":
                _relay(on_progress, str(msg.get("message", "")))
            elif op == "stream_chunk":
                chunk = str(msg.get("chunk", ""))
                chunks.append(chunk)
                _relay(on_chunk, chunk)
            elif op == "call_tool_res":
                self.in_flight = False
                if msg.get("error"):
                    raise error_from_frame(msg["error"], name)
                if msg.get("ok") is False:
                    raise ExaiToolError(f"EXAI tool {name} failed without a reason")
                return parse_outputs(name, msg.get("outputs"), "".join(chunks))
            elif "error" in msg and op in (None, "error"):
                self.in_flight = False
                raise error_from_frame(msg["error"], name)

    async def close(self) -> None:
        try:
            await self.ws.close()
        except asyncio.CancelledError:
            self.ws.transport.abort()
            raise
        except Exception:  # the socket is gone either way; make sure of it
            self.ws.transport.abort()


def _relay(callback: TextCallback | None, text: str) -> None:
    if callback is None:
        return
    try:
        callback(text)
    except Exception:
        log.exception("EXAI progress callback failed")


def _tool_info(raw: Mapping[str, Any]) -> ToolInfo:
    schema = raw.get("inputSchema") or raw.get("input_schema") or {}
    return ToolInfo(
        name=str(raw.get("name", "")),
        description=str(raw.get("description") or ""),
        input_schema=schema if isinstance(schema, dict) else {},
    )


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
