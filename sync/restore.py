"""Bringing back any recorded version of a file, or a deleted folder.

Every read goes through the blob cache. A restore never silently overwrites a
different local file: when the target exists with other content, the restored
copy is written next to it as ``name (restored vN).ext`` and both are kept.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sync.cache import BlobCache
from sync.errors import PermanentError, SyncError
from sync.hashing import hash_file
from sync.journal import Journal, Root, VersionRow
from sync.remotes.base import Remote


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


def _same_content(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and hash_file(path).sha256 == sha256
    except SyncError:
        return False


def _candidates(target: Path, version: int) -> Iterator[Path]:
    yield target
    for n in range(1, 1000):
        extra = "" if n == 1 else f" {n}"
        yield target.with_name(f"{target.stem} (restored v{version}{extra}){target.suffix}")
    raise RestoreError(f"too many restored copies of {target.name}")


def place(
    blob: Path, target: Path, sha256: str, mtime_ns: int, version: int
) -> tuple[Path, bool, bool]:
    """Put a cached blob at ``target`` without clobbering; returns (path, identical, kept_both).

    An existing file with the same content (at the target or an earlier
    restored copy) is reused instead of writing yet another copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for candidate in _candidates(target, version):
        if not candidate.exists():
            break
        if _same_content(candidate, sha256):
            return candidate, True, candidate != target
    temp = target.with_name(f".hubsync-restore-{uuid.uuid4().hex}")
    try:
        shutil.copyfile(blob, temp)
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.utime(temp, ns=(mtime_ns, mtime_ns))
        for final in _candidates(target, version):
            try:
                _put_new(temp, final)
                break
            except FileExistsError:
                continue
    finally:
        temp.unlink(missing_ok=True)
    return final, False, final != target


def _put_new(temp: Path, final: Path) -> None:
    """Give ``temp``'s bytes the name ``final``; FileExistsError if that name is taken."""
    try:
        os.link(temp, final)  # atomic, and never replaces an existing file
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (exFAT, FAT, some network shares): claim the name, then copy.
        with open(final, "xb") as out, open(temp, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.utime(final, ns=(os.stat(temp).st_mtime_ns,) * 2)


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
    target = (to_dir or root.path) / relpath
    try:
        path, identical, kept_both = await asyncio.to_thread(
            place, blob, target, chosen.sha256, chosen.mtime_ns, chosen.version
        )
    except OSError as exc:
        raise RestoreError(f"cannot write {target}: {exc.strerror or exc}") from None
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
