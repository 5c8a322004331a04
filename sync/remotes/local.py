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
written while the blobs of the next one are.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import itertools
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sync.batching import BatchRunner
from sync.devices import DeviceInfo, default_device_name, summarize
from sync.disk_space import disk_full
from sync.durable import make_durable
from sync.errors import (
    FileChangedError,
    IntegrityError,
    LocalFileError,
    PermanentError,
    SyncError,
    TransientError,
)
from sync.find import FindQuery
from sync.hashing import read_small, reusable_buffer
from sync.keys import is_sha256, object_key
from sync.remotes import local_history
from sync.remotes.base import (
    BUCKET_FILES,
    BUCKET_GENERATED,
    BUCKET_RESULTS,
    BatchProgressFn,
    BlobUpload,
    Ingested,
    ManifestEntry,
    Operation,
    ProgressFn,
)
from sync.sparse import ZEROS, data_extents, has_holes, write_at
from sync.temp_area import TempArea

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
CHUNK = 1024 * 1024
LOCAL_USER = "local"
BUCKETS = (BUCKET_FILES, BUCKET_RESULTS, BUCKET_GENERATED)
_O_BINARY = getattr(os, "O_BINARY", 0)
_PUT_BATCH = 32
_FIND_CACHE = 64
"""Answers of ``find`` kept (all dropped when full: they are cheap to make again)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_metadata (
    file_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, filename TEXT, file_size INTEGER,
    content_type TEXT, bucket_id TEXT NOT NULL, path TEXT, sha256_hash TEXT,
    tags TEXT NOT NULL DEFAULT '[]', access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS file_metadata_sha ON file_metadata(user_id, sha256_hash);
CREATE TABLE IF NOT EXISTS file_operations (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, file_id TEXT, operation_type TEXT NOT NULL,
    status TEXT NOT NULL, started_at TEXT, completed_at TEXT, duration_ms INTEGER,
    bytes INTEGER, error_message TEXT, metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hubsync_manifest (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, root_id TEXT NOT NULL,
    root_path TEXT NOT NULL, rel_path TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, storage_key TEXT NOT NULL, content_type TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, root_id, rel_path, version));
CREATE INDEX IF NOT EXISTS hubsync_manifest_sha ON hubsync_manifest(user_id, sha256);
CREATE TABLE IF NOT EXISTS hubsync_devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, name TEXT, last_seen TEXT,
    PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS hubsync_hub (id TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hubsync_errors (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL, operation TEXT NOT NULL, message TEXT NOT NULL, example TEXT,
    occurrences INTEGER NOT NULL DEFAULT 0, open_files INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT, last_seen TEXT, paths TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'open', resolved_at TEXT, diagnosis TEXT, diagnosed_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, fingerprint));
"""
_ERROR_COLUMNS = (
    "device_id", "fingerprint", "kind", "operation", "message", "example", "occurrences",
    "open_files", "first_seen", "last_seen", "paths", "state", "resolved_at", "diagnosis",
    "diagnosed_at",
)  # fmt: skip
HUB_DB = "hub.sqlite3"


class HubMissing(TransientError):
    """A hub that was in use is not where it was (an unplugged drive, an unmounted
    share): it is waited for, never silently replaced by a new, empty one."""


_ID_PROCESS_BITS = int.from_bytes(os.urandom(5)) >> 2  # 38 random bits per process
_id_counter = itertools.count()


def _new_id_bits() -> None:
    global _ID_PROCESS_BITS  # a forked child must not reuse its parent's
    _ID_PROCESS_BITS = int.from_bytes(os.urandom(5)) >> 2


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_bits)


def _operation_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: time-ordered, so new ``file_operations``
    rows append to the primary-key index instead of each landing on a random page
    (with uuid4 every commit rewrote most of the index). Within a process the low 24
    bits count up; 38 random bits keep processes apart."""
    now = time.time_ns()
    value = (
        (now // 1_000_000) << 80
        | 0x7 << 76
        | ((now // 1_000) % 1_000 * 4) << 64  # the microseconds, in 12 bits
        | 0b10 << 62
        | _ID_PROCESS_BITS << 24
        | next(_id_counter) & 0xFFFFFF
    )
    return f"{value:032x}"


def _entry_blobs(entries: Sequence[ManifestEntry]) -> list[tuple[str, str, str, int, str, str]]:
    """(key, bucket, filename, size, content type, sha256) of the blobs live entries use."""
    return [
        (e.key, BUCKET_FILES, e.key.rsplit("/", 1)[-1], e.size, e.content_type, e.sha256)
        for e in entries
        if not e.deleted
    ]


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


def _open_hub_db(path: Path) -> sqlite3.Connection:
    """The hub's database, its schema and id in place; closed again if that fails."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.executescript(_SCHEMA)
        local_history.add_columns(db)
        db.execute(  # one statement: two processes creating a hub agree on its id
            "INSERT INTO hubsync_hub(id, created_at) SELECT ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM hubsync_hub)",
            (uuid.uuid4().hex, _now_iso()),
        )
    except BaseException:
        db.close()
        raise
    return db


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _entry_of_row(r: Sequence[object]) -> ManifestEntry:
    """A ManifestEntry from (device_id, root_id, root_path, rel_path, sha256, size,
    mtime_ns, version, storage_key, deleted, content_type, recorded_at)."""
    return ManifestEntry(
        device=str(r[0]),
        root_id=str(r[1]),
        root_path=str(r[2]),
        relpath=str(r[3]),
        sha256=str(r[4]),
        size=int(r[5]),  # type: ignore[call-overload]
        mtime_ns=int(r[6]),  # type: ignore[call-overload]
        version=int(r[7]),  # type: ignore[call-overload]
        key=str(r[8]),
        deleted=bool(r[9]),
        content_type=str(r[10] or "application/octet-stream"),
        recorded_at=str(r[11]),
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _copy_verified(
    src: str | Path,
    dst: str | Path,
    sha256: str,
    size: int,
    progress: ProgressFn | None,
    src_kind: str,
) -> None:
    """Copy ``src`` to a new file ``dst`` while hashing; raise if the bytes are not ``sha256``."""
    try:
        fin = io.FileIO(src, "r")
    except FileNotFoundError:
        if src_kind == "blob":
            raise IntegrityError("blob missing from the hub") from None
        raise LocalFileError("cannot read: vanished before it could be read") from None
    except OSError as exc:
        raise LocalFileError(f"cannot read: {exc.strerror or exc}") from None
    try:
        with fin:
            fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
            try:
                digest, total = _pump(fin, fout, size, progress)
            finally:
                os.close(fout)
    except _ReadFailed as failed:
        _unlink_quiet(dst)
        why = failed.error.strerror or failed.error
        if src_kind == "blob":
            raise TransientError(f"cannot read from the hub: {why}") from None
        raise LocalFileError(f"cannot read: {why}") from None  # not the hub's fault
    except BaseException:
        _unlink_quiet(dst)
        raise
    if digest != sha256 or total != size:
        _unlink_quiet(dst)
        if src_kind == "blob":
            raise IntegrityError("blob in the hub does not match its SHA-256")
        raise FileChangedError("changed since it was hashed")


class _ReadFailed(Exception):
    """Reading the source failed (an I/O error), as opposed to writing the copy."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _read(fin: io.FileIO, size: int) -> bytes:
    try:
        return fin.read(size) or b""
    except OSError as exc:
        raise _ReadFailed(exc) from None


def _read_into(fin: io.FileIO, buf: bytearray) -> int:
    try:
        return fin.readinto(buf) or 0
    except OSError as exc:
        raise _ReadFailed(exc) from None


def _pump(fin: io.FileIO, fout: int, size: int, progress: ProgressFn | None) -> tuple[str, int]:
    """Move every byte of ``fin`` to ``fout``; returns (hex SHA-256, bytes moved)."""
    if size >= CHUNK and _sparse(fin):
        return _pump_sparse(fin.fileno(), fout, progress)
    if 0 <= size < CHUNK:
        # Most files: one read (one byte more than expected shows a file that grew).
        data = _read(fin, size + 1)
        _write_all(fout, data)
        if progress is not None and data:
            progress(len(data))
        return hashlib.sha256(data).hexdigest(), len(data)
    digest = hashlib.sha256()
    total = 0
    buf = reusable_buffer(CHUNK)
    view = memoryview(buf)
    while n := _read_into(fin, buf):
        chunk = view[:n]
        digest.update(chunk)
        _write_all(fout, chunk)
        total += n
        if progress is not None:
            progress(n)
    return digest.hexdigest(), total


def _sparse(fin: io.FileIO) -> bool:
    try:
        return has_holes(fin.fileno())
    except OSError as exc:
        raise _ReadFailed(exc) from None


def _pump_sparse(src: int, fout: int, progress: ProgressFn | None) -> tuple[str, int]:
    """:func:`_pump` for a file with holes: only its data ranges are written (at their
    offsets), so the copy keeps the holes; the hash covers every byte, holes as zeros."""
    digest = hashlib.sha256()
    pos = 0  # everything before pos is hashed (and written, or a hole)

    def zeros_to(offset: int) -> None:
        nonlocal pos
        hole = offset - pos
        while pos < offset:
            n = min(len(ZEROS), offset - pos)
            digest.update(memoryview(ZEROS)[:n])
            pos += n
        if progress is not None and hole > 0:
            progress(hole)  # the meter counts the file's bytes, holes too

    try:
        extents = list(data_extents(src))
        end = os.fstat(src).st_size
    except OSError as exc:
        raise _ReadFailed(exc) from None
    for start, stop in extents:
        zeros_to(start)
        while pos < stop:
            try:
                data = os.pread(src, min(CHUNK, stop - pos), pos)
            except OSError as exc:
                raise _ReadFailed(exc) from None
            if not data:  # shrank meanwhile: the size check tells
                os.ftruncate(fout, pos)
                return digest.hexdigest(), pos
            digest.update(data)
            write_at(fout, data, pos)
            pos += len(data)
            if progress is not None:
                progress(len(data))
    zeros_to(max(end, pos))
    os.ftruncate(fout, pos)
    return digest.hexdigest(), pos


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quiet(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _new_dir(path: str, levels: int = 3) -> bool:
    """Make the folder ``path`` and at most ``levels - 1`` missing parents (the user and
    ``sha[:2]`` folders of a blob); False when it was there already. A missing bucket
    folder means the hub went away (an unplugged drive): it is never recreated, since
    the real hub would then land nested inside the new folder when the drive returns."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        if levels <= 1:
            raise HubMissing(
                f"{os.path.dirname(path)} is missing (was the hub's drive unplugged?)"
            ) from None
        _new_dir(os.path.dirname(path), levels - 1)
        try:
            os.mkdir(path)
        except FileExistsError:
            return False
    return True


class LocalHub:
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
        create: bool = True,
    ) -> None:
        """``io_threads``: one is fastest for local disks (measured: 3,000 small files took
        127 µs each with one thread, 345 µs with four, which fight over the GIL); more
        may help a network share with high latency.

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
        self._unflushed: list[str] = []
        self._unflushed_lock = threading.Lock()
        self._new_blobs: list[tuple[str, str, str, int, str, str]] = []
        self._found: dict[FindQuery, tuple[tuple[int, int], list[ManifestEntry]]] = {}
        self._writes = 0
        self.find_cache_hits = 0
        """Answers of :meth:`find` served from its cache (the hub had not changed)."""

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction for a batch of rows: without it, sqlite3's autocommit mode
        commits each row of an ``executemany`` on its own (a WAL commit per row)."""
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # (a failed COMMIT leaves it open)
                    self._db.execute("ROLLBACK")
                raise

    def describe(self) -> str:
        return str(self.root)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._io.run(fn)  # type: ignore[return-value]

    async def _run_db(self, fn: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return fn()
            except sqlite3.Error as exc:  # locked by another writer, disk full, damaged...
                full = disk_full(exc, self.root, whose="hub")
                raise full or TransientError(f"the hub's database: {exc}") from None

        return await asyncio.get_running_loop().run_in_executor(self._db_pool, guarded)

    def _blob_dir(self, bucket: str, sha256: str) -> str:
        return f"{self._root_str}/{bucket}/{self.user_id}/{sha256[:2]}/{sha256}"

    def _existing_key(self, bucket: str, sha256: str) -> str | None:
        try:
            names = [n for n in os.listdir(self._blob_dir(bucket, sha256)) if not n.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not names:
            return None
        return f"{self.user_id}/{sha256[:2]}/{sha256}/{min(names)}"

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
        sha256 = upload.sha256
        blob_dir = self._blob_dir(bucket, sha256)
        key = object_key(self.user_id, sha256, upload.filename)
        final = f"{blob_dir}/{key.rsplit('/', 1)[1]}"
        tmp = self._temps.new_path()
        try:
            # Creating the blob's folder first tells whether it is new, for the price
            # of the mkdir a new blob needs anyway; only an existing one is listed.
            if not _new_dir(blob_dir):
                existing = self._existing_key(bucket, sha256)
                if existing is not None:
                    return existing, False
            fill(tmp)
            os.replace(tmp, final)
        except FileNotFoundError as exc:
            _unlink_quiet(tmp)
            if not os.path.isdir(self._temps.folder) or self.went_away():
                raise HubMissing(f"the local hub {self.root} went away") from None
            raise TransientError(f"cannot write to the hub: {exc.strerror or exc}") from None
        except OSError as exc:
            _unlink_quiet(tmp)
            raise self._write_failed(exc) from None
        with self._unflushed_lock:
            self._unflushed.append(final)
            self._new_blobs.append(
                (key, bucket, upload.filename, upload.size, upload.content_type, sha256)
            )
        return key, True

    def _ingest_one(
        self, source: Path, filename: str, content_type: str, progress: ProgressFn | None
    ) -> Ingested:
        data, hashed = read_small(source, self.ingest_limit)

        def fill(tmp: str) -> None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)

        upload = BlobUpload(source, hashed.sha256, hashed.size, filename, content_type)
        key, stored = self._place(BUCKET_FILES, upload, fill)
        if progress is not None and data:
            progress(len(data))
        return Ingested(hashed, key, stored)

    def _path_of(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if bucket not in BUCKETS or any(p in ("", ".", "..") for p in parts):
            raise PermanentError(f"not a hub key: {key!r}")
        return self.root.joinpath(bucket, *parts)

    def blob_file(self, key: str, bucket: str = BUCKET_FILES) -> Path:
        """Where the blob of ``key`` lies (see ``LocalBlobs``)."""
        return self._path_of(bucket, key)

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
                key = self._existing_key(bucket, sha)
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
        sources: Sequence[tuple[Path, str, str]],
        progress: BatchProgressFn | None = None,
    ) -> list[Ingested | SyncError]:
        """Read, hash and store small files, each read once (see :class:`Ingest`)."""

        def ingest_one(source: tuple[Path, str, str], moved: ProgressFn | None) -> Ingested:
            return self._ingest_one(*source, moved)

        return await self._in_batches(ingest_one, list(enumerate(sources)), progress)

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
                and local_history.read_packed_copy(self, sha256, dest, progress)
            ):
                return  # a superseded version, stored compressed
            size = src.stat().st_size if src.exists() else -1
            _copy_verified(src, dest, sha256, size, progress, "blob")

        await self._run(read)

    def _flush_blobs(self) -> None:
        with self._unflushed_lock:
            pending, self._unflushed = self._unflushed, []
        try:
            make_durable(self.root, pending)
        except OSError as exc:
            with self._unflushed_lock:
                self._unflushed[:0] = pending
            raise self._write_failed(exc) from None

    def _write_failed(self, exc: OSError) -> TransientError:
        """A blob write that failed: the hub's disk is full (wait for space), or a
        transient trouble of the hub's folder (retried)."""
        full = disk_full(exc, self.root, whose="hub")
        return full or TransientError(f"cannot write to the hub: {exc.strerror or exc}")

    async def record(self, entries: Sequence[ManifestEntry]) -> None:
        def write() -> None:
            self._flush_blobs()
            with self._unflushed_lock:
                new_blobs = list(self._new_blobs)
            now = _now_iso()
            # A blob's row also comes from the entries that point at it: a blob stored
            # by a process killed before it recorded it still gets its row.
            blob_rows = {row[0]: row for row in (*new_blobs, *_entry_blobs(entries))}.values()
            with self._transaction():
                self._db.executemany(
                    """INSERT INTO file_metadata(file_id, user_id, filename, file_size,
                         content_type, bucket_id, path, sha256_hash, created_at, updated_at)
                       VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(file_id) DO NOTHING""",
                    (
                        (key, self.user_id, name, size, ctype, bucket, key, sha, now, now)
                        for key, bucket, name, size, ctype, sha in blob_rows
                    ),
                )
                self._db.executemany(
                    """INSERT INTO hubsync_manifest(user_id, device_id, root_id, root_path,
                         rel_path, sha256, size, mtime_ns, version, deleted, storage_key,
                         content_type, recorded_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT DO UPDATE SET sha256=excluded.sha256, size=excluded.size,
                         mtime_ns=excluded.mtime_ns, deleted=excluded.deleted,
                         storage_key=excluded.storage_key""",
                    (
                        (
                            self.user_id,
                            e.device,
                            e.root_id,
                            e.root_path,
                            e.relpath,
                            e.sha256,
                            e.size,
                            e.mtime_ns,
                            e.version,
                            int(e.deleted),
                            e.key,
                            e.content_type,
                            e.recorded_at or now,
                        )
                        for e in entries
                    ),
                )
                devices = {e.device for e in entries}
                self._db.executemany(
                    """INSERT INTO hubsync_devices(user_id, device_id, name, last_seen)
                       VALUES(?, ?, ?, ?)
                       ON CONFLICT DO UPDATE SET last_seen=excluded.last_seen,
                         name=excluded.name""",
                    ((self.user_id, d, self.device_name, now) for d in devices),
                )
            self._writes += 1
            with self._unflushed_lock:  # written: only now they leave the list
                del self._new_blobs[: len(new_blobs)]

        await self._run_db(write)

    def _insert_operations(self, operations: Sequence[Operation], now: str) -> None:
        self._db.executemany(
            """INSERT INTO file_operations(id, user_id, file_id, operation_type, status,
                 started_at, completed_at, duration_ms, bytes, error_message, metadata,
                 created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                (
                    _operation_id(),
                    self.user_id,
                    op.key,
                    op.operation,
                    op.status,
                    op.started_at or None,
                    op.finished_at or None,
                    op.duration_ms,
                    op.bytes,
                    op.error,
                    json.dumps(op.metadata),
                    now,
                )
                for op in operations
            ),
        )

    async def log_operations(self, operations: Sequence[Operation]) -> None:
        def write() -> None:
            with self._transaction():
                self._insert_operations(operations, _now_iso())

        await self._run_db(write)

    async def record_reads(self, reads: Sequence[Operation]) -> None:
        def write() -> None:
            now = _now_iso()
            with self._transaction():
                self._db.executemany(
                    "UPDATE file_metadata SET access_count = access_count + 1, last_accessed = ?"
                    " WHERE file_id = ? AND user_id = ?",
                    ((now, op.key, self.user_id) for op in reads if op.key),
                )
                self._insert_operations(reads, now)

        await self._run_db(write)

    async def read_log(self, since: str, limit: int = 5000) -> list[dict[str, Any]]:
        """The ``download`` rows written after ``since`` (ISO time), oldest first."""

        def read() -> list[dict[str, Any]]:
            cur = self._db.execute(
                "SELECT file_id, bytes, started_at, metadata, created_at FROM file_operations"
                " WHERE user_id=? AND operation_type='download' AND created_at > ?"
                " ORDER BY created_at LIMIT ?",
                (self.user_id, since, limit),
            )
            return [
                {
                    "file_id": r[0],
                    "bytes": r[1],
                    "started_at": r[2],
                    "metadata": r[3],
                    "created_at": r[4],
                }
                for r in cur
            ]

        return await self._run_db(read)

    async def record_errors(self, rows: Sequence[dict[str, Any]]) -> None:
        columns = ", ".join(_ERROR_COLUMNS)
        marks = ", ".join("?" * len(_ERROR_COLUMNS))
        updates = ", ".join(f"{c}=excluded.{c}" for c in _ERROR_COLUMNS[2:])

        def write() -> None:
            now = _now_iso()
            with self._transaction():
                self._db.executemany(
                    f"""INSERT INTO hubsync_errors(user_id, {columns}, updated_at)
                        VALUES(?, {marks}, ?) ON CONFLICT(user_id, device_id, fingerprint)
                        DO UPDATE SET {updates}, updated_at=excluded.updated_at""",
                    (
                        (
                            self.user_id,
                            *(json.dumps(r[c]) if c == "paths" else r[c] for c in _ERROR_COLUMNS),
                            now,
                        )
                        for r in rows
                    ),
                )

        await self._run_db(write)

    async def list_errors(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._db_lock:
                found = self._db.execute(
                    f"SELECT {', '.join(_ERROR_COLUMNS)} FROM hubsync_errors WHERE user_id=?"
                    " ORDER BY last_seen DESC",
                    (self.user_id,),
                ).fetchall()
            rows = [dict(zip(_ERROR_COLUMNS, r, strict=True)) for r in found]
            for row in rows:
                row["paths"] = json.loads(row["paths"])
            return rows

        return await self._run_db(read)

    async def history(self, device: str, root_id: str, relpath: str) -> list[ManifestEntry]:
        def read() -> list[ManifestEntry]:
            with self._db_lock:
                rows = self._db.execute(
                    """SELECT device_id, root_id, root_path, rel_path, sha256, size, mtime_ns,
                         version, storage_key, deleted, content_type, recorded_at
                       FROM hubsync_manifest WHERE user_id=? AND device_id=? AND root_id=?
                         AND rel_path=? ORDER BY version""",
                    (self.user_id, device, root_id, relpath),
                ).fetchall()
            return [_entry_of_row(r) for r in rows]

        return await self._run_db(read)

    async def devices(self) -> list[DeviceInfo]:
        def read() -> list[DeviceInfo]:
            with self._db_lock:
                devices = self._db.execute(
                    "SELECT device_id, name, last_seen FROM hubsync_devices WHERE user_id=?",
                    (self.user_id,),
                ).fetchall()
                current = self._db.execute(
                    """SELECT m.device_id, m.root_id, m.root_path, m.size
                       FROM hubsync_manifest m JOIN (
                         SELECT device_id, root_id, rel_path, MAX(version) AS version
                         FROM hubsync_manifest WHERE user_id=?
                         GROUP BY device_id, root_id, rel_path) last
                       USING (device_id, root_id, rel_path, version)
                       WHERE m.user_id=? AND m.deleted=0""",
                    (self.user_id, self.user_id),
                ).fetchall()
            return summarize(devices, current)

        return await self._run_db(read)

    async def find(self, query: FindQuery) -> list[ManifestEntry]:
        where = ["user_id=?"]
        args: list[object] = [self.user_id]
        paths: tuple[tuple[str, str | None], ...] = (
            ("device_id=?", query.device or None),
            ("root_path=?", query.folder or None),
            ("rel_path LIKE ?", query.like()),
            ("rel_path LIKE ?", f"%{query.suffix}" if query.suffix else None),
            ("recorded_at<=?", query.at or None),
        )
        for clause, text in paths:
            if text is not None:
                where.append(clause)
                args.append(text)
        last = f"""SELECT device_id, root_id, rel_path, MAX(version) AS version
                   FROM hubsync_manifest WHERE {" AND ".join(where)}
                   GROUP BY device_id, root_id, rel_path"""
        outer = ["m.user_id=?", "m.deleted=?"]
        outer_args: list[object] = [self.user_id, int(query.deleted)]
        filters: tuple[tuple[str, object], ...] = (
            ("m.sha256=?", query.sha256.lower() or None),
            ("m.size>?", query.larger),
            ("m.size<?", query.smaller),
            ("m.mtime_ns>=?", query.since_ns),
            ("m.mtime_ns<=?", query.until_ns),
        )
        for clause, value in filters:
            if value is not None:
                outer.append(clause)
                outer_args.append(value)
        sql = f"""SELECT m.device_id, m.root_id, m.root_path, m.rel_path, m.sha256, m.size,
                    m.mtime_ns, m.version, m.storage_key, m.deleted, m.content_type,
                    m.recorded_at
                  FROM hubsync_manifest m JOIN ({last}) last
                    USING (device_id, root_id, rel_path, version)
                  WHERE {" AND ".join(outer)}
                  ORDER BY m.device_id, m.root_path, m.rel_path"""

        def read() -> list[ManifestEntry]:
            with self._db_lock:
                # data_version moves when another connection commits; own writes
                # bump _writes: either one means the hub changed since the answer.
                stamp = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
                cached = self._found.get(query)
                if cached is not None and cached[0] == stamp:
                    self.find_cache_hits += 1
                    return list(cached[1])
                rows = self._db.execute(sql, (*args, *outer_args)).fetchall()
            found = [e for e in map(_entry_of_row, rows) if query.matches(e)]
            if len(self._found) >= _FIND_CACHE:
                self._found.clear()
            self._found[query] = (stamp, found)
            return list(found)

        return await self._run_db(read)

    async def folder_manifest(self, device: str, root_path: str) -> list[ManifestEntry]:
        """Every version this device recorded for the folder at ``root_path``, any root id."""

        def read() -> list[ManifestEntry]:
            with self._db_lock:
                rows = self._db.execute(
                    """SELECT device_id, root_id, root_path, rel_path, sha256, size, mtime_ns,
                         version, storage_key, deleted, content_type, recorded_at
                       FROM hubsync_manifest WHERE user_id=? AND device_id=? AND root_path=?
                       ORDER BY recorded_at""",
                    (self.user_id, device, root_path),
                ).fetchall()
            return [
                ManifestEntry(
                    device=r[0],
                    root_id=r[1],
                    root_path=r[2],
                    relpath=r[3],
                    sha256=r[4],
                    size=r[5],
                    mtime_ns=r[6],
                    version=r[7],
                    key=r[8],
                    deleted=bool(r[9]),
                    content_type=r[10] or "application/octet-stream",
                    recorded_at=r[11],
                )
                for r in rows
            ]

        return await self._run_db(read)

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
            self._db_pool.shutdown(wait=True)
            self._temps.close()
        finally:
            with self._db_lock:
                self._db.close()
