"""The embedded default hub: a folder with the Supabase layout plus a SQLite file.

Blobs live at ``<hub>/<bucket>/<user>/<sha[:2]>/<sha>/<ascii_safe_name>``, the
same keys the Supabase remote uses, and ``hub.sqlite3`` holds the same tables
(``file_metadata``, ``file_operations``, ``hubsync_manifest``,
``hubsync_devices``). It is a real target — a NAS or an external drive works.

Writes go to a temp file while the bytes are hashed, so a file that changed
since it was hashed is caught here and never stored under a wrong hash; then
the temp file is renamed into place. Small files (under 1 MiB) are instead
read once, hashed and written from memory (:meth:`LocalHub.ingest`), which
saves reading and hashing them twice. Blobs are made durable in one batch right
before the rows that point at them are committed (see :mod:`sync.durable`).
Blob I/O and the SQLite file have a thread each, so rows of one batch are
written while the blobs of the next one are; a big batch of small files goes to
worker processes instead (:mod:`sync.workers`), which the interpreter lock of this
process does not slow down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sync.batching import BatchRunner
from sync.devices import default_device_name
from sync.errors import (
    PermanentError,
    SyncError,
    TransientError,
)
from sync.find import FindQuery
from sync.hashing import read_small
from sync.keys import is_sha256
from sync.remotes.base import (
    BUCKET_FILES,
    BUCKET_GENERATED,
    BUCKET_RESULTS,
    BatchProgressFn,
    BlobUpload,
    Ingested,
    ManifestEntry,
    ProgressFn,
)
from sync.remotes.local.copying import CHUNK, _copy_verified
from sync.remotes.local.history import read_packed_copy
from sync.remotes.local.reads import HubReads
from sync.remotes.local.rows import HubRows
from sync.remotes.local.schema import (
    HUB_DB,
    LOCAL_USER,
    HubMissing,
    _file_identity,
    _open_hub_db,
)
from sync.remotes.local.writer import (
    BlobWriter,
    IngestedFile,
    Placed,
    Source,
    ingest_file,
    ingest_part,
)
from sync.temp_area import TempArea
from sync.workers import WorkerProcesses

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
BUCKETS = (BUCKET_FILES, BUCKET_RESULTS, BUCKET_GENERATED)
_PUT_BATCH = 32
IN_PROCESSES_FROM = 256
"""Small files ingested at once from which worker processes do it (see ``ingest``)."""


def _call(fn: Callable[[], T]) -> T:
    return fn()


async def _in_own_thread(fn: Callable[[], None], name: str) -> None:
    """``fn()`` in a thread of its own, which is gone when this returns (unless
    cancelled: then it finishes on its own)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, error)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    await done
    thread.join()


class LocalHub(HubReads, HubRows):
    """A hub in a local (or mounted) folder."""

    kind = "local"
    parallel_uploads = 256
    ingest_limit = CHUNK
    """Files below 1 MiB are read once, hashed and stored in one go (see ``Ingest``)."""
    """Calls in flight the engine may make: they are batched onto ``io_threads`` threads."""

    def __init__(
        self,
        root: Path,
        *,
        user_id: str = LOCAL_USER,
        io_threads: int = 1,
        ingest_processes: int = 2,
        create: bool = True,
    ) -> None:
        """``io_threads``: one is fastest for local disks (measured: 3,000 small files took
        127 µs each with one thread, 345 µs with four, which fight over the GIL); more
        may help a network share with high latency.

        ``ingest_processes``: worker processes for big batches of small files
        (:mod:`sync.workers`); 0 keeps every write in ``io_threads``.

        ``create``: make a new hub when there is none at ``root`` (in an existing
        folder); without it a missing hub raises :class:`HubMissing`.
        """
        self.root = root
        self.user_id = user_id
        self.device_name = default_device_name()
        self.created = not (root / HUB_DB).is_file()
        """Whether this opening made a new hub."""
        if self.created and not create:
            raise HubMissing(
                f"the local hub {root} is missing (is its drive plugged in?); "
                "HubSync waits for it to come back"
            )
        if self.created and not root.parent.is_dir():  # never build a drive's mount path
            raise HubMissing(f"{root.parent} does not exist (is its drive plugged in?)")
        for bucket in BUCKETS:
            (root / bucket).mkdir(parents=True, exist_ok=True)
        # Temp files left by a killed writer are removed (never served); those of
        # another process writing to the same hub are left alone.
        self._temps = TempArea(root / ".tmp")
        try:
            self._db = _open_hub_db(root / HUB_DB)
        except BaseException:
            self._temps.close()
            raise
        self.hub_id: str = self._db.execute("SELECT id FROM hubsync_hub").fetchone()[0]
        """This hub's identity: a copy of the hub folder keeps it, a new hub gets its own."""
        self._db_file = _file_identity(root / HUB_DB)
        self._db_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(io_threads, thread_name_prefix="hubsync-localhub")
        # Rows get their own thread: recording one batch must not wait behind the
        # blob writes of the next (the engine overlaps them).
        self._db_pool = ThreadPoolExecutor(1, thread_name_prefix="hubsync-localhub-db")
        self._io: BatchRunner[Callable[[], object], object] = BatchRunner(
            _call, self._pool, lanes=io_threads
        )
        self._root_str = os.fspath(root)
        self._writer = BlobWriter(self._root_str, user_id, self._temps.prefix, self._db_file)
        self._processes = (
            WorkerProcesses(ingest_processes, name="hubsync-ingest")
            if ingest_processes > 0
            else None
        )
        self._unflushed: list[str] = []
        self._unflushed_lock = threading.Lock()
        self._new_blobs: list[tuple[str, str, str, int, str, str]] = []
        self._found: dict[FindQuery, tuple[tuple[int, int], list[ManifestEntry]]] = {}
        self._writes = 0
        self.find_cache_hits = 0
        """Answers of :meth:`find` served from its cache (the hub had not changed)."""

    def describe(self) -> str:
        return str(self.root)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._io.run(fn)  # type: ignore[return-value]

    def _store(self, bucket: str, upload: BlobUpload, progress: ProgressFn | None) -> str:
        """Put one blob in place (runs in an I/O thread); returns its key."""

        def fill(tmp: str) -> None:
            _copy_verified(upload.source, tmp, upload.sha256, upload.size, progress, "local")

        key, _ = self._place(bucket, upload, fill)
        return key

    def _place(
        self, bucket: str, upload: BlobUpload, fill: Callable[[str], None]
    ) -> tuple[str, bool]:
        """(key, stored): the blob's key, and whether ``fill`` had to write it."""
        placed = self._writer.place(bucket, upload.sha256, upload.filename, fill)
        if placed.final is not None:
            self._stored(bucket, upload.filename, upload.content_type, upload.size, placed)
        return placed.key, placed.stored

    def _stored(self, bucket: str, filename: str, ctype: str, size: int, placed: Placed) -> None:
        """A blob this hub wrote: durable before the next rows, then a row of its own."""
        assert placed.final is not None
        sha256 = placed.key.split("/", 3)[2]
        with self._unflushed_lock:
            self._unflushed.append(placed.final)
            self._new_blobs.append((placed.key, bucket, filename, size, ctype, sha256))

    def _ingest_one(
        self, source: str | Path, filename: str, content_type: str, progress: ProgressFn | None
    ) -> Ingested:
        done = ingest_file(
            self._writer, BUCKET_FILES, source, filename, self.ingest_limit, read_small
        )
        if done.placed.final is not None:
            self._stored(BUCKET_FILES, filename, content_type, done.hashed.size, done.placed)
        if progress is not None and done.hashed.size:
            progress(done.hashed.size)
        return Ingested(done.hashed, done.placed.key, done.placed.stored)

    def _path_of(self, bucket: str, key: str) -> Path:
        return Path(self._checked_path(bucket, key))

    def _checked_path(self, bucket: str, key: str) -> str:
        if bucket not in BUCKETS or any(p in ("", ".", "..") for p in key.split("/")):
            raise PermanentError(f"not a hub key: {key!r}")
        return f"{self._root_str}/{bucket}/{key}"

    def blob_file(self, key: str, bucket: str = BUCKET_FILES) -> Path:
        """Where the blob of ``key`` lies (see ``LocalBlobs``)."""
        return self._path_of(bucket, key)

    def blob_path(self, key: str) -> str:
        """:meth:`blob_file` as a string (see ``LocalBlobs``)."""
        return self._checked_path(BUCKET_FILES, key)

    def went_away(self) -> bool:
        """Whether the hub database open here is no longer the one at the hub's folder
        (its drive was unplugged, or remounted): this object can then never reach it."""
        return _file_identity(self.root / HUB_DB) != self._db_file

    # -- Remote -----------------------------------------------------------------------

    async def ping(self) -> float:
        start = time.perf_counter()

        def probe() -> None:
            if not self.root.is_dir():
                raise TransientError(f"hub folder {self.root} is not reachable")
            if self.went_away():
                raise HubMissing(f"the local hub {self.root} went away (was its drive unplugged?)")
            with self._db_lock:
                self._db.execute("SELECT 1").fetchone()

        await self._run(probe)
        return time.perf_counter() - start

    async def find_blobs(
        self, hashes: Collection[str], bucket: str = BUCKET_FILES
    ) -> dict[str, str]:
        def lookup() -> dict[str, str]:
            found = {}
            for sha in hashes:
                key = self._writer.existing_key(bucket, sha)
                if key is not None:
                    found[sha] = key
            return found

        return await self._run(lookup)

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
        if not is_sha256(sha256):
            raise PermanentError("not a SHA-256")
        upload = BlobUpload(source, sha256, size, filename, content_type)
        return await self._run(lambda: self._store(bucket, upload, progress))

    async def put_blobs(
        self,
        uploads: Sequence[BlobUpload],
        progress: BatchProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> list[str | SyncError]:
        """Many blobs in a few trips to the I/O threads (see :class:`BatchPut`)."""
        results: list[str | SyncError] = [PermanentError("not a SHA-256")] * len(uploads)
        valid = [(i, u) for i, u in enumerate(uploads) if is_sha256(u.sha256)]

        def store(upload: BlobUpload, moved: ProgressFn | None) -> str:
            return self._store(bucket, upload, moved)

        for (index, _), outcome in zip(
            valid, await self._in_batches(store, valid, progress), strict=True
        ):
            results[index] = outcome
        return results

    async def ingest(
        self,
        sources: Sequence[tuple[str | Path, str, str]],
        progress: BatchProgressFn | None = None,
    ) -> list[Ingested | SyncError]:
        """Read, hash and store small files, each read once (see :class:`Ingest`)."""
        if self._processes is not None and len(sources) >= IN_PROCESSES_FROM:
            return await self._ingest_in_processes(self._processes, sources, progress)

        def ingest_one(source: tuple[str | Path, str, str], moved: ProgressFn | None) -> Ingested:
            return self._ingest_one(*source, moved)

        return await self._in_batches(ingest_one, list(enumerate(sources)), progress)

    async def _ingest_in_processes(
        self,
        processes: WorkerProcesses,
        sources: Sequence[tuple[str | Path, str, str]],
        progress: BatchProgressFn | None,
    ) -> list[Ingested | SyncError]:
        def placed(
            start: int, part: Sequence[Source], out: Sequence[IngestedFile | SyncError]
        ) -> None:
            for index, ((_, filename, ctype), outcome) in enumerate(
                zip(part, out, strict=True), start
            ):
                if isinstance(outcome, IngestedFile):
                    if outcome.placed.final is not None:
                        self._stored(
                            BUCKET_FILES, filename, ctype, outcome.hashed.size, outcome.placed
                        )
                    if progress is not None and outcome.hashed.size:
                        progress(index, outcome.hashed.size)

        named = [(os.fspath(path), name, ctype) for path, name, ctype in sources]
        outcomes = await processes.map_parts(
            ingest_part, (self._writer, BUCKET_FILES, self.ingest_limit), named, placed
        )
        return [
            Ingested(o.hashed, o.placed.key, o.placed.stored) if isinstance(o, IngestedFile) else o
            for o in outcomes
        ]

    async def _in_batches(
        self,
        one: Callable[[A, ProgressFn | None], R],
        items: list[tuple[int, A]],
        progress: BatchProgressFn | None,
    ) -> list[R | SyncError]:
        """``one`` on each (batch index, item), a slice per trip to the I/O threads;
        each result or SyncError in order, progress reported by batch index."""

        def run(part: list[tuple[int, A]]) -> list[R | SyncError]:
            out: list[R | SyncError] = []
            for index, item in part:
                moved = None if progress is None else functools.partial(progress, index)
                try:
                    out.append(one(item, moved))
                except SyncError as exc:
                    out.append(exc)
            return out

        loop = asyncio.get_running_loop()
        parts = [items[at : at + _PUT_BATCH] for at in range(0, len(items), _PUT_BATCH)]
        done = await asyncio.gather(*(loop.run_in_executor(self._pool, run, p) for p in parts))
        return [result for part in done for result in part]

    async def get_blob(
        self,
        key: str,
        sha256: str,
        dest: Path,
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> None:
        src = self._path_of(bucket, key)

        def read() -> None:
            if (
                bucket == BUCKET_FILES
                and not src.exists()
                and read_packed_copy(self, sha256, dest, progress)
            ):
                return  # a superseded version, stored compressed
            size = src.stat().st_size if src.exists() else -1
            _copy_verified(src, dest, sha256, size, progress, "blob")

        await self._run(read)

    async def signed_url(self, key: str, expires_in: int, bucket: str = BUCKET_FILES) -> str:
        path = self._path_of(bucket, key)
        if not path.exists():
            raise PermanentError("no such file in the hub")
        return path.as_uri()

    async def close(self) -> None:
        """Make the last blobs durable and let go of everything, whatever fails on the way.

        The blocking part runs in a thread: a hub on a hung share must not stall
        the caller's event loop."""
        try:
            await self._run(self._flush_blobs)
        finally:
            await self._io.aclose()
            await _in_own_thread(self._release, "hubsync-localhub-close")

    def discard(self) -> None:
        """Let go of a hub that was never used (nothing to flush); blocks briefly."""
        self._release()

    def _release(self) -> None:
        try:
            self._pool.shutdown(wait=True)
            if self._processes is not None:
                self._processes.close()
            self._db_pool.shutdown(wait=True)
            self._temps.close()
        finally:
            with self._db_lock:
                self._db.close()
