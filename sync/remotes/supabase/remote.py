"""The Supabase hub: Storage for blobs, PostgREST tables for what they mean.

Implements :class:`sync.remotes.base.Remote` on one signed-in
:class:`~sync.remotes.supabase.session.SupabaseSession`. Blobs live under
``{uid}/{sha[:2]}/{sha}/{ascii_name}``; small ones go up in one request,
large ones through resumable TUS uploads (:mod:`.tus`). Every write is
idempotent (uploads use ``x-upsert``, HubSync's own rows are upserts on their
natural keys, rows of the tables shared with EXAI are added only when missing:
:mod:`.files`), so a step repeated after a crash does no harm. Each
request is retried a few times in place when it fails transiently, and once
after a token refresh (:meth:`SupabaseSession.call`); beyond that failures
leave as :mod:`sync.errors` kinds and the engine decides when to try the file
again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from postgrest.types import ReturnMethod
from storage3.types import FileOptions
from yarl import URL

from sync.devices import default_device_name
from sync.errors import (
    IntegrityError,
    PermanentError,
    TransientError,
)
from sync.keys import is_sha256, object_key
from sync.policy import BucketLimits
from sync.remotes.base import (
    BUCKET_FILES,
    ManifestEntry,
    Operation,
    PartialBlob,
    ProgressFn,
    ResumeStore,
)
from sync.remotes.supabase.batch import GroupWriter
from sync.remotes.supabase.blobs import (
    DOWNLOAD_BLOCK,
    append_body,
    forget_partial,
    info_size,
    range_start,
    read_verified,
    sha256_of,
    size_on_disk,
    total_size,
    write_small,
)
from sync.remotes.supabase.errors import NotFound
from sync.remotes.supabase.files import ROW_BATCH, SharedTables
from sync.remotes.supabase.history import read_packed_copy
from sync.remotes.supabase.manifest import ManifestReads
from sync.remotes.supabase.rows import (
    DEVICES_CONFLICT,
    MANIFEST_CONFLICT,
    chunks,
    manifest_row,
    metadata_row,
    metadata_rows_for,
    now_iso,
)
from sync.remotes.supabase.session import SupabaseSession
from sync.remotes.supabase.tus import upload_resumable


class MemoryResumeStore:
    """A ResumeStore for one process (tests, one-shot CLI uploads)."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get_item(self, key: str) -> str | None:
        return self.items.get(key)

    def set_item(self, key: str, value: str) -> None:
        self.items[key] = value

    def remove_item(self, key: str) -> None:
        self.items.pop(key, None)


ERRORS_CONFLICT = "user_id,device_id,fingerprint"
LIMITS_TTL = 300.0


class SupabaseRemote(ManifestReads):
    """A Supabase project as a HubSync hub."""

    kind = "supabase"
    parallel_uploads = 32
    """Uploads the engine keeps in flight: a small file spends most of its time waiting
    for the grouped file_metadata write (two round trips), not on a connection."""

    def __init__(
        self,
        session: SupabaseSession,
        *,
        resume_store: ResumeStore | None = None,
        tus_threshold: int | None = None,
        probe_limit: int = 32,
    ) -> None:
        self.session = session
        self.user_id = session.user_id
        self.resume_store: ResumeStore = resume_store or MemoryResumeStore()
        self.tus_threshold = (
            tus_threshold if tus_threshold is not None else session.settings.tus_threshold
        )
        self.probe_limit = probe_limit
        self._devices_seen: set[str] = set()
        self.device_name = default_device_name()
        self.shared = SharedTables(session)
        self._metadata = GroupWriter(self.shared.write_metadata)
        self._limits: dict[str, tuple[float, BucketLimits]] = {}

    def describe(self) -> str:
        return session_description(self.session)

    # -- health ------------------------------------------------------------

    async def ping(self) -> float:
        """One authenticated PostgREST request (an empty page of file_metadata)."""
        started = time.perf_counter()
        await self.session.call(
            "pinging the hub",
            lambda: self.session.client.table("file_metadata").select("file_id").limit(1).execute(),
        )
        return time.perf_counter() - started

    # -- blobs -------------------------------------------------------------

    async def find_blobs(
        self, hashes: Collection[str], bucket: str = BUCKET_FILES
    ) -> dict[str, str]:
        wanted = sorted({h for h in hashes if is_sha256(h)})
        found: dict[str, str] = {}
        prefix = f"{self.user_id}/"
        for row in await self.shared.rows_by_hash(wanted, bucket):
            sha, key = row.get("sha256_hash"), row.get("path")
            if isinstance(sha, str) and isinstance(key, str) and key.startswith(prefix):
                found.setdefault(sha, key)
        missing = [h for h in wanted if h not in found][: self.probe_limit]
        if missing:
            probes = await asyncio.gather(*(self._probe(h, bucket) for h in missing))
            found.update({h: key for h, key in zip(missing, probes, strict=True) if key})
        return found

    async def _probe(self, sha256: str, bucket: str) -> str | None:
        """The key of an object stored without a file_metadata row (one list request)."""
        folder = f"{self.user_id}/{sha256[:2]}/{sha256}"
        entries = await self.session.call(
            "looking for a stored blob",
            lambda: self.session.client.storage.from_(bucket).list(folder, {"limit": 2}),
        )
        for entry in entries:
            name = entry.get("name")
            if entry.get("id") and isinstance(name, str) and name:
                return f"{folder}/{name}"
        return None

    async def put_blob(
        self,
        source: Path,
        sha256: str,
        size: int,
        filename: str,
        content_type: str,
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> str:
        key = object_key(self.user_id, sha256, filename)
        if size >= self.tus_threshold and size > 0:
            await upload_resumable(
                self.session,
                self.resume_store,
                source,
                sha256=sha256,
                size=size,
                bucket=bucket,
                key=key,
                content_type=content_type,
                progress=progress,
            )
            await self._verify_size(bucket, key, size)
        else:
            data = await asyncio.to_thread(read_verified, source, sha256, size)
            options: FileOptions = {
                "content-type": content_type,
                "cache-control": "3600",
                "x-upsert": "true",
            }
            await self.session.call(
                "uploading",
                lambda: self.session.client.storage.from_(bucket).upload(key, data, options),
            )
            if progress is not None:
                progress(size)
        await self._metadata.write(
            metadata_row(self.user_id, bucket, key, filename, size, content_type, sha256)
        )
        return key

    async def _verify_size(self, bucket: str, key: str, size: int) -> None:
        info = await self.session.call(
            "checking an upload", lambda: self.session.client.storage.from_(bucket).info(key)
        )
        stored = info_size(info)
        if stored != size:
            raise IntegrityError(f"the hub stored {stored} bytes of {size} for {key}")

    async def get_blob(
        self,
        key: str,
        sha256: str,
        dest: Path,
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> None:
        try:
            await self.resume_blob(key, sha256, dest, None, forget_partial, progress, bucket)
        except BaseException:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            raise

    async def resume_blob(
        self,
        key: str,
        sha256: str,
        dest: Path,
        known: PartialBlob | None,
        remember: Callable[[PartialBlob], None],
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> None:
        """Each attempt (a retry after a dropped connection too) asks for the bytes after
        those on disk, ``Range: bytes=N-``; a 200 answer (the range ignored) or another
        ETag than the one the first bytes came with starts over."""
        base = URL(self.session.settings.storage_url)
        url = str(base.joinpath("object", bucket, *key.split("/")))
        state = {"known": known}

        async def download() -> None:
            digest = ""  # known already when a small body was written in one go
            have = await asyncio.to_thread(size_on_disk, dest) if state["known"] else 0
            headers = self.session.headers()
            if have:
                headers["Range"] = f"bytes={have}-"
            async with self.session.http.stream("GET", url, headers=headers) as r:
                if r.status_code == 416 and have:
                    await r.aread()
                    have = -1  # all there already: the hash decides
                elif not r.is_success:
                    await r.aread()
                    r.raise_for_status()
                else:
                    etag = r.headers.get("etag", "")
                    start = range_start(r.headers.get("content-range"))
                    previous = state["known"]
                    if (
                        r.status_code != 206
                        or start != have
                        or (previous is not None and previous.etag and etag != previous.etag)
                    ):
                        if r.status_code == 206:  # not the bytes we asked for: start over
                            state["known"] = None
                            raise TransientError(f"the hub sent another range of {key}")
                        have = 0
                    size = total_size(r, have)
                    partial = PartialBlob(key, sha256, etag, size)
                    state["known"] = partial
                    remember(partial)
                    if have == 0 and 0 <= size < DOWNLOAD_BLOCK:
                        digest = await write_small(r, dest, progress)
                    else:
                        await append_body(r, dest, have, progress)
            if (digest or await asyncio.to_thread(sha256_of, dest)) != sha256:
                await asyncio.to_thread(dest.unlink, missing_ok=True)
                state["known"] = None
                raise IntegrityError(f"downloaded bytes of {key} do not match their SHA-256")

        try:
            await self.session.call("downloading", download)
        except NotFound:
            if bucket != BUCKET_FILES or not await read_packed_copy(self, sha256, dest, progress):
                raise  # (else a superseded version, stored compressed)

    async def signed_url(self, key: str, expires_in: int, bucket: str = BUCKET_FILES) -> str:
        response = await self.session.call(
            "signing a URL",
            lambda: self.session.client.storage.from_(bucket).create_signed_url(key, expires_in),
        )
        url = response.get("signedURL") or response.get("signedUrl")
        if not url:
            raise NotFound(f"the hub gave no signed URL for {key}")
        return str(url)

    # -- rows --------------------------------------------------------------

    async def record(self, entries: Sequence[ManifestEntry]) -> None:
        if not entries:
            return
        await self._register_devices({e.device for e in entries})
        await self.shared.write_metadata(metadata_rows_for(self.user_id, BUCKET_FILES, entries))
        rows = [manifest_row(self.user_id, e) for e in entries]
        await self._upsert("hubsync_manifest", rows, MANIFEST_CONFLICT, "recording the manifest")

    async def _register_devices(self, devices: set[str]) -> None:
        new = sorted(devices - self._devices_seen)
        if not new:
            return
        rows = [
            {
                "user_id": self.user_id,
                "device_id": d,
                "name": self.device_name,
                "last_seen": now_iso(),
            }
            for d in new
        ]
        await self._upsert("hubsync_devices", rows, DEVICES_CONFLICT, "registering the device")
        self._devices_seen.update(new)

    async def log_operations(self, operations: Sequence[Operation]) -> None:
        await self.shared.log_operations(operations)

    async def record_reads(self, reads: Sequence[Operation]) -> None:
        """Counts through ``public.hubsync_record_reads`` (an atomic increment), then
        the ``download`` rows."""
        paths = [op.key for op in reads if op.key]
        for batch in chunks(paths, ROW_BATCH):
            args = {"p_bucket": BUCKET_FILES, "p_paths": list(batch), "p_user": self.user_id}
            await self.session.call("recording reads", partial(self._count_reads, args))
        await self.log_operations(reads)

    def _count_reads(self, args: dict[str, Any]) -> Any:
        return self.session.client.rpc("hubsync_record_reads", args).execute()

    async def record_errors(self, rows: Sequence[dict[str, Any]]) -> None:
        mine = [{"user_id": self.user_id, **row} for row in rows]
        await self._upsert(
            "hubsync_errors", mine, ERRORS_CONFLICT, "recording error groups in the hub"
        )

    async def read_log(self, since: str, limit: int = 5000) -> list[dict[str, Any]]:
        """The ``download`` rows written after ``since`` (ISO time), oldest first."""

        def page() -> Any:
            return (
                self.session.client.table("file_operations")
                .select("file_id,bytes,started_at,metadata,created_at")
                .eq("user_id", self.user_id)
                .eq("operation_type", "download")
                .gt("created_at", since)
                .order("created_at")
                .limit(limit)
                .execute()
            )

        response = await self.session.call("reading the read log", page)
        return [row for row in response.data or [] if isinstance(row, dict)]

    async def list_errors(self) -> list[dict[str, Any]]:
        rows = await self._select_all(
            "listing error groups", "hubsync_errors", "*", "device_id,fingerprint"
        )
        for row in rows:
            row.pop("user_id", None)
        return sorted(rows, key=lambda r: str(r.get("last_seen") or ""), reverse=True)

    async def bucket_limits(self, bucket: str = BUCKET_FILES) -> BucketLimits:
        """The bucket's ``file_size_limit`` and ``allowed_mime_types``, asked again every
        few minutes; none when the hub does not let this user read its buckets."""
        now = time.monotonic()
        cached = self._limits.get(bucket)
        if cached is not None and now - cached[0] < LIMITS_TTL:
            return cached[1]
        try:
            info = await self.session.call(
                "reading the bucket's limits",
                lambda: self.session.client.storage.get_bucket(bucket),
            )
        except (NotFound, PermanentError):  # not readable by this user (no policy)
            limits = BucketLimits()
        else:
            size = getattr(info, "file_size_limit", None)
            types = getattr(info, "allowed_mime_types", None) or ()
            limits = BucketLimits(int(size) if size else None, tuple(str(t) for t in types))
        self._limits[bucket] = (now, limits)
        return limits

    async def _upsert(
        self, table: str, rows: Sequence[dict[str, Any]], conflict: str, what: str
    ) -> None:
        """Upsert in batches; rows repeating a conflict key are merged (last wins),
        since PostgreSQL refuses to update one row twice in one statement."""
        columns = conflict.split(",")
        unique = list({tuple(row[c] for c in columns): row for row in rows}.values())
        for batch in chunks(unique, ROW_BATCH):

            async def send(batch: Sequence[dict[str, Any]] = batch) -> None:
                builder = self.session.client.table(table)
                await builder.upsert(
                    list(batch), on_conflict=conflict, returning=ReturnMethod.minimal
                ).execute()

            await self.session.call(what, send)

    async def close(self) -> None:
        await self._metadata.close()
        await self.session.close()


def session_description(session: SupabaseSession) -> str:
    mode = " (service role)" if session.identity.service_role else ""
    return f"{session.settings.public_url}{mode}"


__all__ = ["MemoryResumeStore", "PermanentError", "SupabaseRemote"]
