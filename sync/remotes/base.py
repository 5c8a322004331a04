"""The small interface every hub implements (local folder, Supabase).

The engine only ever talks to a hub through :class:`Remote`. All calls are
async; they raise the kinds in :mod:`sync.errors` and nothing else, so the
engine can decide what to retry. Every method that writes is idempotent: a
repeated call after a crash does no harm (the order of truth is: blob, then
rows, then the journal).
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sync.devices import DeviceInfo
from sync.errors import SyncError
from sync.hashing import Hashed

if TYPE_CHECKING:
    from sync.find import FindQuery
    from sync.policy import BucketLimits

BUCKET_FILES = "user-files"
BUCKET_RESULTS = "results"
BUCKET_GENERATED = "generated-files"

ProgressFn = Callable[[int], None]
"""Called with the number of bytes moved since the previous call."""

BatchProgressFn = Callable[[int, int], None]
"""Called with (index of the upload in the batch, bytes moved since the previous call)."""


def guess_content_type(filename: str) -> str:
    # mimetypes looks only at the last suffix and at most one encoding suffix before
    # it (".tar.gz"), so names that share their last two suffixes share an answer.
    # Leading dots start no suffix there; a ":" may read as a URL scheme ("data:").
    _, dot, suffixes = filename.lstrip(".").partition(".")
    if not dot or ":" in filename:
        return _content_type(filename)
    return _content_type("x." + ".".join(suffixes.rsplit(".", 2)[-2:]))


@functools.lru_cache(maxsize=1024)
def _content_type(filename: str) -> str:
    kind, _ = mimetypes.guess_type(filename, strict=False)
    return kind or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One version of one mirrored file, as the hub records it.

    ``version`` grows by one for every change of (device, root_id, relpath);
    a deletion is a version too (``deleted=True``, sha256 of the last content),
    which is what makes deletions restorable.
    """

    device: str
    root_id: str
    root_path: str
    relpath: str
    sha256: str
    size: int
    mtime_ns: int
    version: int
    key: str
    deleted: bool = False
    content_type: str = "application/octet-stream"
    recorded_at: str = ""

    @property
    def filename(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Operation:
    """A row of ``file_operations``: upload/download/delete/process/generate."""

    operation: str
    status: str
    key: str | None = None
    sha256: str | None = None
    bytes: int = 0
    started_at: str = ""
    finished_at: str = ""
    duration_ms: int = 0
    error: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Remote(Protocol):
    """A hub: blobs addressed by SHA-256 plus metadata tables."""

    kind: str
    """"local" or "supabase"."""

    user_id: str
    """First segment of every key (auth uid on Supabase)."""

    device_name: str
    """The name recorded for this device in ``hubsync_devices``."""

    def describe(self) -> str:
        """Where the hub is, for status lines (a path or a URL, never a secret)."""
        ...

    async def ping(self) -> float:
        """Round-trip to the hub in seconds; raises a SyncError when unreachable."""
        ...

    async def find_blobs(
        self, hashes: Collection[str], bucket: str = BUCKET_FILES
    ) -> dict[str, str]:
        """Of ``hashes``, the ones the hub already holds, each with its key (one batch)."""
        ...

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
        """Store ``source`` under its content key and return the key.

        Raises FileChangedError when the bytes read do not hash to ``sha256``
        (the file changed since it was hashed); nothing is left behind then.
        """
        ...

    async def get_blob(
        self,
        key: str,
        sha256: str,
        dest: Path,
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> None:
        """Download ``key`` to ``dest`` (a temp path of the caller), verifying its hash."""
        ...

    async def record(self, entries: Sequence[ManifestEntry]) -> None:
        """Upsert manifest versions and file_metadata rows for them (one batch)."""
        ...

    async def log_operations(self, operations: Sequence[Operation]) -> None:
        """Append file_operations rows (one batch)."""
        ...

    async def history(self, device: str, root_id: str, relpath: str) -> list[ManifestEntry]:
        """Every recorded version of one path, oldest first."""
        ...

    async def devices(self) -> list[DeviceInfo]:
        """Every device of this user in the hub, with its folders (current files only)."""
        ...

    async def find(self, query: FindQuery) -> list[ManifestEntry]:
        """The current version of every path of any device that ``query`` matches,
        narrowed where the data is (not by reading the whole manifest)."""
        ...

    async def signed_url(self, key: str, expires_in: int, bucket: str = BUCKET_FILES) -> str:
        """A link to one blob (a file path on the local hub)."""
        ...

    async def close(self) -> None:
        """Release connections and file handles."""
        ...


@dataclass(frozen=True, slots=True)
class BlobUpload:
    """One file to store under its content key (see :meth:`Remote.put_blob`)."""

    source: Path
    sha256: str
    size: int
    filename: str
    content_type: str


@runtime_checkable
class BatchPut(Protocol):
    """A hub that stores many blobs in one call, cheaper than one call each.

    The local hub does: per-call overhead, not bytes, dominates thousands of
    small files there. The engine uses it when a hub has it and retries the
    transient failures one by one.
    """

    async def put_blobs(
        self,
        uploads: Sequence[BlobUpload],
        progress: BatchProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> list[str | SyncError]:
        """Store each upload as :meth:`Remote.put_blob` would; one key or error per upload."""
        ...


@dataclass(frozen=True, slots=True)
class Ingested:
    """A small file read once, hashed and stored by :meth:`Ingest.ingest`."""

    hashed: Hashed
    key: str
    stored: bool
    """False when the hub had the content already (nothing was written)."""


@runtime_checkable
class FolderManifest(Protocol):
    """A hub that lists the versions one device recorded for a folder (by its path): a
    folder added again takes its history back (see sync/reattach.py)."""

    async def folder_manifest(self, device: str, root_path: str) -> list[ManifestEntry]: ...


@runtime_checkable
class Ingest(Protocol):
    """A hub that can hash and store small files in one read (the local hub).

    Sending a file elsewhere needs its hash first (to ask whether the hub has
    it); a hub on a local disk can store the bytes while they are in memory
    and look the hash up afterwards, which saves reading and hashing them twice.
    """

    ingest_limit: int
    """Files below this size may be ingested; bigger ones take the hash-then-put path."""

    async def ingest(
        self,
        sources: Sequence[tuple[str | Path, str, str]],
        progress: BatchProgressFn | None = None,
    ) -> list[Ingested | SyncError]:
        """Store each (path, filename, content type); one result or error per source."""
        ...


class ResumeStore(Protocol):
    """Where resumable uploads keep their upload URL across restarts (the journal)."""

    def get_item(self, key: str) -> str | None: ...

    def set_item(self, key: str, value: str) -> None: ...

    def remove_item(self, key: str) -> None: ...


@runtime_checkable
class ReadLog(Protocol):
    """A hub that records reads of its files (both hubs do): each ``download``
    operation adds one to its object's ``file_metadata.access_count``, sets
    ``last_accessed`` and is kept as a ``file_operations`` row. That history is
    what predictive caching reads later."""

    async def record_reads(self, reads: Sequence[Operation]) -> None:
        """Count one read per operation (by its key) and log the operations (one batch)."""
        ...


@runtime_checkable
class LocalBlobs(Protocol):
    """A hub whose blobs are files on this machine (the local hub, on a disk, a NAS
    share or a drive): a read copies the blob straight from where it lies, hashing
    it on the way, instead of downloading it into the cache first."""

    def blob_file(self, key: str, bucket: str = BUCKET_FILES) -> Path:
        """Where the blob of ``key`` lies (not checked to exist); PermanentError for a
        key that is not one of this hub's."""
        ...

    def blob_path(self, key: str) -> str:
        """:meth:`blob_file` of a file blob as a string: a pull asks it once per file,
        where a ``Path`` object each would cost more than the rest of the lookup."""
        ...


@dataclass(frozen=True, slots=True)
class PartialBlob:
    """What is known about a half-downloaded blob kept across restarts."""

    key: str
    sha256: str
    etag: str
    """The validator the hub sent with the first bytes: a resumed range must match it."""
    size: int
    """The whole object's size, as the hub said."""


@runtime_checkable
class ResumableGet(Protocol):
    """A hub whose downloads continue where they stopped (HTTP Range on Supabase)."""

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
        """Download ``key`` into ``dest``, asking only for the bytes after those ``dest``
        holds when ``known`` says they are the start of this object; ``remember`` is
        called with what the hub says about the object before bytes are written. The
        whole file's hash is verified (IntegrityError, ``dest`` removed, when wrong);
        on any other failure ``dest`` keeps what arrived."""


@runtime_checkable
class ErrorMirror(Protocol):
    """A hub that keeps every device's failure groups (``hubsync_errors``), so that a
    device's issues are visible from any other."""

    async def record_errors(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert groups, one row each (see :func:`sync.issues.hub_error_row`)."""
        ...

    async def list_errors(self) -> list[dict[str, Any]]:
        """Every device's groups of this user, newest first."""
        ...


@runtime_checkable
class UploadLimits(Protocol):
    """A hub whose bucket has limits of its own (Supabase: ``file_size_limit``,
    ``allowed_mime_types``), checked before any byte is sent."""

    async def bucket_limits(self, bucket: str = BUCKET_FILES) -> BucketLimits:
        """The limits as the hub says; no limits when it does not say."""
        ...
