"""Supabase Storage stand-in: buckets, objects, the per-user folder policy.

Error bodies follow storage-api: HTTP 400 for client errors (500 stays 500)
with the real code as a *string* ``statusCode`` in the body, e.g.
``{"statusCode": "409", "code": "KeyAlreadyExists", "error": "Duplicate", ...}``.
Objects live in memory (and, when a mirror is set, as ``storage.objects`` rows
of the database behind /rest/v1, as the real server keeps them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from fnmatch import fnmatchcase
from typing import Any

import jwt
from aiohttp import BodyPartReader, web

from .auth import ANON, AuthService, Identity, JwtError, iso
from .objects_table import MirroredObjects

VALID_KEY = re.compile(r"^[A-Za-z0-9_/!\-.*'() &$@=;:+,?]*$")
MAX_KEY_BYTES = 1024
RLS_MESSAGE = "new row violates row-level security policy"


class StorageError(Exception):
    """A storage-api error; ``status`` is the string ``statusCode`` of the body."""

    def __init__(self, status: str, code: str, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.error = error
        self.message = message

    def response(self) -> web.Response:
        body = {
            "statusCode": self.status,
            "code": self.code,
            "error": self.error,
            "message": self.message,
        }
        return web.json_response(body, status=500 if self.status == "500" else 400)


def no_such_key() -> StorageError:
    return StorageError("404", "NoSuchKey", "not_found", "Object not found")


def no_such_bucket() -> StorageError:
    return StorageError("404", "NoSuchBucket", "Bucket not found", "Bucket not found")


def access_denied(message: str = RLS_MESSAGE) -> StorageError:
    return StorageError("403", "AccessDenied", "Unauthorized", message)


def duplicate() -> StorageError:
    return StorageError("409", "KeyAlreadyExists", "Duplicate", "The resource already exists")


def too_large() -> StorageError:
    return StorageError(
        "413", "EntityTooLarge", "Payload too large", "The object exceeded the maximum allowed size"
    )


def invalid_key(key: str) -> StorageError:
    return StorageError("400", "InvalidKey", "InvalidKey", f"Invalid key: {key}")


def bad_request(message: str) -> StorageError:
    return StorageError("400", "InvalidRequest", "Bad Request", message)


def schema_error(message: str) -> StorageError:
    """A request that fails the route's JSON schema (the real server says ``"error": "Error"``)."""
    return StorageError("400", "InvalidRequest", "Error", message)


def parse_size(value: Any) -> int | None:
    """``file_size_limit`` as bytes: an int, or a string like ``"50MB"``."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*(B|KB|MB|GB)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise bad_request(f"Invalid file size limit: {value}")
    factor = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[(match[2] or "").upper()]
    return int(match[1]) * factor


@dataclass(slots=True)
class Bucket:
    id: str
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.id,
            "owner": "",
            "public": self.public,
            "type": "STANDARD",
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": self.allowed_mime_types,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def accepts(self, mimetype: str) -> bool:
        if not self.allowed_mime_types:
            return True
        base = mimetype.split(";", 1)[0].strip().lower()
        return any(fnmatchcase(base, pattern.lower()) for pattern in self.allowed_mime_types)


@dataclass(slots=True)
class StoredObject:
    bucket_id: str
    name: str
    data: bytes
    content_type: str
    cache_control: str
    owner: str | None
    user_metadata: dict[str, Any] | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    etag: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.etag = f'"{hashlib.md5(self.data).hexdigest()}"'

    def metadata(self) -> dict[str, Any]:
        return {
            "eTag": self.etag,
            "size": len(self.data),
            "mimetype": self.content_type,
            "cacheControl": self.cache_control,
            "lastModified": iso(self.updated_at),
            "contentLength": len(self.data),
            "httpStatusCode": 200,
        }

    def row(self) -> dict[str, Any]:
        """The storage.objects row as list/remove return it."""
        return {
            "name": self.name,
            "bucket_id": self.bucket_id,
            "owner": self.owner,
            "owner_id": self.owner,
            "version": self.version,
            "id": self.id,
            "updated_at": iso(self.updated_at),
            "created_at": iso(self.created_at),
            "last_accessed_at": iso(self.updated_at),
            "metadata": self.metadata(),
            "user_metadata": self.user_metadata,
        }

    def info(self) -> dict[str, Any]:
        """``GET /object/info`` as the real server answers it (``metadata`` = the user's)."""
        return {
            "id": self.id,
            "name": self.name,
            "bucket_id": self.bucket_id,
            "version": self.version,
            "size": len(self.data),
            "content_type": self.content_type,
            "cache_control": self.cache_control,
            "etag": self.etag,
            "last_modified": iso(self.updated_at),
            "created_at": iso(self.created_at),
            "metadata": self.user_metadata or {},
        }

    def list_entry(self, name: str) -> dict[str, Any]:
        """A file in a ``POST /object/list`` answer: the real server's fields only."""
        return {
            "name": name,
            "id": self.id,
            "updated_at": iso(self.updated_at),
            "created_at": iso(self.created_at),
            "last_accessed_at": iso(self.updated_at),
            "metadata": self.metadata(),
        }


def check_key(key: str) -> None:
    if not key or not VALID_KEY.match(key) or len(key.encode()) > MAX_KEY_BYTES:
        raise invalid_key(key)


def can_touch(identity: Identity, key: str) -> bool:
    """The migrations' policy: the first folder of the key is the caller's uid."""
    if identity.is_service:
        return True
    if identity.role != "authenticated" or not identity.sub:
        return False
    folders = key.split("/")[:-1]
    return bool(folders) and folders[0] == identity.sub


class StorageService:
    """All buckets and objects; every method is thread-safe."""

    def __init__(self, auth: AuthService, *, global_limit: int = 50 * 1024**2) -> None:
        self.auth = auth
        self.global_limit = global_limit
        self.lock = threading.RLock()
        self.buckets: dict[str, Bucket] = {}
        self.objects = MirroredObjects()
        """Set ``objects.mirror`` to keep ``storage.objects`` rows of a database in step."""

    # -- Python API for tests ----------------------------------------------

    def create_bucket(
        self,
        bucket_id: str,
        *,
        public: bool = False,
        file_size_limit: int | None = None,
        allowed_mime_types: list[str] | None = None,
    ) -> Bucket:
        with self.lock:
            bucket = Bucket(bucket_id, public, file_size_limit, allowed_mime_types)
            self.buckets[bucket_id] = bucket
            return bucket

    def get(self, bucket_id: str, key: str) -> StoredObject | None:
        with self.lock:
            return self.objects.get((bucket_id, key))

    def keys(self, bucket_id: str) -> list[str]:
        with self.lock:
            return sorted(k for b, k in self.objects if b == bucket_id)

    # -- rules shared with TUS ---------------------------------------------

    def bucket(self, bucket_id: str) -> Bucket:
        with self.lock:
            bucket = self.buckets.get(bucket_id)
        if bucket is None:
            raise no_such_bucket()
        return bucket

    def limit_for(self, bucket: Bucket) -> int:
        limit = self.global_limit
        if bucket.file_size_limit is not None:
            limit = min(limit, bucket.file_size_limit)
        return limit

    def check_upload(
        self,
        identity: Identity,
        bucket_id: str,
        key: str,
        size: int,
        content_type: str,
        upsert: bool,
    ) -> None:
        """Everything an upload must pass before its bytes are stored."""
        check_key(key)
        bucket = self.bucket(bucket_id)
        if size > self.limit_for(bucket):
            raise too_large()
        if not bucket.accepts(content_type):
            raise StorageError(
                "415",
                "InvalidMimeType",
                "invalid_mime_type",
                f"mime type {content_type} is not supported",
            )
        if not can_touch(identity, key):
            raise access_denied()
        if not upsert and self.get(bucket_id, key) is not None:
            raise duplicate()

    def store(
        self,
        identity: Identity,
        bucket_id: str,
        key: str,
        data: bytes,
        *,
        content_type: str,
        cache_control: str,
        user_metadata: dict[str, Any] | None,
        upsert: bool,
    ) -> StoredObject:
        with self.lock:
            self.check_upload(identity, bucket_id, key, len(data), content_type, upsert)
            previous = self.objects.get((bucket_id, key))
            obj = StoredObject(
                bucket_id, key, data, content_type, cache_control, identity.sub, user_metadata
            )
            if previous is not None:
                obj.id = previous.id
                obj.created_at = previous.created_at
            self.objects[(bucket_id, key)] = obj
            return obj

    def visible(self, identity: Identity, bucket_id: str, key: str) -> StoredObject:
        with self.lock:
            obj = self.objects.get((bucket_id, key))
            if obj is None or not can_touch(identity, key):
                if bucket_id not in self.buckets:
                    raise no_such_bucket()
                raise no_such_key()
            return obj


# -- HTTP --------------------------------------------------------------------


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


def identify(auth: AuthService, request: web.Request, *, lenient: bool = False) -> Identity:
    """The caller, as storage's JWT check sees it.

    A token that is expired, badly signed or malformed is refused with HTTP 400
    and body statusCode "403" AccessDenied. ``lenient`` is the download and info
    paths without ``authenticated/`` (GET /object/{bucket}/{key}, /object/info/...),
    where the real server treats any bad token as anon, so a private bucket
    answers "Bucket not found".
    """
    token = _bearer(request)
    if token is None:
        if lenient:
            return ANON
        raise schema_error("headers must have required property 'authorization'")
    try:
        return auth.identity(token)
    except JwtError as exc:
        if lenient:
            return ANON
        raise access_denied(exc.message) from exc


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise bad_request("Body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("body must be object")
    return body


@dataclass(slots=True)
class UploadBody:
    data: bytes
    content_type: str
    cache_control: str
    metadata: dict[str, Any] | None


def _metadata(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise bad_request("metadata is not valid JSON") from exc
    return value if isinstance(value, dict) else None


async def read_upload(request: web.Request, limit: int) -> UploadBody:
    """A raw body (content-type = mimetype) or storage-js style multipart form."""
    declared = request.content_length
    if declared is not None and declared > limit + 64 * 1024:
        raise too_large()
    cache_control = request.headers.get("cache-control", "no-cache")
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        data = b""
        content_type = "text/plain;charset=UTF-8"
        metadata = None
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is not None or part.name == "file":
                data = await part.read()
                content_type = part.headers.get("Content-Type", "text/plain;charset=UTF-8")
            elif part.name == "cacheControl":
                cache_control = await part.text()
            elif part.name == "metadata":
                metadata = _metadata(await part.text())
        cache_control = f"max-age={cache_control}" if cache_control.isdigit() else cache_control
        return UploadBody(data, content_type, cache_control, metadata)
    raw_meta = request.headers.get("x-metadata")
    metadata = _metadata(base64.b64decode(raw_meta).decode()) if raw_meta else None
    content_type = request.headers.get("Content-Type", "text/plain;charset=UTF-8")
    cache_control = f"max-age={cache_control}" if cache_control.isdigit() else cache_control
    return UploadBody(await request.read(), content_type, cache_control, metadata)


def _split(rest: str) -> tuple[str, str]:
    bucket, _, key = rest.partition("/")
    return bucket, key


def _object_response(
    request: web.Request, obj: StoredObject, *, head: bool = False
) -> web.Response:
    headers = {
        "Content-Type": obj.content_type,
        "ETag": obj.etag,
        "Cache-Control": obj.cache_control,
        "Last-Modified": formatdate(obj.updated_at, usegmt=True),
        "Accept-Ranges": "bytes",
    }
    download = request.query.get("download")
    if download is not None:
        name = download or obj.name.rsplit("/", 1)[-1]
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if head:
        headers["Content-Length"] = str(len(obj.data))
        return web.Response(status=200, headers=headers)
    data = obj.data
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", ""))
    if match and (match[1] or match[2]):
        size = len(data)
        start = int(match[1]) if match[1] else max(0, size - int(match[2]))
        end = min(int(match[2]), size - 1) if match[1] and match[2] else size - 1
        if start >= size or start > end:
            body = {  # as storage-api v1.70.6 answers (checked on the real server)
                "statusCode": "416",
                "error": "invalid_range",
                "message": "invalid range provided",
                "code": "InvalidRange",
            }
            return web.json_response(body, status=416)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return web.Response(status=206, body=data[start : end + 1], headers=headers)
    return web.Response(status=200, body=data, headers=headers)


class StorageHandlers:
    """Routes of ``/storage/v1`` except the resumable endpoint."""

    def __init__(self, service: StorageService) -> None:
        self.s = service

    async def handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        try:
            return await self._route(request, tail)
        except StorageError as error:
            if request.method == "HEAD":
                return web.Response(status=error.response().status)
            return error.response()

    async def _route(self, request: web.Request, tail: str) -> web.StreamResponse:
        method = request.method
        if tail == "bucket" or tail.startswith("bucket/"):
            return await self._bucket(request, tail[len("bucket") :].strip("/"))
        if not tail.startswith("object/"):
            raise StorageError("404", "NotFound", "Not Found", f"Route {method}:/{tail} not found")
        rest = tail[len("object/") :]
        if rest.startswith("sign/"):
            return await self._sign(request, rest[len("sign/") :])
        if rest.startswith("public/") and method in ("GET", "HEAD"):
            bucket_id, key = _split(rest[len("public/") :])
            bucket = self.s.bucket(bucket_id)
            if not bucket.public:
                raise no_such_bucket()
            obj = self.s.visible(Identity("service_role"), bucket_id, key)
            return _object_response(request, obj, head=method == "HEAD")
        if rest.startswith("list/") and method == "POST":
            return await self._list(request, rest[len("list/") :])
        if rest.startswith("info/") and method == "GET":
            info = rest[len("info/") :]
            strict = info.startswith("authenticated/")
            for prefix in ("authenticated/", "public/"):
                info = info.removeprefix(prefix)
            identity = identify(self.s.auth, request, lenient=not strict)
            bucket_id, key = _split(info)
            if identity.role == "anon" and not self.s.bucket(bucket_id).public:
                raise no_such_bucket()
            return web.json_response(self.s.visible(identity, bucket_id, key).info())
        if rest in ("move", "copy") and method == "POST":
            return await self._move_copy(request, copy=rest == "copy")
        strict = rest.startswith("authenticated/") and method in ("GET", "HEAD")
        if strict:
            rest = rest[len("authenticated/") :]
        bucket_id, key = _split(rest)
        if not key and method == "DELETE":
            return await self._remove(request, bucket_id)
        if method in ("GET", "HEAD"):
            identity = identify(self.s.auth, request, lenient=not strict)
            if identity.role == "anon" and not self.s.bucket(bucket_id).public:
                raise no_such_bucket()
            obj = self.s.visible(identity, bucket_id, key)
            return _object_response(request, obj, head=method == "HEAD")
        if method in ("POST", "PUT"):
            return await self._upload(request, bucket_id, key, method)
        if method == "DELETE":
            identity = identify(self.s.auth, request)
            with self.s.lock:
                self.s.visible(identity, bucket_id, key)
                del self.s.objects[(bucket_id, key)]
            return web.json_response({"message": "Successfully deleted"})
        raise StorageError("404", "NotFound", "Not Found", f"Route {method}:/{tail} not found")

    async def _upload(
        self, request: web.Request, bucket_id: str, key: str, method: str
    ) -> web.Response:
        identity = identify(self.s.auth, request)
        upsert = method == "PUT" or request.headers.get("x-upsert", "").lower() == "true"
        check_key(key)
        bucket = self.s.bucket(bucket_id)
        body = await read_upload(request, self.s.limit_for(bucket))
        obj = self.s.store(
            identity,
            bucket_id,
            key,
            body.data,
            content_type=body.content_type,
            cache_control=body.cache_control,
            user_metadata=body.metadata,
            upsert=upsert,
        )
        return web.json_response({"Id": obj.id, "Key": f"{bucket_id}/{key}"})

    async def _list(self, request: web.Request, bucket_id: str) -> web.Response:
        identity = identify(self.s.auth, request)
        body = await _json(request)
        if "prefix" not in body:
            raise schema_error("body must have required property 'prefix'")
        prefix = str(body.get("prefix") or "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        search = str(body.get("search") or "").lower()
        limit = int(body.get("limit") or 100)
        offset = int(body.get("offset") or 0)
        sort = body.get("sortBy") or {}
        column = str(sort.get("column") or "name")
        descending = str(sort.get("order") or "asc").lower() == "desc"
        folders: set[str] = set()
        files: list[StoredObject] = []
        with self.s.lock:
            candidates = [
                o for (b, k), o in self.s.objects.items() if b == bucket_id and k.startswith(prefix)
            ]
        for obj in candidates:
            if not can_touch(identity, obj.name):
                continue
            head, sep, _ = obj.name[len(prefix) :].partition("/")
            if search and search not in head.lower():
                continue
            if sep:
                folders.add(head)
            else:
                files.append(obj)
        entries: list[dict[str, Any]] = [
            {
                "name": f,
                "id": None,
                "updated_at": None,
                "created_at": None,
                "last_accessed_at": None,
                "metadata": None,
            }
            for f in folders
        ]
        entries += [obj.list_entry(obj.name[len(prefix) :]) for obj in files]

        def sort_key(entry: dict[str, Any]) -> tuple[bool, str]:
            value = entry.get(column)
            return (value is None, str(value) if value is not None else "")

        entries.sort(key=sort_key, reverse=descending)
        return web.json_response(entries[offset : offset + limit])

    async def _remove(self, request: web.Request, bucket_id: str) -> web.Response:
        identity = identify(self.s.auth, request)
        body = await _json(request)
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes:
            raise schema_error("body must have required property 'prefixes'")
        if len(prefixes) > 1000:
            raise schema_error("body/prefixes must NOT have more than 1000 items")
        removed = []
        with self.s.lock:
            for key in prefixes:
                obj = self.s.objects.get((bucket_id, str(key)))
                if obj is not None and can_touch(identity, obj.name):
                    del self.s.objects[(bucket_id, obj.name)]
                    removed.append(obj.row())
        return web.json_response(removed)

    async def _move_copy(self, request: web.Request, *, copy: bool) -> web.Response:
        identity = identify(self.s.auth, request)
        body = await _json(request)
        bucket_id = str(body.get("bucketId", ""))
        source = str(body.get("sourceKey", ""))
        dest = str(body.get("destinationKey", ""))
        dest_bucket = str(body.get("destinationBucket") or bucket_id)
        check_key(dest)
        with self.s.lock:
            obj = self.s.visible(identity, bucket_id, source)
            self.s.bucket(dest_bucket)
            if not can_touch(identity, dest):
                raise access_denied()
            if (dest_bucket, dest) in self.s.objects:
                raise duplicate()
            moved = StoredObject(
                dest_bucket,
                dest,
                obj.data,
                obj.content_type,
                obj.cache_control,
                obj.owner,
                obj.user_metadata,
            )
            if not copy:
                moved.id = obj.id
                del self.s.objects[(bucket_id, source)]
            self.s.objects[(dest_bucket, dest)] = moved
        if copy:
            return web.json_response({"Id": moved.id, "Key": f"{dest_bucket}/{dest}"})
        return web.json_response({"message": "Successfully moved"})

    def _signed_path(self, bucket_id: str, key: str, expires_in: int) -> str:
        now = int(time.time())
        token = jwt.encode(
            {"url": f"{bucket_id}/{key}", "iat": now, "exp": now + expires_in},
            self.s.auth.jwt_secret,
            algorithm="HS256",
        )
        return f"/object/sign/{bucket_id}/{key}?token={token}"

    async def _sign(self, request: web.Request, rest: str) -> web.StreamResponse:
        bucket_id, key = _split(rest)
        if request.method in ("GET", "HEAD"):
            token = request.query.get("token", "")
            try:
                claims = jwt.decode(token, self.s.auth.jwt_secret, algorithms=["HS256"])
            except jwt.ExpiredSignatureError as exc:
                raise StorageError("400", "InvalidJWT", "InvalidJWT", "jwt expired") from exc
            except jwt.PyJWTError as exc:
                raise StorageError(
                    "400", "InvalidJWT", "InvalidJWT", "signature verification failed"
                ) from exc
            if claims.get("url") != f"{bucket_id}/{key}":
                raise StorageError(
                    "400",
                    "InvalidSignature",
                    "InvalidSignature",
                    "The url do not match the signature",
                )
            obj = self.s.visible(Identity("service_role"), bucket_id, key)
            return _object_response(request, obj, head=request.method == "HEAD")
        if request.method != "POST":
            raise StorageError("404", "NotFound", "Not Found", "Route not found")
        identity = identify(self.s.auth, request)
        body = await _json(request)
        try:
            expires_in = int(body.get("expiresIn", 0))
        except (TypeError, ValueError) as exc:
            raise bad_request("expiresIn must be a number") from exc
        if expires_in < 1:
            raise schema_error("body/expiresIn must be >= 1")
        if key:
            self.s.visible(identity, bucket_id, key)
            return web.json_response({"signedURL": self._signed_path(bucket_id, key, expires_in)})
        results = []
        for path in body.get("paths") or []:
            try:
                self.s.visible(identity, bucket_id, str(path))
                results.append(
                    {
                        "error": None,
                        "path": path,
                        "signedURL": self._signed_path(bucket_id, path, expires_in),
                    }
                )
            except StorageError:
                results.append(
                    {
                        "error": "Either the object does not exist or you do not have access to it",
                        "path": path,
                        "signedURL": None,
                    }
                )
        return web.json_response(results)

    async def _bucket(self, request: web.Request, rest: str) -> web.Response:
        identity = identify(self.s.auth, request)
        method = request.method
        bucket_id, _, action = rest.partition("/")
        if method == "GET" and not bucket_id:
            with self.s.lock:
                buckets = [b.to_json() for b in self.s.buckets.values()]
            return web.json_response(buckets if identity.is_service else [])
        if method == "GET":
            if not identity.is_service:
                raise no_such_bucket()
            return web.json_response(self.s.bucket(bucket_id).to_json())
        if not identity.is_service:
            raise access_denied()
        if method == "POST" and not bucket_id:
            body = await _json(request)
            new_id = str(body.get("id") or body.get("name") or "")
            if not new_id:
                raise bad_request("body must have required property 'name'")
            with self.s.lock:
                if new_id in self.s.buckets:
                    raise StorageError(
                        "409", "BucketAlreadyExists", "Duplicate", "The resource already exists"
                    )
                self.s.create_bucket(
                    new_id,
                    public=bool(body.get("public")),
                    file_size_limit=parse_size(body.get("file_size_limit")),
                    allowed_mime_types=body.get("allowed_mime_types"),
                )
            return web.json_response({"name": new_id})
        bucket = self.s.bucket(bucket_id)
        if method == "PUT" and not action:
            body = await _json(request)
            with self.s.lock:
                if "public" in body:
                    bucket.public = bool(body["public"])
                if "file_size_limit" in body:
                    bucket.file_size_limit = parse_size(body["file_size_limit"])
                if "allowed_mime_types" in body:
                    bucket.allowed_mime_types = body["allowed_mime_types"]
                bucket.updated_at = time.time()
            return web.json_response({"message": "Successfully updated"})
        if method == "POST" and action == "empty":
            with self.s.lock:
                for k in [k for k in self.s.objects if k[0] == bucket_id]:
                    del self.s.objects[k]
            return web.json_response({"message": "Successfully emptied"})
        if method == "DELETE" and not action:
            with self.s.lock:
                if any(b == bucket_id for b, _ in self.s.objects):
                    raise StorageError(
                        "409",
                        "ResourceNotEmpty",
                        "Bucket not empty",
                        "The bucket you tried to delete is not empty",
                    )
                del self.s.buckets[bucket_id]
            return web.json_response({"message": "Successfully deleted"})
        raise StorageError("404", "NotFound", "Not Found", "Route not found")
