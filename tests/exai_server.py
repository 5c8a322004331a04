"""A stand-in for the EXAI daemon that speaks its real WebSocket protocol.

Used by the tests and runnable by hand::

    python -m tests.exai_server --port 8079 --token T

Like the real daemon (EX-AI-MCP-Server, ``src/daemon/ws``) it checks the token,
then the JWT when one is required (``jwt_required`` and close 4003), answers
``ping`` with ``pong`` and ``cancel`` with ``cancelled`` (stopping the call), and
offers the real ``smart_file_query`` and ``smart_file_download`` with their
inputSchemas: the query reads only server paths (``/app/…``,
``/mnt/project/EX-AI-MCP-Server/…``, ``/mnt/project/Personal_AI_Agent/…``) and
the download fetches a Supabase ``bucket/path`` with the service key into a
server path under ``/mnt/project/``. The server's disk is a temp folder: a
server path ``/x/y`` is ``<disk>/x/y``.

Besides those it offers tools that misbehave in every way the real server can
(slow, failing, closing mid-call, errors with and without ``request_id``, a
hostile file name in the answer). It counts open connections so tests can
prove that a client leaves none behind, and records the ``cancel`` and
``ping`` frames it gets; ``GET /test/stats`` on the health port reports them
to tests that run it in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

_frames_log = logging.getLogger(__name__ + ".frames")
_frames_log.setLevel(logging.INFO)  # frame dumps would show the client's token

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
MAX_MESSAGE = 32 * 1024 * 1024
FILE_ID = {"type": "string", "description": "Hub reference: bucket/key"}
QUESTION = {"type": "string", "description": "What to ask about the file"}


def _schema(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


SERVER_PATH_PATTERN = "^/(app|mnt/project/(EX-AI-MCP-Server|Personal_AI_Agent))/.*"
"""``smart_file_query``'s ``file_path`` pattern (tools/smart_file_query.py)."""
DOWNLOAD_ROOT = "/mnt/project/"
DEFAULT_DOWNLOAD_DIR = "/mnt/project/downloads/"

TOOLS: list[dict[str, Any]] = [
    {
        "name": "smart_file_query",
        "description": "Answer a question about a file on the server's disk.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": (
                        "REQUIRED. Absolute Linux path to file within mounted directories. "
                        "MUST start with /app/ or /mnt/project/EX-AI-MCP-Server/ or "
                        "/mnt/project/Personal_AI_Agent/."
                    ),
                    "pattern": SERVER_PATH_PATTERN,
                },
                "question": {
                    "type": "string",
                    "description": "REQUIRED. Question or instruction about the file.",
                },
                "provider": {
                    "type": "string",
                    "description": "Optional. Provider to use: 'kimi', 'glm', or 'auto' (default).",
                    "enum": ["auto", "kimi", "glm"],
                    "default": "auto",
                },
                "model": {
                    "type": "string",
                    "description": "Optional. Specific model to use or 'auto' (default).",
                    "default": "auto",
                },
            },
            "required": ["file_path", "question"],
        },
    },
    {
        "name": "smart_file_download",
        "description": "Download a file from Supabase Storage (or Kimi) to the server's disk.",
        # SmartFileDownloadInput.model_json_schema() (pydantic v2)
        "inputSchema": {
            "properties": {
                "file_id": {
                    "description": "REQUIRED. Provider file ID to download.",
                    "title": "File Id",
                    "type": "string",
                },
                "destination": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "default": None,
                    "description": (
                        "Optional destination path for the downloaded file. Can be either a "
                        "directory path or a full file path. MUST be within /mnt/project/ "
                        "directory (Docker container path)."
                    ),
                    "title": "Destination",
                },
            },
            "required": ["file_id"],
            "title": "SmartFileDownloadInput",
            "type": "object",
        },
    },
    {
        "name": "analyze_file",
        "description": "Answer a question about a hub file, streaming the answer.",
        "inputSchema": _schema(
            ["file_id", "question"], file_id=FILE_ID, question=QUESTION, sha256={"type": "string"}
        ),
    },
    {
        "name": "extract_json",
        "description": "Extract structured data from a hub file.",
        "inputSchema": _schema(["file_id", "prompt"], file_id=FILE_ID, prompt=QUESTION),
    },
    {
        "name": "plain_answer",
        "description": "Answers in plain text, without the JSON envelope.",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
    {
        "name": "slow_query",
        "description": "Takes `seconds` (default: the server's slow_seconds) to answer.",
        "inputSchema": _schema(
            ["file_id", "question"], file_id=FILE_ID, question=QUESTION, seconds={"type": "number"}
        ),
    },
    {
        "name": "failing_query",
        "description": "Answers ok with status=error inside.",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
    {
        "name": "broken_query",
        "description": "Fails with an INTERNAL_ERROR call_tool_res.",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
    {
        "name": "bare_error_query",
        "description": "Fails with a bare {error} frame (no op, no request_id).",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
    {
        "name": "op_error_query",
        "description": "Fails with an {op: error} frame.",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
    {
        "name": "closing_query",
        "description": "Closes the connection in the middle of the call.",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
    {
        "name": "huge_answer",
        "description": "Answers with `size` bytes of text (default 1 MiB).",
        "inputSchema": _schema(
            ["file_id", "question"], file_id=FILE_ID, question=QUESTION, size={"type": "integer"}
        ),
    },
    {
        "name": "traversal_query",
        "description": "Answers with metadata naming ../../.bashrc and an absolute path.",
        "inputSchema": _schema(["file_id", "question"], file_id=FILE_ID, question=QUESTION),
    },
]
TOOLS.append(
    {
        "name": "chat",
        "description": "General chat and collaborative thinking (EXAI's chat tool).",
        "inputSchema": {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "REQUIRED. The question or idea."},
                "model": {"type": "string", "default": "auto"},
                "temperature": {"type": "number"},
                "use_websearch": {"type": "boolean", "default": False},
            },
            "required": ["prompt"],
        },
    }
)
_TOOLS_BY_NAME = {t["name"]: t for t in TOOLS}


def envelope(content: Any, content_type: str = "markdown", **metadata: Any) -> str:
    """The JSON text EXAI tools put in ``outputs[0].text``."""
    return json.dumps(
        {
            "status": "success",
            "content": content,
            "content_type": content_type,
            "metadata": metadata,
        }
    )


@dataclass
class ExaiTestServer:
    token: str = "test-token"
    host: str = "127.0.0.1"
    port: int = 0
    health_port: int | None = 0
    """0: pick a free port; None: no health endpoint."""
    hello_timeout: float = 15.0
    progress_interval: float = 5.0
    tool_delay: float = 0.0
    """Seconds every tool takes before answering (progress is sent meanwhile)."""
    slow_seconds: float = 60.0
    call_timeout: float = 300.0
    retry_after: float = 1.0
    max_connections_per_ip: int = 10
    jwt: str | None = None
    """When set, a hello must carry this ``jwt`` (the daemon after its grace period)."""
    supabase_url: str = ""
    service_key: str = field(default="", repr=False)
    """Where ``smart_file_download`` downloads from (EXAI's SUPABASE_URL / service key)."""
    disk: Path | None = None
    """The server's file system root; None: a temp folder made on start, removed on stop."""

    open_connections: int = 0
    peak_connections: int = 0
    total_connections: int = 0
    rejected_hellos: int = 0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(request_id, tool) of every call that reached a tool."""
    cancels: list[str] = field(default_factory=list)
    """request_id of every ``cancel`` received."""
    answer_pings: bool = True
    """False: ``ping`` goes unanswered (a server that hangs)."""
    pings: int = 0
    downloads: list[str] = field(default_factory=list)
    """Server paths ``smart_file_download`` wrote."""

    _server: Server | None = None
    _health: asyncio.Server | None = None
    _per_ip: Counter[str] = field(default_factory=Counter)
    _in_flight: set[tuple[str, str]] = field(default_factory=set)
    _closed: asyncio.Event = field(default_factory=asyncio.Event)
    _connections: set[ServerConnection] = field(default_factory=set)
    _own_disk: bool = False

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> ExaiTestServer:
        if self.disk is None:
            self.disk = Path(tempfile.mkdtemp(prefix="exai-disk-"))
            self._own_disk = True
        self._server = await serve(
            self._handle, self.host, self.port, max_size=MAX_MESSAGE, logger=_frames_log
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        if self.health_port is not None:
            self._health = await asyncio.start_server(
                self._serve_health, self.host, self.health_port
            )
            self.health_port = self._health.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._health is not None:
            self._health.close()
            await self._health.wait_closed()
            self._health = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._own_disk and self.disk is not None:
            shutil.rmtree(self.disk, ignore_errors=True)
            self.disk, self._own_disk = None, False

    def local_path(self, server_path: str) -> Path:
        """Where the server path ``server_path`` is on this machine (inside ``disk``)."""
        assert self.disk is not None, "the server is not started"
        normal = os.path.normpath("/" + server_path.lstrip("/"))
        return self.disk / normal.lstrip("/")

    def stats(self) -> dict[str, Any]:
        return {
            "requests": [list(r) for r in self.requests],
            "cancels": list(self.cancels),
            "pings": self.pings,
            "calls": [[name, args] for name, args in self.calls],
            "downloads": list(self.downloads),
            "rejected_hellos": self.rejected_hellos,
            "open_connections": self.open_connections,
        }

    async def __aenter__(self) -> ExaiTestServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_idle(self, within: float = 2.0) -> int:
        """Wait until no connection is open (closing is asynchronous); return the count left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.open_connections:
                    self._closed.clear()
                    await self._closed.wait()
        return self.open_connections

    async def drop_all(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every connection from the server side, as a restart or a proxy would."""
        for ws in list(self._connections):
            await ws.close(code, reason)

    # -- connections -------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        ip = str(ws.remote_address[0])
        self._per_ip[ip] += 1
        self.open_connections += 1
        self.total_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        self._connections.add(ws)
        tasks: set[asyncio.Task[None]] = set()
        try:
            if self._per_ip[ip] > self.max_connections_per_ip:
                await ws.close(1008, "too many connections")
                return
            if await self._hello(ws):
                await self._serve(ws, tasks)
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._connections.discard(ws)
            self._per_ip[ip] -= 1
            self.open_connections -= 1
            self._closed.set()

    async def _hello(self, ws: ServerConnection) -> bool:
        try:
            raw = await asyncio.wait_for(ws.recv(), self.hello_timeout)
        except TimeoutError:
            await ws.close(4002, "hello timeout")
            return False
        msg = _parse(raw)
        if msg is None:
            await ws.close(4000, "invalid json")
            return False
        if msg.get("op") != "hello":
            await ws.close(4001, "expected hello")
            return False
        session_id = msg.get("session_id")
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            await ws.send(json.dumps({"op": "hello_ack", "ok": False, "error": "bad_session_id"}))
            await ws.close(4001, "bad session id")
            return False
        for refused, reason in (
            (msg.get("token") != self.token, "unauthorized"),
            (self.jwt is not None and msg.get("jwt") != self.jwt, "jwt_required"),
        ):
            if refused:
                self.rejected_hellos += 1
                await ws.send(json.dumps({"op": "hello_ack", "ok": False, "error": reason}))
                await ws.close(4003, reason)
                return False
        await ws.send(json.dumps({"op": "hello_ack", "ok": True, "session_id": session_id}))
        return True

    async def _serve(self, ws: ServerConnection, tasks: set[asyncio.Task[None]]) -> None:
        running: dict[str, asyncio.Task[None]] = {}
        async for raw in ws:
            msg = _parse(raw)
            if msg is None:
                await ws.close(4000, "invalid json")
                return
            op = msg.get("op")
            rid = msg.get("request_id")
            if op == "list_tools":
                await ws.send(json.dumps({"op": "list_tools_res", "tools": TOOLS}))
            elif op == "ping":
                self.pings += 1
                if self.answer_pings:
                    await ws.send(json.dumps({"op": "pong", "request_id": rid}))
            elif op == "cancel":
                self.cancels.append(str(rid))
                call = running.pop(str(rid), None)
                if call is not None:
                    call.cancel()
                    await asyncio.gather(call, return_exceptions=True)
                await ws.send(json.dumps({"op": "cancelled", "request_id": rid}))
            elif op == "call_tool":
                task = asyncio.create_task(self._call(ws, msg))
                tasks.add(task)
                running[str(rid)] = task
                task.add_done_callback(tasks.discard)
                task.add_done_callback(functools.partial(_forget, running, str(rid)))
            else:
                error = {"code": "UNKNOWN_OP", "message": f"unknown op: {op}"}
                await ws.send(json.dumps({"op": "error", "error": error}))

    # -- calls -------------------------------------------------------------------------

    async def _call(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        rid = str(msg.get("request_id", ""))
        name = str(msg.get("name", ""))
        args = msg.get("arguments") if isinstance(msg.get("arguments"), dict) else {}
        assert isinstance(args, dict)

        async def fail(code: str, message: str, **details: Any) -> None:
            error = {"code": code, "message": message, "details": details}
            await ws.send(json.dumps({"op": "call_tool_res", "request_id": rid, "error": error}))

        tool = _TOOLS_BY_NAME.get(name)
        if tool is None:
            await fail("TOOL_NOT_FOUND", f"no tool named {name}")
            return
        missing = [r for r in tool["inputSchema"]["required"] if r not in args]
        if missing:
            await fail("VALIDATION_ERROR", f"missing argument(s): {', '.join(missing)}")
            return
        flight = (name, json.dumps(args, sort_keys=True))
        if flight in self._in_flight:
            await fail("OVER_CAPACITY", "same request in flight", retry_after_secs=self.retry_after)
            return
        self._in_flight.add(flight)
        self.calls.append((name, dict(args)))
        self.requests.append((rid, name))
        try:
            await asyncio.wait_for(self._run(ws, rid, name, args), self.call_timeout)
        except TimeoutError:
            await fail("TIMEOUT", f"tool {name} exceeded {self.call_timeout:g} s")
        except ConnectionClosed:
            pass
        finally:
            self._in_flight.discard(flight)

    async def _run(self, ws: ServerConnection, rid: str, name: str, args: dict[str, Any]) -> None:
        async def send(frame: dict[str, Any]) -> None:
            await ws.send(json.dumps(frame))

        seconds = self.tool_delay
        if name == "slow_query":
            seconds = float(args.get("seconds", self.slow_seconds))
        await self._work(
            seconds, lambda m: send({"op": "progress", "request_id": rid, "message": m})
        )
        behaviour = _BEHAVIOURS.get(name, _answer)
        await behaviour(self, send, ws, rid, args)

    async def _work(self, seconds: float, progress: Callable[[str], Awaitable[None]]) -> None:
        started = time.monotonic()
        await progress("started")
        while (left := seconds - (time.monotonic() - started)) > 0:
            await asyncio.sleep(min(self.progress_interval, left))
            await progress(f"working… {time.monotonic() - started:.1f}s")

    # -- health ------------------------------------------------------------------------

    async def _serve_health(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path == b"/health":
                body = json.dumps(
                    {"status": "healthy", "service": "exai-mcp-daemon", "timestamp": time.time()}
                ).encode()
                status = b"200 OK"
            elif path == b"/test/stats":
                body, status = json.dumps(self.stats()).encode(), b"200 OK"
            else:
                body, status = b'{"error":"not found"}', b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


Send = Callable[[dict[str, Any]], Awaitable[None]]
Behaviour = Callable[[ExaiTestServer, Send, ServerConnection, str, dict[str, Any]], Awaitable[None]]


def _ok(rid: str, text: str) -> dict[str, Any]:
    return {
        "op": "call_tool_res",
        "request_id": rid,
        "ok": True,
        "outputs": [{"type": "text", "text": text}],
    }


def _question(args: dict[str, Any]) -> str:
    return str(args.get("question") or args.get("prompt") or "")


def _file(args: dict[str, Any]) -> str:
    return str(args.get("file_id") or args.get("file_path") or "")


async def _answer(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    text = f"# Answer\n\nAbout `{_file(args)}`: {_question(args)}\n"
    await send(_ok(rid, envelope(text, model="test-model", sha256=args.get("sha256"))))


async def _streamed(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    parts = ["# Streamed answer\n\n", f"About `{_file(args)}`: ", _question(args), "\n"]
    for part in parts:
        await send({"op": "stream_chunk", "request_id": rid, "chunk": part})
    await send({"op": "stream_complete", "request_id": rid})
    await send(_ok(rid, envelope("".join(parts), model="test-model", sha256=args.get("sha256"))))


async def _structured(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    data = {"file": _file(args), "prompt": _question(args), "entities": ["alpha", "beta"]}
    await send(_ok(rid, envelope(data, content_type="json")))


async def _plain(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    await send(_ok(rid, f"Plain answer about {_file(args)}"))


async def _status_error(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    text = json.dumps(
        {"status": "error", "content": "model refused: file is empty", "metadata": {}}
    )
    await send(_ok(rid, text))


async def _internal(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    error = {"code": "INTERNAL_ERROR", "message": "provider exploded", "details": {}}
    await send({"op": "call_tool_res", "request_id": rid, "error": error})


async def _bare(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    await send({"error": {"code": "INTERNAL_ERROR", "message": "bare failure", "details": {}}})


async def _op_error(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    await send({"op": "error", "error": {"code": "INTERNAL_ERROR", "message": "op error failure"}})


async def _close(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    await ws.close(1011, "worker crashed")


def _tool_error(content: str, **metadata: Any) -> str:
    """What EXAI's tools answer (ok, inside the text) when they fail."""
    return json.dumps(
        {"status": "error", "content": content, "content_type": "text", "metadata": metadata}
    )


async def _smart_file_query(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    """Reads the file at a server path, as the real tool does, and answers about it."""
    path = str(args.get("file_path", ""))
    if not re.match(SERVER_PATH_PATTERN, path):
        text = _tool_error(
            f"Path not accessible: {path}. Files must be under /app/, "
            "/mnt/project/EX-AI-MCP-Server/ or /mnt/project/Personal_AI_Agent/",
            error_type="query_failed",
            file_path=path,
        )
        await send(_ok(rid, text))
        return
    try:
        data = await asyncio.to_thread(server.local_path(path).read_bytes)
    except OSError:
        await send(_ok(rid, _tool_error(f"File not found: {path}", file_path=path)))
        return
    sha = hashlib.sha256(data).hexdigest()
    text = f"# Answer\n\nAbout `{path}` ({len(data)} bytes, sha256 {sha}): {_question(args)}\n"
    await send(_ok(rid, envelope(text, content_type="text", model="test-model")))


async def _smart_file_download(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    """Downloads ``bucket/path`` from Supabase Storage with the service key to the
    destination (a folder, or a file path) under /mnt/project/; answers the server path."""
    file_id = str(args.get("file_id", "")).strip("/")
    destination = str(args.get("destination") or DEFAULT_DOWNLOAD_DIR)
    normal = os.path.normpath(destination)
    if not (normal + "/").startswith(DOWNLOAD_ROOT):
        text = f"Downloads must be within allowed directories ['{DOWNLOAD_ROOT}'], got: {normal}"
        await send(_ok(rid, _tool_error(text, file_id=file_id)))
        return
    bucket, _, key = file_id.partition("/")
    if not key or not server.supabase_url:
        await send(_ok(rid, _tool_error(f"Failed to download from Supabase: {file_id}")))
        return
    headers = {"apikey": server.service_key, "Authorization": f"Bearer {server.service_key}"}
    url = f"{server.supabase_url.rstrip('/')}/storage/v1/object/{bucket}/{quote(key)}"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, headers=headers)
    if response.status_code != 200:
        text = f"Failed to download from Supabase: HTTP {response.status_code} for {file_id}"
        await send(_ok(rid, _tool_error(text, file_id=file_id)))
        return
    if destination.endswith("/") or server.local_path(normal).is_dir():
        normal = f"{normal}/{key.rsplit('/', 1)[-1]}"
    target = server.local_path(normal)
    target.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(target.write_bytes, response.content)
    server.downloads.append(normal)
    await send(_ok(rid, envelope(normal, content_type="text", file_id=file_id)))


async def _huge(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    await send(_ok(rid, "x" * int(args.get("size", 1024 * 1024))))


async def _traversal(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    text = envelope(
        "echo pwned >> ~/.bashrc\n",
        content_type="markdown",
        filename="../../.bashrc",
        path="/tmp/../../root/.bashrc",
        output_file="../../../.bashrc",
    )
    await send(_ok(rid, text))


async def _chat(
    server: ExaiTestServer, send: Send, ws: ServerConnection, rid: str, args: dict[str, Any]
) -> None:
    """A canned diagnosis naming the first line of the prompt (what it was asked about)."""
    first = str(args.get("prompt", "")).strip().splitlines()[:1]
    text = (
        f"## Diagnosis\n\nAbout: {first[0] if first else '(nothing)'}\n\n"
        "Likely cause: the files cannot be read by the agent.\n\n"
        "## Recommended fixes\n\n1. Check the folder's permissions.\n2. Retry the files.\n"
    )
    await send(_ok(rid, envelope(text, content_type="markdown", model="test-model")))


_BEHAVIOURS: dict[str, Behaviour] = {
    "chat": _chat,
    "smart_file_query": _smart_file_query,
    "smart_file_download": _smart_file_download,
    "analyze_file": _streamed,
    "extract_json": _structured,
    "plain_answer": _plain,
    "failing_query": _status_error,
    "broken_query": _internal,
    "bare_error_query": _bare,
    "op_error_query": _op_error,
    "closing_query": _close,
    "huge_answer": _huge,
    "traversal_query": _traversal,
}


def _forget(running: dict[str, asyncio.Task[None]], rid: str, task: asyncio.Task[None]) -> None:
    if running.get(rid) is task:
        del running[rid]


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


async def _main(args: argparse.Namespace) -> None:
    server = ExaiTestServer(
        token=args.token,
        host=args.host,
        port=args.port,
        health_port=args.health_port,
        progress_interval=args.progress_interval,
        tool_delay=args.delay,
        jwt=args.jwt or None,
        supabase_url=args.supabase_url,
        service_key=os.environ.get("EXAI_TEST_SERVICE_KEY", ""),
    )
    async with server:
        print(f"EXAI test server on {server.url} (health port {server.health_port})", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8079)
    parser.add_argument("--health-port", type=int, default=0)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--progress-interval", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every tool takes")
    parser.add_argument("--jwt", default="", help="require this JWT in hello")
    parser.add_argument(
        "--supabase-url",
        default="",
        help="where smart_file_download downloads from (service key: EXAI_TEST_SERVICE_KEY)",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
