"""TUS 1.0.0 resumable uploads at ``/storage/v1/upload/resumable``.

As the real Storage server answers (measured, see
tests/test_storage_conformance.py): PATCHes of any size are accepted and the
bytes of a chunk that does not arrive whole are kept (the offset moves by what
came in), a second client on an upload that is being written gets 409, another
user may HEAD an upload but their PATCH is refused by RLS, token failures come
back as HTTP 400 with a JSON body, and the object appears only when the last
byte is in. Upload state lives in the server object, so it
survives client restarts (and :meth:`SupabaseTestServer.restart`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, web
from aiohttp.http_exceptions import HttpProcessingError

from .auth import Identity
from .storage import RLS_MESSAGE, StorageError, StorageService, identify

CHUNK = 6 * 1024 * 1024
"""The chunk size supabase-js uses (the server takes any size)."""
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
EXTENSIONS = "creation,creation-with-upload,creation-defer-length,termination,expiration"


@dataclass(slots=True)
class Upload:
    id: str
    bucket_id: str
    key: str
    length: int
    identity: Identity
    content_type: str
    cache_control: str
    metadata: dict[str, Any] | None
    upsert: bool
    expires_at: float
    data: bytearray = field(default_factory=bytearray)
    offset: int = 0
    busy: bool = False
    done: bool = False


class TusError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def parse_metadata(header: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in header.split(","))):
        name, _, value = item.partition(" ")
        try:
            result[name] = base64.b64decode(value).decode() if value else ""
        except ValueError as exc:
            raise TusError(400, "Upload-Metadata is invalid") from exc
    return result


def _storage_to_tus(error: StorageError) -> TusError:
    return TusError(int(error.status), error.message)


def _owns(identity: Identity, upload: Upload) -> bool:
    """Whether RLS lets ``identity`` write to ``upload`` (its creator, or the service role)."""
    return identity.is_service or (identity.sub is not None and identity.sub == upload.identity.sub)


class TusService:
    """Uploads in progress. Thread-safe."""

    def __init__(self, storage: StorageService, *, ttl: float = 86400) -> None:
        self.storage = storage
        self.ttl = ttl
        self._lock = threading.Lock()
        self.uploads: dict[str, Upload] = {}

    def pending(self) -> list[Upload]:
        with self._lock:
            return [u for u in self.uploads.values() if not u.done]

    async def handle(self, request: web.Request, upload_id: str) -> web.StreamResponse:
        try:
            if request.method == "OPTIONS":
                return web.Response(
                    status=204,
                    headers={
                        **TUS_HEADERS,
                        "Tus-Version": "1.0.0",
                        "Tus-Extension": EXTENSIONS,
                        "Tus-Max-Size": str(self.storage.global_limit),
                    },
                )
            try:
                identity = self._identify(request)
            except StorageError as error:
                # Refused tokens get storage's JSON body with HTTP 400 (HEAD: no body).
                return error.response()
            if request.headers.get("Tus-Resumable") != "1.0.0":
                raise TusError(412, "Unsupported TUS version")
            if not upload_id:
                if request.method != "POST":
                    raise TusError(405, "Method not allowed")
                return await self._create(request, identity)
            upload = self._find(upload_id, identity)
            if request.method == "HEAD":
                return web.Response(
                    status=200,
                    headers={
                        **TUS_HEADERS,
                        "Upload-Offset": str(upload.offset),
                        "Upload-Length": str(upload.length),
                        "Cache-Control": "no-store",
                    },
                )
            if request.method == "PATCH":
                return await self._patch(request, upload, identity)
            if request.method == "DELETE":
                if not _owns(identity, upload):
                    raise TusError(403, RLS_MESSAGE)
                with self._lock:
                    if upload.busy:
                        raise TusError(409, "The upload is locked by another request")
                    del self.uploads[upload.id]
                return web.Response(status=204, headers=TUS_HEADERS)
            raise TusError(405, "Method not allowed")
        except TusError as error:
            return web.Response(status=error.status, text=error.text, headers=TUS_HEADERS)

    def _identify(self, request: web.Request) -> Identity:
        """The caller; no token at all is a JWS error here, not a schema one."""
        if "Authorization" not in request.headers:
            raise StorageError("403", "AccessDenied", "Unauthorized", "Invalid Compact JWS")
        return identify(self.storage.auth, request)

    def _find(self, upload_id: str, identity: Identity) -> Upload:
        """The upload; anyone may HEAD it (as on the real server), RLS guards writes."""
        with self._lock:
            upload = self.uploads.get(upload_id)
        if upload is None or upload.expires_at < time.time():
            raise TusError(404, "Upload not found")
        return upload

    async def _create(self, request: web.Request, identity: Identity) -> web.Response:
        try:
            length = int(request.headers["Upload-Length"])
        except (KeyError, ValueError) as exc:
            raise TusError(400, "Upload-Length is missing or invalid") from exc
        meta = parse_metadata(request.headers.get("Upload-Metadata", ""))
        bucket_id = meta.get("bucketName", "")
        key = meta.get("objectName", "")
        content_type = meta.get("contentType") or "application/octet-stream"
        cache_control = meta.get("cacheControl") or "3600"
        cache_control = f"max-age={cache_control}" if cache_control.isdigit() else cache_control
        user_meta = json.loads(meta["metadata"]) if meta.get("metadata") else None
        upsert = request.headers.get("x-upsert", "").lower() == "true"
        if not bucket_id or not key:
            raise TusError(400, "Upload-Metadata must contain bucketName and objectName")
        try:
            self.storage.check_upload(identity, bucket_id, key, length, content_type, upsert)
        except StorageError as error:
            if error.code == "EntityTooLarge":
                raise TusError(413, "Maximum size exceeded") from error
            raise _storage_to_tus(error) from error
        raw_id = f"{bucket_id}/{key}/{uuid.uuid4()}".encode()
        upload = Upload(
            base64.urlsafe_b64encode(raw_id).decode().rstrip("="),
            bucket_id,
            key,
            length,
            identity,
            content_type,
            cache_control,
            user_meta,
            upsert,
            time.time() + self.ttl,
        )
        with self._lock:
            self.uploads[upload.id] = upload
        if length == 0:
            self._finish(upload)
        location = f"{request.url.origin()}/storage/v1/upload/resumable/{upload.id}"
        return web.Response(status=201, headers={**TUS_HEADERS, "Location": location})

    async def _patch(
        self, request: web.Request, upload: Upload, identity: Identity
    ) -> web.Response:
        if request.headers.get("Content-Type") != "application/offset+octet-stream":
            raise TusError(400, "Invalid content-type")
        try:
            offset = int(request.headers["Upload-Offset"])
        except (KeyError, ValueError) as exc:
            raise TusError(400, "Upload-Offset is missing or invalid") from exc
        if not _owns(identity, upload):
            raise TusError(403, RLS_MESSAGE)
        with self._lock:
            if upload.busy:
                raise TusError(409, "The upload is locked by another request")
            if upload.done:
                raise TusError(409, "The resource already exists")
            if offset != upload.offset:
                raise TusError(409, "Upload-Offset conflict")
            upload.busy = True
        try:
            await self._receive(request, upload)
            if upload.offset == upload.length:
                self._finish(upload)
        finally:
            with self._lock:
                upload.busy = False
        return web.Response(
            status=204, headers={**TUS_HEADERS, "Upload-Offset": str(upload.offset)}
        )

    @staticmethod
    async def _receive(request: web.Request, upload: Upload) -> None:
        """Append the body as it arrives; what came in before the client vanished stays."""
        declared = request.content_length
        if declared is not None and upload.offset + declared > upload.length:
            raise TusError(413, "Maximum size exceeded")
        try:
            async for piece in request.content.iter_any():
                if upload.offset + len(piece) > upload.length:
                    raise TusError(413, "Maximum size exceeded")
                upload.data += piece
                upload.offset += len(piece)
        except (ConnectionError, ClientError, HttpProcessingError):
            return  # the client went away mid-chunk: nobody reads the answer

    def _finish(self, upload: Upload) -> None:
        try:
            self.storage.store(
                upload.identity,
                upload.bucket_id,
                upload.key,
                bytes(upload.data),
                content_type=upload.content_type,
                cache_control=upload.cache_control,
                user_metadata=upload.metadata,
                upsert=upload.upsert,
            )
        except StorageError as error:
            with self._lock:
                self.uploads.pop(upload.id, None)
            raise _storage_to_tus(error) from error
        upload.done = True
        upload.data = bytearray()  # the object holds the bytes now
