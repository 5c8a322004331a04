"""What the journal hands out and takes in: typed rows, never bare tuples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sync.journal.states import FileState


@dataclass(frozen=True, slots=True)
class Root:
    id: str
    path: Path
    hub: str
    paused: bool
    degraded: str | None


@dataclass(frozen=True, slots=True)
class FileRow:
    relpath: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    state: FileState
    version: int
    remote_key: str | None
    error_kind: str | None
    last_error: str | None
    attempts: int
    next_retry: float | None

    @property
    def recorded(self) -> bool:
        """Whether a version of it may be in the hub (a deletion then leaves a tombstone)."""
        return self.sha256 is not None


FILE_COLUMNS = (
    "relpath, size, mtime_ns, inode, sha256, state, version, remote_key,"
    " error_kind, last_error, attempts, next_retry"
)
"""The columns of :class:`FileRow`, in its order."""


_STATES: dict[str, FileState] = {s.value: s for s in FileState}
"""State by its stored word: a dict look-up, where ``FileState(word)`` costs a call of
the enum's metaclass (measured: a tenth of reading 10k rows)."""


def file_row(r: Sequence[Any]) -> FileRow:
    """A :class:`FileRow` from the columns :data:`FILE_COLUMNS` names."""
    rel, size, mtime_ns, inode, sha, state, version, key, kind, error, attempts, retry = r
    return FileRow(
        rel,
        size,
        mtime_ns,
        inode,
        sha,
        _STATES[state],
        version,
        key,
        kind,
        error,
        attempts,
        retry,
    )


class FileStat(NamedTuple):
    """A new or changed file, waiting to be hashed."""

    relpath: str
    size: int
    mtime_ns: int
    inode: int


class SyncedFile(NamedTuple):
    """A file whose version the hub recorded."""

    relpath: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str
    version: int
    key: str


class Blob(NamedTuple):
    """A blob a hub has."""

    sha256: str
    size: int
    key: str


class Recording(NamedTuple):
    """A file about to be recorded in the hub as ``version``."""

    relpath: str
    sha256: str
    version: int
    key: str


class Tombstone(NamedTuple):
    """A deletion the hub recorded as ``version``."""

    relpath: str
    version: int
    sha256: str
    size: int
    mtime_ns: int
    key: str


class DiskStat(NamedTuple):
    """A version written back in place: the file as it is now on disk."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: int
    sha256: str
    size: int
    mtime_ns: int
    deleted: bool
    remote_key: str
    recorded_at: float


class HubVersion(NamedTuple):
    """A version the hub keeps of a file (taken back when a folder is reattached)."""

    relpath: str
    version: int
    sha256: str
    size: int
    mtime_ns: int
    deleted: bool
    key: str
    recorded_at: float


class Logged(NamedTuple):
    """One row of the local operations log."""

    kind: str
    root_id: str | None
    relpath: str | None
    sha256: str | None
    size: int
    detail: str | None


class Skipped(NamedTuple):
    """An item the scan skips by design (a link, a FIFO...), and why."""

    root_id: str
    relpath: str
    kind: str
    reason: str
    seen_at: float


@dataclass(frozen=True, slots=True)
class Failure:
    """One failure of one path (see :data:`sync.journal.issues.WHOLE_FOLDER`)."""

    relpath: str
    kind: str
    message: str
    operation: str


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    id: int
    fingerprint: str
    kind: str
    operation: str
    message: str
    example: str
    count: int
    first_seen: float
    last_seen: float
    paths: list[str]
    state: str
    resolved_at: float | None
    diagnosis: str | None
    diagnosed_at: float | None
    open_files: int
