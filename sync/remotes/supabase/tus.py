"""Resumable (TUS) uploads to Supabase Storage with tuspy.

Why tuspy's ``AsyncUploader`` with its HTTP calls routed through our pool: the
stock uploader keeps the protocol details we want (Tus-Resumable and
Upload-Length/Upload-Metadata headers, chunk sizing, offset bookkeeping) but
makes blocking ``requests.head`` calls on the event loop when it resumes,
opens a new aiohttp session and TLS context for every chunk, has no timeouts
and reads the file on the loop. The sync ``Uploader`` in a thread would fix the
blocking but not the timeouts, could not be cancelled mid-chunk and would
bypass the rate limit. So the three network calls (create, HEAD, PATCH) go
through the remote's pooled ``httpx`` client (paced, with timeouts,
cancellable, token refresh once per request) and chunks are read and hashed in
a worker thread.

Resume: the upload URL and the confirmed offset are kept in the
:class:`~sync.remotes.base.ResumeStore` (the journal) under a fingerprint made
of bucket, key (which contains the SHA-256) and size — tuspy's default
fingerprint (size + MD5 of the first 64 KiB) would mix up equal files going to
different keys. A restart HEADs the stored URL and continues from the offset
the server confirms.

Integrity: every byte sent is hashed as it is read; the last chunk is checked
against the expected SHA-256 *before* it is sent, so a file that changed
mid-upload never completes an object under the wrong key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx
from tusclient.client import TusClient
from tusclient.uploader import uploader as tus_uploader

from sync.errors import FileChangedError, LocalFileError, SyncError, TransientError
from sync.remotes.base import ProgressFn, ResumeStore
from sync.remotes.supabase.errors import UploadGone
from sync.remotes.supabase.session import TUS_CHUNK, SupabaseSession


def resume_fingerprint(bucket: str, key: str, size: int) -> str:
    return f"tus:{bucket}/{key}:{size}"


class _Verifier:
    """Reads chunks at given offsets and hashes every byte exactly once, in order."""

    def __init__(self, stream: IO[bytes], sha256: str, size: int) -> None:
        self._stream = stream
        self._sha256 = sha256
        self._size = size
        self._hash = hashlib.sha256()
        self._hashed = 0

    def _hash_to(self, offset: int) -> None:
        if offset < self._hashed:
            self._hash = hashlib.sha256()
            self._hashed = 0
        self._stream.seek(self._hashed)
        while self._hashed < offset:
            block = self._stream.read(min(TUS_CHUNK, offset - self._hashed))
            if not block:
                raise FileChangedError("the file shrank while it was uploaded")
            self._hash.update(block)
            self._hashed += len(block)

    def read(self, offset: int, length: int) -> bytes:
        try:
            return self._read(offset, length)
        except OSError as exc:
            raise LocalFileError(f"cannot read the file: {exc.strerror or exc}") from None

    def _read(self, offset: int, length: int) -> bytes:
        self._hash_to(offset)
        data = self._stream.read(length)
        if len(data) != length:
            raise FileChangedError("the file shrank while it was uploaded")
        self._hash.update(data)
        self._hashed += length
        if self._hashed == self._size:
            self.check()
        return data

    def check(self) -> None:
        self._hash_to(self._size)
        if self._stream.read(1):
            raise FileChangedError("the file grew while it was uploaded")
        if self._hash.hexdigest() != self._sha256:
            raise FileChangedError("the file changed while it was uploaded")


class _Reply:
    """What tuspy reads back from ``self.request`` after a chunk: the new offset."""

    def __init__(self, offset: int) -> None:
        self.status_code = 204
        self.response_headers = {"upload-offset": str(offset)}


# tuspy's uploader attributes are untyped (``url`` starts as None); treat the base as Any.
_AsyncUploader: Any = tus_uploader.AsyncUploader


class _HubUploader(_AsyncUploader):
    """tuspy's uploader with its network calls sent through the remote's pool."""

    def __init__(
        self,
        session: SupabaseSession,
        verifier: _Verifier,
        stream: IO[bytes],
        on_chunk: Any,
        **kwargs: Any,
    ) -> None:
        self._session = session
        self._verifier = verifier
        self._on_chunk = on_chunk
        self._ahead: tuple[tuple[int, int], asyncio.Future[bytes]] | None = None
        endpoint = f"{session.settings.storage_url}/upload/resumable"
        super().__init__(file_stream=stream, client=TusClient(endpoint), **kwargs)

    def get_headers(self) -> dict[str, str]:
        return {**self.DEFAULT_HEADERS, **self._session.headers(), "x-upsert": "true"}

    async def create_url(self) -> str:
        async def create() -> str:
            response = await self._session.http.post(
                self.client.url, headers=self.get_url_creation_headers()
            )
            _raise_for_tus(response)
            location = response.headers.get("location")
            if not location:
                raise TransientError("the TUS server answered without an upload URL")
            return urljoin(str(self.client.url), str(location))

        url: str = await self._session.call("creating a resumable upload", create)
        return url

    async def _head_offset(self) -> int:
        response = await self._session.http.head(self.url, headers=self.get_headers())
        if response.status_code in (404, 410):
            raise UploadGone("the resumable upload expired on the server")
        _raise_for_tus(response)
        return int(response.headers["upload-offset"])

    async def fetch_offset(self) -> int:
        offset: int = await self._session.call("resuming an upload", self._head_offset)
        return offset

    async def _read(self, offset: int, length: int) -> bytes:
        """The chunk at ``offset``, usually already read while the previous one was sent."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            where, task = ahead
            try:
                data = await task
            except SyncError:
                if where == (offset, length):
                    raise
            else:
                if where == (offset, length):
                    return data
        return await asyncio.to_thread(self._verifier.read, offset, length)

    def _read_ahead(self, offset: int) -> None:
        length = min(self.chunk_size, self.stop_at - offset)
        if length > 0:
            task = asyncio.ensure_future(asyncio.to_thread(self._verifier.read, offset, length))
            self._ahead = ((offset, length), task)

    async def settle(self) -> None:
        """Wait for a read-ahead still using the file, so it can be closed."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            with contextlib.suppress(Exception):
                await ahead[1]

    async def _do_request(self) -> None:
        offset, length = self.offset, self.get_request_length()
        chunk = await self._read(offset, length)
        # Read and hash the next chunk while this one is on the wire.
        self._read_ahead(offset + length)

        tries = 0

        async def patch() -> int:
            nonlocal tries
            tries += 1
            if tries > 1:
                # A retry (after a refused token, a reset, a 5xx): the server may have
                # kept part or all of the chunk. Send only what it does not have.
                server = await self._head_offset()
                if server != offset:
                    return server
            headers = {
                **self.get_headers(),
                "upload-offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(len(chunk)),
            }
            response = await self._session.http.patch(
                self.url, content=_once(chunk), headers=headers
            )
            if response.status_code in (404, 410):
                raise UploadGone("the resumable upload expired on the server")
            if response.status_code == 409:
                # Out of step: typically an earlier attempt of this very chunk landed and
                # only its answer was lost. Carry on from wherever the server is.
                server = await self._head_offset()
                if server == offset:  # still locked by a request the server is finishing
                    raise TransientError("the hub is still busy with this upload", retry_after=2.0)
                return server
            _raise_for_tus(response)
            return int(response.headers["upload-offset"])

        new_offset = await self._session.call("uploading a chunk", patch)
        self.request = _Reply(new_offset)
        self._on_chunk(new_offset, max(0, new_offset - offset))


async def _once(data: bytes, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    """The body as a one-shot stream of 256 KiB pieces.

    httpx keeps each response in a reference cycle with its request (and so
    with a ``bytes`` body) until the cyclic GC runs; a generator lets go of the
    6 MiB chunk as soon as it has been sent, which keeps memory at a few chunks.
    Pieces also give every socket write its own timeout window, so a slow link
    is not mistaken for a dead one halfway through a chunk.
    """
    view = memoryview(data)
    del data
    for start in range(0, len(view), piece):
        yield view[start : start + piece].tobytes()


def _raise_for_tus(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.raise_for_status()


async def upload_resumable(
    session: SupabaseSession,
    store: ResumeStore,
    source: Path,
    *,
    sha256: str,
    size: int,
    bucket: str,
    key: str,
    content_type: str,
    progress: ProgressFn | None = None,
) -> None:
    """Upload ``source`` to ``bucket/key`` in 6 MiB chunks, resuming a stored upload."""
    fingerprint = resume_fingerprint(bucket, key, size)
    try:
        stream = await asyncio.to_thread(open, source, "rb")
    except FileNotFoundError:
        raise FileChangedError("the file vanished before it was uploaded") from None
    except OSError as exc:
        raise LocalFileError(f"cannot read the file: {exc.strerror or exc}") from None
    try:
        actual = os.fstat(stream.fileno()).st_size
        if actual != size:
            raise FileChangedError("the file's size changed since it was hashed")
        verifier = _Verifier(stream, sha256, size)

        def on_chunk(offset: int, sent: int) -> None:
            store.set_item(fingerprint, json.dumps({"url": uploader.url, "offset": offset}))
            if progress is not None:
                progress(sent)

        uploader = _HubUploader(
            session,
            verifier,
            stream,
            on_chunk,
            chunk_size=TUS_CHUNK,
            metadata={
                "bucketName": bucket,
                "objectName": key,
                "contentType": content_type,
                "cacheControl": "3600",
            },
        )
        stored = _stored_url(store.get_item(fingerprint))
        if stored:
            uploader.url = stored
            try:
                uploader.offset = await uploader.fetch_offset()
            except UploadGone:
                store.remove_item(fingerprint)
                uploader.url = None
                uploader.offset = 0
            else:
                if progress is not None and uploader.offset:
                    progress(uploader.offset)
        if uploader.url is None:
            uploader.url = await uploader.create_url()
            uploader.offset = 0
            store.set_item(fingerprint, json.dumps({"url": uploader.url, "offset": 0}))
        try:
            if uploader.offset >= size:
                await asyncio.to_thread(verifier.check)
            else:
                await uploader.upload()
        except (UploadGone, FileChangedError):
            # The stored upload is useless now; the next attempt starts afresh.
            store.remove_item(fingerprint)
            raise
        finally:
            await uploader.settle()
        store.remove_item(fingerprint)
    finally:
        await asyncio.to_thread(stream.close)


def _stored_url(value: str | None) -> str | None:
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url else None
