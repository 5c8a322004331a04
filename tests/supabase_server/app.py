"""The server object: one aiohttp app for auth, storage, TUS and REST.

It runs on its own event loop in a background thread, so sync tests, async
tests and the agent under test can all talk to it over real HTTP. Every
request passes the fault plan first and lands in the request log.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import jwt
from aiohttp import web

from . import auth as auth_api
from .auth import AuthService
from .database import OwnDatabase
from .faults import Faults, LogEntry, RequestLog
from .gateway import StorageGateway
from .objects_table import ObjectsMirror
from .rest import RestHandlers, RestService
from .storage import StorageHandlers, StorageService
from .tus import TusService

DEFAULT_BUCKETS = ("user-files", "results", "generated-files")
OPEN_STORAGE_PREFIXES = ("/storage/v1/object/sign/", "/storage/v1/object/public/")


def _claims(request: web.Request) -> tuple[str, str | None]:
    """Role and sub of the caller for the log (unverified: logging only)."""
    value = request.headers.get("Authorization", "")
    token = value[7:] if value.lower().startswith("bearer ") else request.headers.get("apikey", "")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "anon", None
    return str(claims.get("role", "anon")), claims.get("sub")


class SupabaseTestServer:
    """A Supabase look-alike on 127.0.0.1.

    Python API for tests: :meth:`create_user`, ``auth`` (tokens, revocation,
    forced expiry), ``storage`` (buckets, stored objects), ``tus`` (pending
    uploads), ``rest`` (table snapshots, SQL as the owner), ``faults`` and ``log``.
    """

    def __init__(
        self,
        *,
        jwt_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        access_token_ttl: int = 3600,
        refresh_reuse_interval: float = 0.0,
        upload_limit: int = 50 * 1024**2,
        bucket_limits: Mapping[str, int | None] | None = None,
        database_url: str | None = None,
        storage_upstream: str | None = None,
    ) -> None:
        """``storage_upstream``: gateway mode, /storage/v1/* goes to that real
        Storage server (give it the same ``jwt_secret``); auth and REST stay here."""
        self.jwt_secret = jwt_secret or secrets.token_urlsafe(32)
        self.host = host
        self.port = port
        self.auth = AuthService(
            self.jwt_secret,
            access_token_ttl=access_token_ttl,
            refresh_reuse_interval=refresh_reuse_interval,
        )
        self.storage = StorageService(self.auth, global_limit=upload_limit)
        limits = dict(bucket_limits or {})
        for bucket in DEFAULT_BUCKETS:
            self.storage.create_bucket(bucket, file_size_limit=limits.get(bucket))
        self.tus = TusService(self.storage)
        self.rest = RestService(self.auth)
        self.database_url = database_url
        """/rest/v1 runs on this migrated database; None: :meth:`start` makes one."""
        self._own_database: OwnDatabase | None = None
        self.faults = Faults(seed)
        self.log = RequestLog()
        self._storage_http = StorageHandlers(self.storage)
        self._rest_http = RestHandlers(self.rest)
        self.gateway = StorageGateway(storage_upstream) if storage_upstream else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- facts for clients ---------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def anon_key(self) -> str:
        return self.auth.anon_key

    @property
    def service_key(self) -> str:
        return self.auth.service_key

    def create_user(self, email: str, password: str) -> str:
        """Create a confirmed email/password user (also in ``auth.users``); returns their uid."""
        uid = self.auth.create_user(email, password)
        self.rest.add_auth_user(uid, email)
        return uid

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> SupabaseTestServer:
        """Serve in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("already started")
        if self.database_url is None:
            self._own_database = OwnDatabase()
            self.database_url = self._own_database.url
        self.rest.attach(self.database_url)
        if self.gateway is None:  # a real Storage server keeps storage.objects itself
            self.storage.objects.mirror = ObjectsMirror(self.database_url)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._unbind())
            loop.run_until_complete(self.rest.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="supabase-test-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            self._close_database()
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; join the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = self._loop = None
        self._close_database()

    def _close_database(self) -> None:
        mirror, self.storage.objects.mirror = self.storage.objects.mirror, None
        if mirror is not None:
            mirror.close()
        if self._own_database is not None:
            self._own_database.close()
            self._own_database = None
            self.database_url = None

    def restart(self) -> None:
        """Drop all connections and listen again on the same port, state kept."""
        if self._loop is None:
            raise RuntimeError("not started")
        asyncio.run_coroutine_threadsafe(self._unbind(), self._loop).result(30)
        asyncio.run_coroutine_threadsafe(self._bind(), self._loop).result(30)

    def open_connections(self) -> int:
        """Client connections the server holds open right now (idle keep-alive included).

        Lets a test prove a client closed its pool: after ``aclose()`` this
        drops to 0 (give the loop a moment to see the FIN).
        """
        if self._loop is None:
            return 0

        async def count() -> int:
            server = self._runner.server if self._runner is not None else None
            return len(server.connections) if server is not None else 0

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(10)

    def __enter__(self) -> SupabaseTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _bind(self) -> None:
        app = web.Application(client_max_size=1024**4)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self.auth.issuer = f"{self.url}/auth/v1"
        self._runner = runner

    async def _unbind(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.gateway is not None:
            await self.gateway.close()

    # -- request path ----------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        path = unquote(request.raw_path.split("?", 1)[0])
        decision = self.faults.decide(request.method, path)
        status = 0
        bytes_out = 0
        try:
            if decision.latency:
                await asyncio.sleep(decision.latency)
            if decision.action == "stall":
                await asyncio.sleep(decision.seconds)
            if decision.action in ("drop", "stall"):
                self._drop(request)
                return web.Response(status=499)
            if decision.action == "status":
                response: web.StreamResponse = web.json_response(
                    {"message": "An invalid response was received from the upstream server"},
                    status=decision.status,
                )
            elif decision.action == "throttle":
                response = web.json_response(
                    {"message": "API rate limit exceeded"},
                    status=429,
                    headers={"Retry-After": str(decision.retry_after)},
                )
            else:
                response = await self._route(request, path)
                if decision.action == "drop_after":
                    self._drop(request)
                    return response
            status = response.status
            if isinstance(response, web.Response):
                bytes_out = response.content_length or 0
                body = response.body
                if decision.bandwidth and isinstance(body, bytes | bytearray | memoryview):
                    bytes_out = 0
                    streamed = web.StreamResponse(status=response.status, headers=response.headers)
                    streamed.content_length = len(body)
                    await streamed.prepare(request)
                    step = max(1, int(decision.bandwidth / 20))  # 20 writes a second
                    for start in range(0, len(body), step):
                        await streamed.write(bytes(body[start : start + step]))
                        bytes_out += min(step, len(body) - start)
                        await asyncio.sleep(0.05)
                    await streamed.write_eof()
                    return streamed
            return response
        finally:
            role, sub = _claims(request)
            self.log.add(
                LogEntry(
                    method=request.method,
                    path=path,
                    query=request.query_string,
                    status=status,
                    bytes_in=request.content.total_bytes,
                    bytes_out=bytes_out,
                    role=role,
                    sub=sub,
                    fault=decision.action,
                    started=started,
                    duration=time.time() - started,
                )
            )

    @staticmethod
    def _drop(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        service, _, tail = path.lstrip("/").partition("/v1/")
        open_route = request.method in ("GET", "HEAD") and path.startswith(OPEN_STORAGE_PREFIXES)
        if service in ("auth", "rest", "storage") and not open_route:
            problem = self._api_key_problem(request)
            if problem is not None:
                return problem
        if service == "auth":
            return await auth_api.handle(self.auth, request, tail)
        if service == "rest":
            return await self._rest_http.handle(request, tail)
        if service == "storage" and self.gateway is not None:
            return await self.gateway.forward(request)
        if service == "storage":
            if tail == "upload/resumable" or tail.startswith("upload/resumable/"):
                return await self.tus.handle(request, tail[len("upload/resumable") :].strip("/"))
            return await self._storage_http.handle(request, tail)
        return web.json_response({"message": "no Route matched with those values"}, status=404)

    def _api_key_problem(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("apikey") or request.query.get("apikey")
        if not key:
            body: dict[str, Any] = {
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found.",
            }
            return web.json_response(body, status=401)
        if not self.auth.is_api_key(key):
            body = {
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            }
            return web.json_response(body, status=401)
        return None
