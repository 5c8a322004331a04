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


def check_no_symlink(base: Path, relpath: str) -> Path:
    """``base/relpath``, provided no component below ``base`` is a symbolic link
    (nor ``..``): writing there then cannot land outside ``base``.

    A stand-in for the shared symlink-safe writer, kept in this one place."""
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PullError(f"refusing the path {relpath!r}")
    current = base
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise PullError(f"refusing to write through the symbolic link {current}")
    return current


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
    target = check_no_symlink(dest, entry.relpath)
    try:
        path, identical, kept_both = place(
            blob, target, entry.sha256, entry.mtime_ns, entry.version
        )
    except OSError as exc:
        raise PullError(f"cannot write {target}: {exc.strerror or exc}") from None
    return Pulled(entry.relpath, path, identical, kept_both)


async def folder_entries(
    remote: Remote, device: str, folder: str, at: str = ""
) -> list[ManifestEntry]:
    """The files of one device's folder as the hub records them (as they were
    at ``at``, an ISO time in UTC, when given)."""
    return await remote.find(FindQuery(device=device, folder=folder, at=at))


__all__ = ["PullError", "Pulled", "check_no_symlink", "folder_entries", "pull_entries"]
