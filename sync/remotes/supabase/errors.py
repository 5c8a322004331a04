"""Turn supabase-py, storage3, postgrest, auth and TUS failures into :mod:`sync.errors`.

Storage answers almost every client error with HTTP 400 and puts the real code
in the body as a *string* ``statusCode``; storage3 keeps that string (as
``status``) and the body's ``error`` (as ``code``). postgrest keeps only the
body. The HTTP status and ``Retry-After`` of the failed response come from the
note the shared HTTP client leaves behind (:func:`supabase_http.last_response`).
Messages are cut short and scrubbed of anything that looks like a JWT.
"""

from __future__ import annotations

import json
import re

import httpx
from postgrest.exceptions import APIError
from storage3.exceptions import StorageApiError
from supabase_auth.errors import AuthApiError, AuthRetryableError, AuthSessionMissingError
from supabase_auth.errors import AuthError as GoTrueError

from sync.errors import (
    AuthError,
    LocalFileError,
    PermanentError,
    QuotaError,
    SyncError,
    TransientError,
)
from sync.remotes.supabase.http import last_response, parse_retry_after

SIGN_IN_AGAIN = "the Supabase session expired or was revoked: sign in again (hubsync login)"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_JWT_FAILURE = re.compile(
    r"jwt|jws|exp\W{0,3} claim|expired|signature verification|invalid token|token is expired",
    re.IGNORECASE,
)
_BUCKET_NOT_FOUND = re.compile(r"NoSuchBucket|bucket not found", re.IGNORECASE)


class NotFound(PermanentError):
    """The object or row does not exist (or RLS hides it)."""


class UploadGone(TransientError):
    """A resumable upload URL the server no longer knows: start a new upload."""


def scrub(text: str, limit: int = 300) -> str:
    """A message safe for logs and the journal: no tokens, bounded length."""
    text = _JWT.sub("<token>", text).replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after() -> float | None:
    note = last_response()
    return note.retry_after if note else None


def _http_status() -> int | None:
    note = last_response()
    return note.status if note else None


def _body(response: httpx.Response) -> str:
    try:
        return response.text
    except httpx.ResponseNotRead:
        return ""


def storage_body(response: httpx.Response) -> dict[str, str] | None:
    """Storage's JSON error body (statusCode, code, error, message) of a raw response."""
    try:
        data = json.loads(_body(response) or "null")
    except ValueError:
        return None
    if not isinstance(data, dict) or "statusCode" not in data:
        return None
    return {k: str(v) for k, v in data.items() if k in ("statusCode", "code", "error", "message")}


def is_jwt_failure(exc: BaseException) -> bool:
    """The request failed because the access token expired or is not accepted.

    Storage (v1.70, hosted alike) answers HTTP 400 with body statusCode "403"
    AccessDenied and the reason: '"exp" claim timestamp check failed',
    'signature verification failed', 'Invalid Compact JWS'; older versions say
    400 InvalidJWT 'jwt expired'. PostgREST answers 401 PGRST301/PGRST303.
    """
    if isinstance(exc, StorageApiError):
        status = str(exc.status)
        text = f"{exc.code} {exc.message}"
        return status in ("400", "401", "403") and bool(_JWT_FAILURE.search(text))
    if isinstance(exc, APIError):
        code = exc.code or ""
        return code.startswith("PGRST30") or (
            _http_status() == 401 and bool(_JWT_FAILURE.search(exc.message or ""))
        )
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        if response.status_code not in (400, 401, 403):
            return False
        body = storage_body(response)
        if body is not None:
            text = f"{body.get('code', '')} {body.get('message', '')}"
            return body.get("statusCode") in ("400", "401", "403") and bool(
                _JWT_FAILURE.search(text)
            )
        return response.status_code != 400 and bool(_JWT_FAILURE.search(_body(response)))
    return False


def may_hide_a_refused_token(exc: BaseException) -> bool:
    """An answer a bad token can cause although it says something else.

    Storage treats a bad token on GET /object/{bucket}/{key} and
    /object/info/{bucket}/{key} as anonymous, and anon sees no private bucket:
    "Bucket not found". A HEAD (TUS offset) refused for its token is a bare 400.
    Such an answer is taken at face value only when it comes again with a fresh token.
    """
    if isinstance(exc, StorageApiError):
        return str(exc.status) == "404" and bool(
            _BUCKET_NOT_FOUND.search(f"{exc.code} {exc.message}")
        )
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        body = storage_body(response)
        if body is not None:
            return bool(_BUCKET_NOT_FOUND.search(f"{body.get('code')} {body.get('error')}"))
        return (
            response.status_code == 400
            and response.request.method == "HEAD"
            and not _body(response).strip()
        )
    return False


def _by_status(status: int, message: str, what: str, retry_after: float | None) -> SyncError:
    text = f"{what}: {scrub(message)}" if message else what
    if status == 429:
        return TransientError(f"{what}: rate limited by the hub", retry_after=retry_after or 1.0)
    if status >= 500 or status in (408, 0):
        return TransientError(text, retry_after=retry_after)
    if status == 413:
        return QuotaError(f"{what}: too large for the bucket or the project's limit")
    if status == 415:
        return PermanentError(f"{what}: the bucket does not accept this content type")
    if status == 401:
        return AuthError(SIGN_IN_AGAIN)
    if status == 404:
        return NotFound(text)
    if status == 403:
        return PermanentError(f"{what}: access denied by the hub's policies ({scrub(message)})")
    return PermanentError(text)


def storage_error(exc: StorageApiError, what: str) -> SyncError:
    http = _http_status() or 0
    body_status = str(exc.status)
    status = int(body_status) if body_status.isdigit() else http
    if http == 429 or http >= 500:
        status = http
    message = str(exc.message)
    if exc.code in ("InvalidKey",) or message.startswith("Invalid key"):
        return PermanentError(f"{what}: the hub rejected the object key ({scrub(message)})")
    if "mime" in f"{exc.code} {message}".lower():
        status = 415
    return _by_status(status, message, what, _retry_after())


def postgrest_error(exc: APIError, what: str) -> SyncError:
    http = _http_status() or 0
    code = exc.code or ""
    message = exc.message or ""
    if http == 429 or http >= 500 or code in ("57014", "53300", "40001", "40P01"):
        return TransientError(f"{what}: {scrub(message or code)}", retry_after=_retry_after())
    if code.startswith("PGRST30") or http == 401:
        return AuthError(SIGN_IN_AGAIN)
    if code in ("42P01", "PGRST205", "PGRST204", "42703"):
        return PermanentError(
            f"{what}: the hub's tables are missing or outdated; apply the SQL from "
            f"`hubsync supabase schema` ({scrub(message)})"
        )
    if code == "42501":
        return PermanentError(f"{what}: denied by row level security ({scrub(message)})")
    if http:
        return _by_status(http, f"{code} {message}".strip(), what, _retry_after())
    return PermanentError(f"{what}: {scrub(f'{code} {message}'.strip())}")


def auth_error(exc: GoTrueError, what: str) -> SyncError:
    if isinstance(exc, AuthRetryableError):
        return TransientError(f"{what}: the auth server is unreachable ({scrub(exc.message)})")
    if isinstance(exc, AuthSessionMissingError):
        return AuthError("not signed in to Supabase: run hubsync login")
    if isinstance(exc, AuthApiError):
        if exc.status == 429:
            return TransientError(f"{what}: rate limited by the auth server", retry_after=5.0)
        if exc.status >= 500:
            return TransientError(f"{what}: {scrub(exc.message)}")
    return AuthError(SIGN_IN_AGAIN)


def map_error(exc: BaseException, what: str) -> SyncError:
    """The :mod:`sync.errors` kind for ``exc``, raised while doing ``what``."""
    if isinstance(exc, SyncError):
        return exc
    if is_jwt_failure(exc):
        return AuthError(SIGN_IN_AGAIN)
    if isinstance(exc, StorageApiError):
        return storage_error(exc, what)
    if isinstance(exc, APIError):
        return postgrest_error(exc, what)
    if isinstance(exc, GoTrueError):
        return auth_error(exc, what)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        body = storage_body(response)
        status = response.status_code
        if body is not None and status == 400 and body["statusCode"].isdigit():
            # Storage's own routes: the real status is the body's string statusCode.
            status = int(body["statusCode"])
        return _by_status(
            status, body.get("message", "") if body else _body(response), what, retry_after
        )
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what}: timed out")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"{what}: network error ({type(exc).__name__})")
    if isinstance(exc, OSError):
        return LocalFileError(f"{what}: {scrub(str(exc))}")
    return TransientError(f"{what}: unexpected {type(exc).__name__}: {scrub(str(exc))}")
