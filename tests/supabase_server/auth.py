"""GoTrue stand-in: users, sessions with rotating refresh tokens, HS256 JWTs.

Tokens carry the same claims GoTrue puts in them (``sub``, ``role``, ``aud``,
``session_id``, ``exp``...), signed with the project's JWT secret, so storage,
REST and any other server sharing the secret accept them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"
EXP_FAILED = '"exp" claim timestamp check failed'
SIGNATURE_FAILED = "signature verification failed"
MALFORMED = "Invalid Compact JWS"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request acts as: the role and, for users, their uid (``sub``)."""

    role: str
    sub: str | None = None
    session_id: str | None = None

    @property
    def is_service(self) -> bool:
        return self.role == "service_role"


ANON = Identity(role="anon")


class JwtError(Exception):
    """A bearer token that is expired (``expired``) or otherwise invalid."""

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.message = message
        self.expired = expired


class AuthApiError(Exception):
    """An error GoTrue answers with: HTTP status, machine code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(slots=True)
class User:
    id: str
    email: str
    password_hash: str
    created_at: float
    last_sign_in_at: float | None = None
    user_metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        created = iso(self.created_at)
        return {
            "id": self.id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": self.email,
            "email_confirmed_at": created,
            "phone": "",
            "confirmed_at": created,
            "last_sign_in_at": iso(self.last_sign_in_at) if self.last_sign_in_at else None,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": dict(self.user_metadata),
            "identities": [],
            "created_at": created,
            "updated_at": created,
            "is_anonymous": False,
        }


@dataclass(slots=True)
class RefreshToken:
    token: str
    session_id: str
    user_id: str
    revoked_at: float | None = None


def _hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000).hex()


class AuthService:
    """Users, sessions and tokens. Thread-safe: tests call it from their own thread."""

    def __init__(
        self,
        jwt_secret: str,
        *,
        issuer: str = "http://127.0.0.1/auth/v1",
        access_token_ttl: int = 3600,
        refresh_reuse_interval: float = 0.0,
    ) -> None:
        self.jwt_secret = jwt_secret
        self.issuer = issuer
        self.access_token_ttl = access_token_ttl
        self.refresh_reuse_interval = refresh_reuse_interval
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._by_email: dict[str, str] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._sessions: dict[str, str] = {}  # session_id -> active refresh token
        self._issued: set[str] = set()  # jti of user tokens issued here
        self._expired: set[str] = set()  # jti of tokens force-expired by tests
        self.anon_key = self._api_key("anon")
        self.service_key = self._api_key("service_role")

    # -- keys and tokens -------------------------------------------------

    def _api_key(self, role: str) -> str:
        now = int(time.time())
        claims = {"iss": "supabase-demo", "role": role, "iat": now, "exp": now + 10 * 365 * 86400}
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    def decode(self, token: str) -> dict[str, Any]:
        """Verify a JWT like the Supabase services do; raise :class:`JwtError`."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.ExpiredSignatureError as exc:
            raise JwtError(EXP_FAILED, expired=True) from exc
        except jwt.InvalidSignatureError as exc:
            raise JwtError(SIGNATURE_FAILED, expired=False) from exc
        except jwt.PyJWTError as exc:
            raise JwtError(MALFORMED, expired=False) from exc
        with self._lock:
            forced = claims.get("jti") in self._expired
        if forced:
            raise JwtError(EXP_FAILED, expired=True)
        return claims

    def identity(self, token: str) -> Identity:
        claims = self.decode(token)
        role = str(claims.get("role", "anon"))
        sub = claims.get("sub")
        sid = claims.get("session_id")
        return Identity(role=role, sub=str(sub) if sub else None, session_id=sid)

    def is_api_key(self, token: str) -> bool:
        try:
            role = self.decode(token).get("role")
        except JwtError:
            return False
        return role in ("anon", "service_role")

    def access_token(
        self, user_id: str, session_id: str | None = None, ttl: int | None = None
    ) -> str:
        """A user access token as GoTrue would issue it (also handy in tests)."""
        with self._lock:
            user = self._users[user_id]
            lifetime = self.access_token_ttl if ttl is None else ttl
        now = time.time()
        claims = {
            "iss": self.issuer,
            "sub": user.id,
            "aud": "authenticated",
            "exp": int(now) + lifetime,
            "iat": int(now),
            "jti": str(uuid.uuid4()),
            "email": user.email,
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": user.user_metadata,
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": int(now)}],
            "is_anonymous": False,
        }
        if session_id is not None:
            claims["session_id"] = session_id
        with self._lock:
            self._issued.add(str(claims["jti"]))
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    # -- admin API used by tests -----------------------------------------

    def create_user(self, email: str, password: str) -> str:
        with self._lock:
            if email.lower() in self._by_email:
                raise ValueError(f"user {email} exists")
            uid = str(uuid.uuid4())
            self._users[uid] = User(uid, email, _hash_password(password, uid), time.time())
            self._by_email[email.lower()] = uid
            return uid

    def user_id(self, email: str) -> str:
        with self._lock:
            return self._by_email[email.lower()]

    def revoke_refresh_tokens(self, user_id: str) -> int:
        """End every session of a user (their refresh tokens stop working)."""
        with self._lock:
            doomed = {
                sid for sid, tok in self._sessions.items() if self._refresh[tok].user_id == user_id
            }
            for sid in doomed:
                self._end_session(sid)
            return len(doomed)

    def expire_access_tokens(self) -> None:
        """Treat every user access token issued so far as expired."""
        with self._lock:
            self._expired |= self._issued
            self._issued = set()

    def set_access_token_ttl(self, seconds: int) -> None:
        with self._lock:
            self.access_token_ttl = seconds

    def active_sessions(self, user_id: str) -> int:
        with self._lock:
            return sum(
                1 for tok in self._sessions.values() if self._refresh[tok].user_id == user_id
            )

    # -- grants ----------------------------------------------------------

    def _end_session(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        for token in [t for t, r in self._refresh.items() if r.session_id == session_id]:
            del self._refresh[token]

    def _issue(self, user: User, session_id: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(16)
        self._refresh[token] = RefreshToken(token, session_id, user.id)
        self._sessions[session_id] = token
        return self._session_json(user, session_id, token)

    def _session_json(self, user: User, session_id: str, token: str) -> dict[str, Any]:
        ttl = self.access_token_ttl
        access = self.access_token(user.id, session_id, ttl)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": ttl,
            "expires_at": int(time.time()) + ttl,
            "refresh_token": token,
            "user": user.to_json(),
            "weak_password": None,
        }

    def password_grant(self, email: str, password: str) -> dict[str, Any]:
        with self._lock:
            uid = self._by_email.get(email.lower())
            user = self._users.get(uid) if uid else None
            if user is None or user.password_hash != _hash_password(password, user.id):
                raise AuthApiError(400, "invalid_credentials", "Invalid login credentials")
            user.last_sign_in_at = time.time()
            return self._issue(user, str(uuid.uuid4()))

    def refresh_grant(self, token: str) -> dict[str, Any]:
        with self._lock:
            record = self._refresh.get(token)
            if record is None:
                raise AuthApiError(
                    400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
                )
            user = self._users[record.user_id]
            if record.revoked_at is not None:
                recent = time.time() - record.revoked_at <= self.refresh_reuse_interval
                active = self._sessions.get(record.session_id)
                if recent and active:
                    # GoTrue's reuse interval: hand out the session's current token.
                    return self._session_json(user, record.session_id, active)
                # Reuse of a rotated token: GoTrue treats it as theft and ends the session.
                self._end_session(record.session_id)
                raise AuthApiError(
                    400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"
                )
            record.revoked_at = time.time()
            return self._issue(user, record.session_id)

    def user_for(self, identity: Identity) -> User:
        with self._lock:
            user = self._users.get(identity.sub or "")
            if user is None:
                raise AuthApiError(
                    403, "user_not_found", "User from sub claim in JWT does not exist"
                )
            if identity.session_id and identity.session_id not in self._sessions:
                raise AuthApiError(
                    403, "session_not_found", "Session from session_id claim in JWT does not exist"
                )
            return user

    def logout(self, identity: Identity, scope: str) -> None:
        with self._lock:
            sessions = [
                sid
                for sid, tok in self._sessions.items()
                if self._refresh[tok].user_id == identity.sub
            ]
            for sid in sessions:
                mine = sid == identity.session_id
                if (
                    scope == "global"
                    or (scope == "local" and mine)
                    or (scope == "others" and not mine)
                ):
                    self._end_session(sid)


# -- HTTP --------------------------------------------------------------------


def error_response(request: web.Request, error: AuthApiError) -> web.Response:
    """GoTrue's error body: the 2024-01-01 shape when the client asks for it."""
    if request.headers.get(API_VERSION_HEADER, "") >= API_VERSION:
        body: dict[str, Any] = {"code": error.code, "message": error.message}
        headers = {API_VERSION_HEADER: API_VERSION}
    else:
        body = {"code": error.status, "error_code": error.code, "msg": error.message}
        headers = {}
    return web.json_response(body, status=error.status, headers=headers)


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise AuthApiError(400, "bad_json", "Could not parse request body as JSON") from exc
    if not isinstance(body, dict):
        raise AuthApiError(400, "bad_json", "Could not parse request body as JSON")
    return body


def _user_identity(service: AuthService, request: web.Request) -> Identity:
    token = _bearer(request)
    if not token:
        raise AuthApiError(401, "no_authorization", "This endpoint requires a Bearer token")
    try:
        identity = service.identity(token)
    except JwtError as exc:
        detail = "token is expired" if exc.expired else "signature is invalid"
        raise AuthApiError(
            403,
            "bad_jwt",
            f"invalid JWT: unable to parse or verify signature, token has invalid claims: {detail}",
        ) from exc
    if identity.sub is None:
        raise AuthApiError(403, "bad_jwt", "invalid claim: missing sub claim")
    return identity


async def handle(service: AuthService, request: web.Request, tail: str) -> web.StreamResponse:
    """Serve ``/auth/v1/<tail>``."""
    try:
        headers = {API_VERSION_HEADER: API_VERSION}
        if tail == "token" and request.method == "POST":
            body = await _json_body(request)
            grant = request.query.get("grant_type")
            if grant == "password":
                session = service.password_grant(
                    str(body.get("email", "")), str(body.get("password", ""))
                )
            elif grant == "refresh_token":
                session = service.refresh_grant(str(body.get("refresh_token", "")))
            else:
                raise AuthApiError(400, "validation_failed", "unsupported_grant_type")
            return web.json_response(session, headers=headers)
        if tail == "user" and request.method == "GET":
            user = service.user_for(_user_identity(service, request))
            return web.json_response(user.to_json(), headers=headers)
        if tail == "logout" and request.method == "POST":
            identity = _user_identity(service, request)
            scope = request.query.get("scope", "global")
            if scope not in ("global", "local", "others"):
                raise AuthApiError(400, "validation_failed", "Unsupported logout scope")
            service.logout(identity, scope)
            return web.Response(status=204, headers=headers)
        if tail == "settings" and request.method == "GET":
            return web.json_response({"external": {"email": True}, "disable_signup": True})
        raise AuthApiError(404, "not_found", "Not Found")
    except AuthApiError as error:
        return error_response(request, error)
