"""Putting one blob in the hub's folders, with no state of the hub object.

What a blob write needs is only where the hub is, whose blobs they are and how
temp files are named, so worker processes (:mod:`sync.workers`) can write blobs
as the hub's own threads do, the same way: bytes into a temp file of the hub's
temp area, then a rename into ``<bucket>/<user>/<sha[:2]>/<sha>/<name>``. Making
them durable and recording them stays with the hub (see ``LocalHub._place``).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class IngestedFile:
    """A small file read once, hashed and put in place (see :func:`ingest_file`)."""

    hashed: Hashed
    placed: Placed


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

    def fill(tmp: str) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    return IngestedFile(hashed, writer.place(bucket, hashed.sha256, filename, fill))


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
