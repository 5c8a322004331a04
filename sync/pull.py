"""Bringing another device's folder (or this one's) from the hub onto this machine.

Every blob comes through the download cache (hash-checked before it is
admitted), and lands with :func:`sync.restore.place`, which never overwrites a
different local file. Paths that would go through a symbolic link are refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sync.cache import BlobCache
from sync.errors import PermanentError
from sync.find import FindQuery
from sync.remotes.base import ManifestEntry, Remote
from sync.restore import place


class PullError(PermanentError):
    pass


@dataclass(frozen=True, slots=True)
class Pulled:
    relpath: str
    path: Path
    identical: bool
    kept_both: bool


def _checked(relpath: str) -> str:
    """``relpath`` as a hub path may be written below a folder: no empty, ``.`` or
    ``..`` part (links on the way are refused by :func:`sync.restore.place`)."""
    if any(p in ("", ".", "..") for p in relpath.split("/")):
        raise PullError(f"refusing the path {relpath!r}")
    return relpath


async def pull_entries(
    remote: Remote,
    cache: BlobCache,
    entries: list[ManifestEntry],
    dest: Path,
    progress: Callable[[ManifestEntry], None] | None = None,
) -> list[Pulled]:
    """Each entry to ``dest/relpath``, through the cache; in order of the entries."""
    out: list[Pulled] = []
    for entry in entries:
        blob = await cache.fetch(remote, entry.key, entry.sha256)
        out.append(await asyncio.to_thread(_land, blob, dest, entry))
        if progress is not None:
            progress(entry)
    return out


def _land(blob: Path, dest: Path, entry: ManifestEntry) -> Pulled:
    if dest.is_symlink():
        raise PullError(f"refusing to write through the symbolic link {dest}")
    relpath = _checked(entry.relpath)
    try:
        path, identical, kept_both = place(
            blob, dest, relpath, entry.sha256, entry.mtime_ns, entry.version
        )
    except OSError as exc:
        raise PullError(f"cannot write {dest / relpath}: {exc.strerror or exc}") from None
    except PermanentError as exc:  # a symbolic link on the way (sync.safe_paths)
        raise PullError(str(exc)) from None
    return Pulled(entry.relpath, path, identical, kept_both)


async def folder_entries(
    remote: Remote, device: str, folder: str, at: str = ""
) -> list[ManifestEntry]:
    """The files of one device's folder as the hub records them (as they were
    at ``at``, an ISO time in UTC, when given)."""
    return await remote.find(FindQuery(device=device, folder=folder, at=at))


__all__ = ["PullError", "Pulled", "folder_entries", "pull_entries"]
