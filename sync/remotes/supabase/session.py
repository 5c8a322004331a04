"""A signed-in supabase-py client: sign-in, session restore, token refresh, service role.

The session (access + refresh token) lives in the storage object handed in
(the agent passes a keyring-backed one). Every refresh goes through one lock
here: a background task refreshes shortly before the token expires (by the
server's clock, see :mod:`.token`), and supabase_auth's own timer is
off, since two refreshes racing with one refresh token get the session ended
by GoTrue's reuse check. A token about to expire is refreshed before it is
sent. A request that still fails because its token was refused (a laptop that
slept, a clock that is off, a server that ended it early) is retried once
after one shared refresh; so is an answer a refused token can hide behind
("Bucket not found", a bare 400 to a HEAD), which is believed only when it
comes again with the new token. A refresh the server refuses means the
session was revoked, and every caller gets ``AuthError("... sign in
again")``. Nothing here logs or raises a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase_auth import AsyncMemoryStorage, AsyncSupportedStorage
from supabase_auth.errors import AuthApiError
from supabase_auth.errors import AuthError as GoTrueError
from supabase_auth.types import AuthChangeEvent, Session

from sync.errors import AuthError, SyncError
from sync.remotes.supabase.errors import (
    SIGN_IN_AGAIN,
    auth_error,
    is_jwt_failure,
    map_error,
    may_hide_a_refused_token,
)
from sync.remotes.supabase.http import TokenBucket, forget_response, make_http_client
from sync.remotes.supabase.names import SERVICE_ROLE_WARNING
from sync.remotes.supabase.token import TokenClock
from sync.transfer import RetryPolicy, with_retries

log = logging.getLogger(__name__)
REQUEST_RETRY = RetryPolicy(attempts=4, wait_initial=0.1, wait_max=2.0, wait_jitter=0.1, timeout=60)
"""Per-request retries for transient failures (5xx, resets, 429 with Retry-After)."""
T = TypeVar("T")

KEEP_FRESH_RETRY = 30.0
"""Seconds before a background refresh that failed transiently is tried again."""
TUS_CHUNK = 6 * 1024 * 1024
"""Supabase requires exactly 6 MiB chunks (the last may be shorter)."""


@dataclass(frozen=True, slots=True)
class SupabaseSettings:
    url: str
    anon_key: str
    requests_per_second: float = 20.0
    tus_threshold: int = 6 * 1024 * 1024
    timeout: float = 60.0
    max_connections: int = 16

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("the Supabase URL must start with http:// or https://")
        if not self.anon_key:
            raise ValueError("the Supabase anon key is missing")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def public_url(self) -> str:
        """The URL without ``user:password@``: what is stored, logged and shown."""
        return strip_credentials(self.base_url)

    @property
    def storage_url(self) -> str:
        return f"{self.base_url}/storage/v1"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    email: str | None
    service_role: bool
    expires_at: int | None


class SupabaseSession:
    """One supabase-py async client, its pooled HTTP client and the signed-in user."""

    def __init__(
        self,
        settings: SupabaseSettings,
        client: AsyncClient,
        http: httpx.AsyncClient,
        limiter: TokenBucket,
        identity: Identity,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.http = http
        self.limiter = limiter
        self.identity = identity
        self.tokens = TokenClock(clock)
        self._refresh_lock = asyncio.Lock()
        self._believed: str | None = None
        """The token whose ambiguous answer came again after a refresh: taken as said."""
        self._closed = False
        client.auth.on_auth_state_change(self._on_auth_event)
        self._keeper: asyncio.Task[None] | None = None
        if not identity.service_role:
            self._keeper = asyncio.get_running_loop().create_task(self._keep_fresh())

    def _on_auth_event(self, event: AuthChangeEvent, session: Session | None) -> None:
        if event == "TOKEN_REFRESHED" and session is not None:
            self.tokens.learn(f"Bearer {session.access_token}")

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    # -- opening -----------------------------------------------------------

    @staticmethod
    async def _client(
        settings: SupabaseSettings,
        key: str,
        storage: AsyncSupportedStorage,
    ) -> tuple[AsyncClient, httpx.AsyncClient, TokenBucket]:
        limiter = TokenBucket(settings.requests_per_second)
        http = make_http_client(
            limiter, timeout=settings.timeout, max_connections=settings.max_connections
        )
        options = AsyncClientOptions(
            storage=storage,
            httpx_client=http,
            auto_refresh_token=False,
            persist_session=True,
            postgrest_client_retry=False,
        )
        try:
            client = await acreate_client(settings.base_url, key, options=options)
        except BaseException:
            await http.aclose()
            raise
        return client, http, limiter

    @classmethod
    async def restore(
        cls,
        settings: SupabaseSettings,
        storage: AsyncSupportedStorage,
        *,
        clock: Callable[[], float] = time.time,
    ) -> SupabaseSession:
        """Resume the session kept in ``storage``; AuthError when there is none (or it is dead)."""
        client, http, limiter = await cls._client(settings, settings.anon_key, storage)
        refreshed: set[str] = set()  # tokens issued while restoring: they tell the server's time
        watch = client.auth.on_auth_state_change(
            lambda event, new: (
                refreshed.add(new.access_token)
                if event == "TOKEN_REFRESHED" and new is not None
                else None
            )
        )
        try:
            await client.auth.initialize_from_storage()
            session = await client.auth.get_session()
        except GoTrueError as exc:
            await _close_client(client, http)
            raise auth_error(exc, "restoring the Supabase session") from exc
        except BaseException:
            await _close_client(client, http)
            raise
        finally:
            watch.unsubscribe()
        if session is None:
            await _close_client(client, http)
            raise AuthError("not signed in to Supabase: run hubsync login")
        restored = cls(settings, client, http, limiter, _identity(session), clock=clock)
        if session.access_token in refreshed:
            restored.tokens.learn(f"Bearer {session.access_token}")
        return restored

    @classmethod
    async def sign_in(
        cls,
        settings: SupabaseSettings,
        storage: AsyncSupportedStorage,
        email: str,
        password: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> SupabaseSession:
        """Sign in with email and password; the session lands in ``storage``."""
        client, http, limiter = await cls._client(settings, settings.anon_key, storage)
        try:
            response = await client.auth.sign_in_with_password(
                {"email": email, "password": password}
            )
        except AuthApiError as exc:
            await _close_client(client, http)
            if exc.status in (400, 401, 403, 422):
                raise AuthError(f"sign-in refused: {exc.message}") from None
            raise auth_error(exc, "signing in") from None
        except GoTrueError as exc:
            await _close_client(client, http)
            raise auth_error(exc, "signing in") from None
        except BaseException:
            await _close_client(client, http)
            raise
        if response.session is None:
            await _close_client(client, http)
            raise AuthError("sign-in returned no session (is the email confirmed?)")
        session = cls(settings, client, http, limiter, _identity(response.session), clock=clock)
        session.tokens.learn(f"Bearer {response.session.access_token}")
        return session

    @classmethod
    async def service_role(
        cls, settings: SupabaseSettings, service_role_key: str, user_id: str
    ) -> SupabaseSession:
        """Act with the service_role key for the fixed ``user_id`` (bypasses RLS)."""
        if not service_role_key:
            raise AuthError("service-role mode needs SUPABASE_SERVICE_ROLE_KEY")
        if not user_id:
            raise AuthError("service-role mode needs a fixed --user-id")
        log.warning(SERVICE_ROLE_WARNING.format(user_id=user_id))
        client, http, limiter = await cls._client(settings, service_role_key, AsyncMemoryStorage())
        return cls(settings, client, http, limiter, Identity(user_id, None, True, None))

    # -- requests ----------------------------------------------------------

    @property
    def authorization(self) -> str:
        return self.client.options.headers.get("Authorization", "")

    def headers(self) -> dict[str, str]:
        """apikey + the current bearer token, for requests HubSync sends itself."""
        return {"apikey": self.client.supabase_key, "Authorization": self.authorization}

    async def refresh(self, used_authorization: str) -> None:
        """Refresh once for everyone who failed with ``used_authorization``."""
        if self.identity.service_role:
            raise AuthError("the hub refused the service_role key")
        async with self._refresh_lock:
            if self.authorization != used_authorization:
                return
            try:
                # get_session() refreshes by itself when our clock finds the session
                # expired; refresh_session() without a token would then refresh a second
                # time with the refresh token just rotated away.
                session = await self.client.auth.get_session()
                if session is None:
                    raise AuthError(SIGN_IN_AGAIN)
                if self.authorization == used_authorization:
                    await self.client.auth.refresh_session(session.refresh_token)
            except GoTrueError as exc:
                error = auth_error(exc, "refreshing the Supabase session")
                raise error from None

    async def _keep_fresh(self) -> None:
        """Refresh the token shortly before it expires, so an idle agent stays signed in."""
        while True:
            used = self.authorization
            left = self.tokens.seconds_to_refresh(used)
            if left is None:
                return
            await asyncio.sleep(max(left, 1.0))
            if self.authorization != used:
                continue  # a request refreshed it meanwhile
            try:
                await self.refresh(used)
            except AuthError:
                return  # revoked: requests say "sign in again" themselves
            except SyncError as exc:
                log.info("refreshing the Supabase session failed (%s); trying later", exc.kind)
                await asyncio.sleep(KEEP_FRESH_RETRY)

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one request, retrying it a few times when it fails transiently.

        Retrying here, per request, is what lets a batch of many requests (a hash
        look-up with probes, a paged upsert) get through a flaky link: retrying
        only the whole batch would need every request to succeed in one go.
        Longer outages surface as TransientError for the engine's own backoff.
        """
        return await with_retries(lambda: self._call_once(what, fn), REQUEST_RETRY)

    async def _call_once(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one request; refresh and retry it once when its token was refused.

        Every failure leaves as a :class:`sync.errors.SyncError`.
        """
        if not self.identity.service_role and self.tokens.is_expiring(self.authorization):
            await self.refresh(self.authorization)
        for attempt in (1, 2):
            used = self.authorization
            forget_response()
            try:
                return await fn()
            except SyncError:
                raise
            except Exception as exc:
                if is_jwt_failure(exc):
                    if attempt == 2:
                        raise AuthError(SIGN_IN_AGAIN) from None
                elif attempt == 2 or not self._may_be_the_token(exc, used):
                    if attempt == 2 and may_hide_a_refused_token(exc):
                        self._believed = used
                    raise map_error(exc, what) from exc
            await self.refresh(used)
        raise AssertionError("unreachable")

    def _may_be_the_token(self, exc: Exception, used: str) -> bool:
        """An ambiguous answer is worth one refresh, unless this very token already
        got it again after a refresh (a bucket that is really missing costs one)."""
        return (
            not self.identity.service_role
            and may_hide_a_refused_token(exc)
            and used != self._believed
        )

    async def current_identity(self) -> Identity:
        if self.identity.service_role:
            return self.identity
        try:
            async with self._refresh_lock:  # get_session() may refresh: never two at once
                session = await self.client.auth.get_session()
        except GoTrueError as exc:
            raise auth_error(exc, "reading the Supabase session") from None
        if session is None:
            raise AuthError(SIGN_IN_AGAIN)
        self.identity = _identity(session)
        return self.identity

    async def sign_out(self) -> None:
        """Revoke this session on the server (best effort) and forget it locally."""
        try:
            await self.client.auth.sign_out({"scope": "local"})
        except (GoTrueError, httpx.HTTPError) as exc:
            log.info("server-side sign-out failed (%s); the local one is gone", type(exc).__name__)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await _close_client(self.client, self.http)


def _identity(session: Session) -> Identity:
    user: Any = session.user
    return Identity(
        user_id=str(user.id),
        email=getattr(user, "email", None),
        service_role=False,
        expires_at=session.expires_at,
    )


async def _close_client(client: AsyncClient, http: httpx.AsyncClient) -> None:
    """Stop the auth refresh timer and background tasks, then close the pool."""
    # supabase_auth offers no public way to stop its refresh timer; without this
    # a closed remote would keep a sleeping task on the loop until expiry.
    timer = client.auth._refresh_token_timer
    if timer is not None:
        timer.cancel()
        client.auth._refresh_token_timer = None
    pending = list(client._background_tasks)
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    await http.aclose()


def seconds_left(identity: Identity) -> float | None:
    if identity.expires_at is None:
        return None
    return identity.expires_at - time.time()


def strip_credentials(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
