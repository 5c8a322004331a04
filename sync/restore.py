"""Bringing back any recorded version of a file, or a deleted folder.

Every read goes through the blob cache. A restore never silently overwrites a
different local file: when the target exists with other content, the restored
copy is written next to it as ``name (restored vN).ext`` and both are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import itertools
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath

from sync import safe_paths
from sync.cache import BlobCache
from sync.errors import IntegrityError, PermanentError, SyncError
from sync.hashing import hash_file
from sync.journal import DiskStat, Journal, Root, SyncedFile, VersionRow
from sync.journal.states import GONE
from sync.remotes.base import ManifestEntry, Remote, guess_content_type
from sync.sparse import copy_file


class RestoreError(PermanentError):
    pass


@dataclass(frozen=True)
class Restored:
    relpath: str
    version: int
    path: Path
    identical: bool
    """The target already held exactly this content: nothing was written."""
    kept_both: bool
    """The target held other content: the restored copy was written beside it."""


def pick_version(
    versions: list[VersionRow], *, version: int | None = None, at: datetime | None = None
) -> VersionRow:
    """The version asked for, or else the newest one that has content."""
    if not versions:
        raise RestoreError("no recorded versions")
    if version is not None:
        for row in versions:
            if row.version == version:
                if row.deleted:
                    raise RestoreError(
                        f"version {version} is the deletion; restore version {version - 1}"
                    )
                return row
        raise RestoreError(
            f"no version {version} (there are {versions[0].version}..{versions[-1].version})"
        )
    candidates = [v for v in versions if not v.deleted]
    if at is not None:
        stamp = at.timestamp()
        if at.microsecond == 0:
            # Times are shown to the second: the second named includes all of it.
            candidates = [v for v in candidates if v.recorded_at < stamp + 1]
        else:
            candidates = [v for v in candidates if v.recorded_at <= stamp]
        if not candidates:
            raise RestoreError(f"no version recorded at or before {at.isoformat()}")
    if not candidates:
        raise RestoreError("no version with content")
    return candidates[-1]


def _same_content(dir_fd: int, folder: Path, name: str, sha256: str) -> bool:
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            return False
        return hash_file(folder / name).sha256 == sha256
    except (OSError, SyncError):
        return False


def _candidates(name: str, version: int) -> Iterator[str]:
    yield name
    stem, suffix = PurePath(name).stem, PurePath(name).suffix
    for n in range(1, 1000):
        extra = "" if n == 1 else f" {n}"
        yield f"{stem} (restored v{version}{extra}){suffix}"
    raise RestoreError(f"too many restored copies of {name}")


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def place(
    blob: Path,
    base: Path,
    relpath: str,
    sha256: str,
    mtime_ns: int,
    version: int,
    *,
    durable: bool = True,
) -> tuple[Path, bool, bool]:
    """Put a cached blob at ``base/relpath`` without clobbering; returns (path, identical,
    kept_both).

    An existing file with the same content (at the target or an earlier restored copy)
    is reused instead of writing yet another copy. Nothing below ``base`` may be a
    symbolic link (:mod:`sync.safe_paths`): every write is relative to a folder fd.
    ``durable`` False leaves the fsync to the caller (see :func:`place_in`).
    """
    *folders, name = PurePosixPath(relpath).parts
    base.mkdir(parents=True, exist_ok=True)  # the caller checked a root is there
    dir_fd = safe_paths.open_dir(base, folders)
    try:
        return place_in(
            dir_fd,
            base.joinpath(*folders),
            name,
            Placing(blob, sha256, mtime_ns, version),
            durable=durable,
        )
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class Placing:
    """One file to put in a folder: where its bytes are and what they must be."""

    blob: str | Path
    """(A pull from a local hub names its blobs by string: no path object per file.)"""
    sha256: str
    mtime_ns: int
    version: int


class BlobMismatch(IntegrityError):
    """A blob read where it lies (``verify``) does not hold the content asked for."""


def already_there(dir_fd: int, folder: Path, name: str, sha256: str, version: int) -> Path | None:
    """The file in the folder at ``dir_fd`` that :func:`place_in` would reuse for this
    content (``name``, or an earlier restored copy of it), if there is one."""
    for candidate in _candidates(name, version):
        if not _exists(dir_fd, candidate):
            return None
        if _same_content(dir_fd, folder, candidate, sha256):
            return folder / candidate
    return None


def place_in(
    dir_fd: int,
    folder: Path,
    name: str,
    item: Placing,
    *,
    durable: bool = True,
    verify: bool = False,
    moved: Callable[[int], None] | None = None,
    absent: bool = False,
    size: int = -1,
) -> tuple[Path, bool, bool]:
    """:func:`place` in the folder open at ``dir_fd`` (``folder``, for the paths
    returned): many files of one folder share one walk of the path.

    ``verify``: ``item.blob`` is not known to hold ``item.sha256`` (a hub's blob read
    where it lies): it is hashed while it is copied, and the copy never gets a name
    unless it matches (:class:`BlobMismatch`; ``FileNotFoundError`` for a missing
    blob). ``durable`` False skips the fsync of each file: the caller makes the batch
    durable at once (:func:`sync.durable.make_durable`). ``moved`` hears of the
    bytes copied. ``absent``: the caller listed the folder and ``name`` was not in it,
    so no file is looked at before the copy (one that appears meanwhile is still never
    overwritten: a name is only ever given with ``link``). ``size``: the blob's size,
    when known (lets :func:`sync.sparse.copy_file` skip an ``fstat``)."""
    if not absent:
        there = already_there(dir_fd, folder, name, item.sha256, item.version)
        if there is not None:
            return there, True, there.name != name
    src = os.open(item.blob, os.O_RDONLY | os.O_CLOEXEC)
    temp, out = "", -1
    try:
        temp, out = _new_temp(dir_fd)
        digest = hashlib.sha256() if verify else None
        copy_file(src, out, digest, moved, size)  # a sparse blob stays sparse
        if digest is not None and digest.hexdigest() != item.sha256:
            raise BlobMismatch(f"{item.blob} does not match its SHA-256")
        if durable:
            os.fsync(out)
        os.utime(out, ns=(item.mtime_ns, item.mtime_ns))
        for final in _candidates(name, item.version):
            try:
                _put_new(dir_fd, temp, out, final, item.mtime_ns, durable)
                break
            except FileExistsError:
                if _same_content(dir_fd, folder, final, item.sha256):
                    return folder / final, True, final != name
    finally:
        os.close(src)
        if out >= 0:
            os.close(out)  # an unnamed (O_TMPFILE) copy that got no name is gone with it
        if temp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)
    return folder / final, False, final != name


_TEMP_PREFIX = f".hubsync-restore-{uuid.uuid4().hex[:12]}-"
_temp_ids = itertools.count()
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_unnamed = [bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")]
"""Whether unnamed temp files (``O_TMPFILE``, named later through ``/proc/self/fd``)
work here; turned off for the process at the first file system that refuses them."""


def _new_temp(dir_fd: int) -> tuple[str, int]:
    """A new temp file in the folder at ``dir_fd``: (its name, an fd open for writing).

    Where the kernel can, the file has no name at all (``O_TMPFILE``): nothing to
    unlink afterwards, and nothing left behind by a crash. Else names are unique to
    this process by a counter (no random bytes per file); the name is then ""."""
    if _unnamed[0]:
        try:
            return "", os.open(".", _O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise
            _unnamed[0] = False  # e.g. FAT, exFAT, some network shares
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = f"{_TEMP_PREFIX}{next(_temp_ids)}"
        try:
            return name, os.open(name, flags, 0o666, dir_fd=dir_fd)
        except FileExistsError:
            continue  # a forked copy of this process took it


def _put_new(dir_fd: int, temp: str, fd: int, final: str, mtime_ns: int, durable: bool) -> None:
    """Give the temp file (``temp``, or the unnamed one open at ``fd`` when ``temp`` is
    "") the name ``final``; FileExistsError if that name is taken."""
    if not temp:  # atomic, and never replaces an existing file
        os.link(f"/proc/self/fd/{fd}", final, dst_dir_fd=dir_fd, follow_symlinks=True)
        return
    try:
        os.link(temp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (exFAT, FAT, some network shares): claim the name, then copy.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        src_fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with (
            os.fdopen(src_fd, "rb") as src,
            os.fdopen(os.open(final, flags, 0o666, dir_fd=dir_fd), "wb") as out,
        ):
            copy_file(src.fileno(), out.fileno())
            out.flush()
            if durable:
                os.fsync(out.fileno())
            os.utime(out.fileno(), ns=(mtime_ns, mtime_ns))


async def restore_file(
    journal: Journal,
    remote: Remote,
    cache: BlobCache,
    root: Root,
    relpath: str,
    *,
    version: int | None = None,
    at: datetime | None = None,
    to_dir: Path | None = None,
) -> Restored:
    chosen = pick_version(journal.versions(root.id, relpath), version=version, at=at)
    if to_dir is None and not root.path.is_dir():  # never rebuild an unplugged drive's path
        raise RestoreError(f"{root.path} is not there (is its drive plugged in?)")
    blob = await cache.fetch(remote, chosen.remote_key, chosen.sha256)
    base = to_dir or root.path
    target = base / relpath
    try:
        path, identical, kept_both = await asyncio.to_thread(
            place, blob, base, relpath, chosen.sha256, chosen.mtime_ns, chosen.version
        )
    except OSError as exc:
        raise RestoreError(f"cannot write {target}: {exc.strerror or exc}") from None
    except PermanentError as exc:  # e.g. a symbolic link on the way (sync.safe_paths)
        raise RestoreError(str(exc)) from None
    if to_dir is None and not kept_both:
        await _known_again(journal, remote, root, relpath, chosen, path)
    with journal.transaction():
        journal.log(
            "restore",
            root_id=root.id,
            relpath=relpath,
            sha256=chosen.sha256,
            size=chosen.size,
            detail=f"v{chosen.version} -> {path}",
        )
    return Restored(relpath, chosen.version, path, identical, kept_both)


async def _known_again(
    journal: Journal, remote: Remote, root: Root, relpath: str, chosen: VersionRow, path: Path
) -> None:
    """The file restored in place is content the hub has: the journal records it as
    synced, so no pass uploads it again. Restoring the version the file is at (a held
    deletion brought back) adds no version; after a tombstone, the hub records the
    content as the next version (the file is there again), still without an upload."""
    row = journal.file(root.id, relpath)
    if row is None:
        return
    st = os.stat(path)
    stat = DiskStat(st.st_size, st.st_mtime_ns, st.st_ino)
    if row.state not in GONE and row.sha256 == chosen.sha256:
        with journal.transaction():
            journal.mark_restored(root.id, relpath, stat, row.version)
        return
    version = row.version + 1
    await remote.record(
        [
            ManifestEntry(
                device=journal.device_id,
                root_id=root.id,
                root_path=str(root.path),
                relpath=relpath,
                sha256=chosen.sha256,
                size=chosen.size,
                mtime_ns=st.st_mtime_ns,
                version=version,
                key=chosen.remote_key,
                content_type=guess_content_type(path.name),
            )
        ]
    )
    with journal.transaction():
        journal.mark_synced(
            root.id,
            [SyncedFile(relpath, *stat, chosen.sha256, version, chosen.remote_key)],
            time.time(),
        )


async def restore_path(
    journal: Journal,
    remote: Remote,
    cache: BlobCache,
    root: Root,
    relpath: str,
    *,
    version: int | None = None,
    at: datetime | None = None,
    to_dir: Path | None = None,
) -> list[Restored]:
    """Restore one file, or every deleted file below a folder."""
    if journal.versions(root.id, relpath):
        return [
            await restore_file(
                journal, remote, cache, root, relpath, version=version, at=at, to_dir=to_dir
            )
        ]
    deleted = journal.deleted_under(root.id, relpath)
    if not deleted:
        raise RestoreError(f"nothing recorded at {relpath!r}")
    if version is not None:
        raise RestoreError(
            "--version picks a version of one file; a folder is restored as it was --at a time"
        )
    return [
        await restore_file(journal, remote, cache, root, rel, at=at, to_dir=to_dir)
        for rel in deleted
    ]
