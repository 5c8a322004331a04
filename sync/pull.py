"""Bringing another device's folder (or this one's) from the hub onto this machine.

Every blob comes through the download cache (hash-checked before it is
admitted), and lands with :func:`sync.restore.place`, which never overwrites a
different local file. Paths that would go through a symbolic link are refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sync.cache import BlobCache
from sync.errors import PermanentError
from sync.find import FindQuery
from sync.reads import ReadRecorder
from sync.remotes.base import ManifestEntry, ProgressFn, Remote
from sync.restore import place
from sync.routing import NowhereToRead, Served, fetch_routed


class PullError(PermanentError):
    pass


@dataclass(frozen=True, slots=True)
class Pulled:
    relpath: str
    path: Path
    identical: bool
    kept_both: bool
    source: str
    """``cache``, or the kind of hub the bytes came from (sync.routing)."""
    offline: bool
    """Served by another hub than the folder's, which could not be reached."""


def _checked(relpath: str) -> str:
    """``relpath`` as a hub path may be written below a folder: no empty, ``.`` or
    ``..`` part (links on the way are refused by :func:`sync.restore.place`)."""
    if any(p in ("", ".", "..") for p in relpath.split("/")):
        raise PullError(f"refusing the path {relpath!r}")
    return relpath


async def pull_entries(
    remote: Remote | None,
    cache: BlobCache,
    entries: list[ManifestEntry],
    dest: Path,
    progress: Callable[[ManifestEntry], None] | None = None,
    *,
    fallbacks: Sequence[Remote] = (),
    moved: ProgressFn | None = None,
    flat: bool = False,
    in_flight: int = 8,
    offline: tuple[str, str] = ("", ""),
) -> list[Pulled]:
    """Each entry to ``dest/relpath`` (``dest/filename`` when ``flat``), through the
    cache and :func:`sync.routing.fetch_routed`; results in the order of the entries,
    ``in_flight`` files at a time. ``progress`` is called per file, ``moved`` with the
    bytes downloaded; ``remote`` None with ``offline`` = (hub, why): the folder's hub
    is not connected (sync.routing). Every read is recorded on its hub (sync.reads). The first
    failure stops the rest and is raised once the files under way are done."""
    out: list[Pulled | None] = [None] * len(entries)
    reads = ReadRecorder()
    todo = iter(enumerate(entries))
    failed: list[BaseException] = []

    async def worker() -> None:
        for index, entry in todo:
            if failed:
                return
            started = time.time()
            try:
                served = await fetch_routed(cache, remote, entry, fallbacks, moved, offline=offline)
                name = entry.filename if flat else entry.relpath
                out[index] = await asyncio.to_thread(_land, served.path, dest, entry, name, served)
            except NowhereToRead as exc:
                failed.append(PullError(exc.message))
                return
            except Exception as exc:
                failed.append(exc)
                return
            reads.add(served, entry, started)
            if progress is not None:
                progress(entry)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, len(entries))))))
    finally:
        await reads.flush()
    if failed:
        raise failed[0]
    return [p for p in out if p is not None]


def _land(blob: Path, dest: Path, entry: ManifestEntry, name: str, served: Served) -> Pulled:
    if dest.is_symlink():
        raise PullError(f"refusing to write through the symbolic link {dest}")
    relpath = _checked(name)
    try:
        path, identical, kept_both = place(
            blob, dest, relpath, entry.sha256, entry.mtime_ns, entry.version
        )
    except OSError as exc:
        raise PullError(f"cannot write {dest / relpath}: {exc.strerror or exc}") from None
    except PermanentError as exc:  # a symbolic link on the way (sync.safe_paths)
        raise PullError(str(exc)) from None
    return Pulled(entry.relpath, path, identical, kept_both, served.source, served.offline)


async def folder_entries(
    remote: Remote, device: str, folder: str, at: str = ""
) -> list[ManifestEntry]:
    """The files of one device's folder as the hub records them (as they were
    at ``at``, an ISO time in UTC, when given)."""
    return await remote.find(FindQuery(device=device, folder=folder, at=at))


async def file_version(
    remote: Remote, device: str, root_id: str, relpath: str, at: str = ""
) -> ManifestEntry:
    """The current version of one file of a device's folder (the one current at
    ``at``, an ISO time, when given); PullError when there is none with content."""
    versions = await remote.history(device, root_id, relpath)
    if at:
        when = datetime.fromisoformat(at)
        versions = [v for v in versions if _recorded(v) <= when]
    if not versions:
        raise PullError(f"the hub has no version of {relpath}" + (f" at {at}" if at else ""))
    newest = versions[-1]
    if newest.deleted:
        raise PullError(
            f"{relpath} was deleted (version {newest.version}); --at an earlier time gets it"
        )
    return newest


def _recorded(entry: ManifestEntry) -> datetime:
    when = datetime.fromisoformat(entry.recorded_at.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


__all__ = ["PullError", "Pulled", "file_version", "folder_entries", "pull_entries"]
