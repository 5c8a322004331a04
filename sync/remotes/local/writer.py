"""Putting one blob in the hub's folders, with no state of the hub object.

What a blob write needs is only where the hub is, whose blobs they are and how
temp files are named, so worker processes (:mod:`sync.workers`) can write blobs
as the hub's own threads do, the same way: bytes into a temp file of the hub's
temp area, then a rename into ``<bucket>/<user>/<sha[:2]>/<sha>/<name>``. Making
them durable and recording them stays with the hub (see ``LocalHub._place``).
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.disk_space import disk_full
from sync.errors import SyncError, TransientError
from sync.hashing import Hashed, read_small
from sync.keys import object_key
from sync.remotes.local.copying import _O_BINARY, _new_dir, _unlink_quiet, _write_all
from sync.remotes.local.schema import HUB_DB, HubMissing, _file_identity

_temp_ids = itertools.count()


@dataclass(frozen=True)
class Placed:
    """A blob in place: its key, whether this write stored it (False: the hub had
    it), and its file when stored (to be made durable before a row points at it)."""

    key: str
    stored: bool
    final: str | None

    def __reduce__(self) -> tuple[type[Placed], tuple[str, bool, str | None]]:
        # Thousands cross from the worker processes: a plain constructor call
        # unpickles several times faster than a frozen dataclass's generic path.
        return Placed, (self.key, self.stored, self.final)


@dataclass(frozen=True)
class IngestedFile:
    """A small file read once, hashed and put in place (see :func:`ingest_file`)."""

    hashed: Hashed
    placed: Placed

    def __reduce__(self) -> tuple[type[IngestedFile], tuple[Hashed, Placed]]:
        return IngestedFile, (self.hashed, self.placed)


@dataclass(frozen=True)
class BlobWriter:
    root: str
    """The hub's folder."""
    user_id: str
    temp_prefix: str
    """Temp files are ``{temp_prefix}{pid}-{n}.part``: the hub's temp area clears them."""
    hub_db: tuple[int, int] | None
    """The identity of the hub's database when it was opened (see :meth:`went_away`)."""

    def blob_dir(self, bucket: str, sha256: str) -> str:
        return f"{self.root}/{bucket}/{self.user_id}/{sha256[:2]}/{sha256}"

    def existing_key(self, bucket: str, sha256: str) -> str | None:
        try:
            names = [n for n in os.listdir(self.blob_dir(bucket, sha256)) if not n.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not names:
            return None
        return f"{self.user_id}/{sha256[:2]}/{sha256}/{min(names)}"

    def went_away(self) -> bool:
        """Whether the hub's database is no longer the one that was opened (an
        unplugged or remounted drive): the hub can then never be reached this way."""
        return _file_identity(Path(self.root, HUB_DB)) != self.hub_db

    def place(self, bucket: str, sha256: str, filename: str, fill: Callable[[str], None]) -> Placed:
        """The blob ``sha256`` in place, ``fill`` writing its bytes to a temp file
        when the hub does not have it yet."""
        blob_dir = self.blob_dir(bucket, sha256)
        key = object_key(self.user_id, sha256, filename)
        final = f"{blob_dir}/{key.rsplit('/', 1)[1]}"
        tmp = f"{self.temp_prefix}{os.getpid()}-{next(_temp_ids)}.part"
        try:
            # Creating the blob's folder first tells whether it is new, for the price
            # of the mkdir a new blob needs anyway; only an existing one is listed.
            if not _new_dir(blob_dir):
                existing = self.existing_key(bucket, sha256)
                if existing is not None:
                    return Placed(existing, False, None)
            fill(tmp)
            os.replace(tmp, final)
        except FileNotFoundError as exc:
            _unlink_quiet(tmp)
            if not os.path.isdir(os.path.dirname(tmp)) or self.went_away():
                raise HubMissing(f"the local hub {self.root} went away") from None
            raise TransientError(f"cannot write to the hub: {exc.strerror or exc}") from None
        except OSError as exc:
            _unlink_quiet(tmp)
            raise write_failed(exc, self.root) from None
        return Placed(key, True, final)

    def place_bytes(self, bucket: str, sha256: str, filename: str, data: bytes) -> Placed:
        """The blob ``sha256`` of ``data`` in place. Where the kernel can, its file is
        written unnamed in the blob's new folder and named when complete (``O_TMPFILE``,
        then ``linkat``): no temp name, no rename between folders (measured: a quarter
        less kernel time per small file), and a crash leaves nothing behind."""
        if not _unnamed[0]:
            return self.place(bucket, sha256, filename, functools.partial(_write_new, data))
        blob_dir = self.blob_dir(bucket, sha256)
        key = object_key(self.user_id, sha256, filename)
        name = key.rsplit("/", 1)[1]
        try:
            if not _new_dir(blob_dir):
                existing = self.existing_key(bucket, sha256)
                if existing is not None:
                    return Placed(existing, False, None)
            if not _write_unnamed(blob_dir, name, data):
                return self.place(bucket, sha256, filename, functools.partial(_write_new, data))
        except FileExistsError:
            # A writer beside this one (another worker) named the same blob first.
            return Placed(key, False, None)
        except FileNotFoundError as exc:
            if self.went_away():
                raise HubMissing(f"the local hub {self.root} went away") from None
            raise TransientError(f"cannot write to the hub: {exc.strerror or exc}") from None
        except OSError as exc:
            raise write_failed(exc, self.root) from None
        return Placed(key, True, f"{blob_dir}/{name}")


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_unnamed = [bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")]
"""Whether unnamed files can be made here; cleared on the first file system that
refuses them (a network share, FAT), which then gets named temp files."""


def _write_unnamed(folder: str, name: str, data: bytes) -> bool:
    """``data`` as ``folder/name``, written unnamed and then linked; False (and
    nothing written) when the file system cannot make unnamed files."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fd = os.open(".", _O_TMPFILE | os.O_WRONLY, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            _unnamed[0] = False
            return False
        try:
            _write_all(fd, data)
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
        finally:
            os.close(fd)  # unnamed, the file is gone with it
    finally:
        os.close(dir_fd)
    return True


def _write_new(data: bytes, path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def write_failed(exc: OSError, root: str | Path) -> TransientError:
    """A blob write that failed: the hub's disk is full (wait for space), or a
    transient trouble of the hub's folder (retried)."""
    full = disk_full(exc, root, whose="hub")
    return full or TransientError(f"cannot write to the hub: {exc.strerror or exc}")


def ingest_file(
    writer: BlobWriter,
    bucket: str,
    source: str | Path,
    filename: str,
    limit: int,
    read: Callable[[Path, int], tuple[bytes, Hashed]] = read_small,
) -> IngestedFile:
    """Read a file smaller than ``limit`` once (with ``read``), hash it and put it in place."""
    data, hashed = read(Path(source), limit)
    return IngestedFile(hashed, writer.place_bytes(bucket, hashed.sha256, filename, data))


Source = tuple[str, str, str]
"""(path, filename, content type) of a file to ingest."""


def ingest_part(
    writer: BlobWriter, bucket: str, limit: int, sources: Sequence[Source]
) -> list[IngestedFile | SyncError]:
    """Each source ingested, or the SyncError it raised (a job of the hub's workers)."""
    out: list[IngestedFile | SyncError] = []
    for source, filename, _ in sources:
        try:
            out.append(ingest_file(writer, bucket, source, filename, limit))
        except SyncError as exc:
            out.append(exc)
    return out
