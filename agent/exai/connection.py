"""One WebSocket connection to the EXAI daemon: hello, frames, one call at a time.

Errors arrive as frames or as close codes; both become the typed errors of
``agent.exai.errors``. A call that is cancelled tells the server with ``cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

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
from agent.exai.tools import TextCallback, ToolInfo, ToolResult, parse_outputs, short, tool_info

log = logging.getLogger(__name__)
_frames_log = logging.getLogger(__name__ + ".frames")
_frames_log.setLevel(logging.INFO)
"""websockets logs every frame at DEBUG, our hello (with the token) included: never that."""


def error_from_frame(error: object, tool: str | None) -> ExaiError:
    """Map any of the three error shapes' ``error`` member to an error kind."""
    if isinstance(error, dict):
        code = str(error.get("code") or "ERROR")
        message = short(error.get("message") or code)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    else:
        code, message, details = "ERROR", short(error), {}
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
    reason = f": {short(frame.reason)}" if frame and frame.reason else ""
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
    why = short(error or "no reason given")
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
            reason = short(str(exc) or type(exc).__name__)
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
                return [tool_info(t) for t in msg.get("tools") or [] if isinstance(t, dict)]
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
