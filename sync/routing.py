"""Where a read is served from: the cache, the folder's hub, or an offline copy.

The cache comes first (by content, whatever hub filled it); then the hub the folder
is mirrored to. When that hub cannot be reached (a transient failure: offline,
timeouts, 5xx), another hub that holds the same content (by SHA-256) serves it and
the read is marked as an offline copy. When nothing has it, one clear message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.cache import BlobCache
from sync.errors import PermanentError, SyncError, TransientError
from sync.remotes.base import ManifestEntry, ProgressFn, Remote

CACHE = "cache"


class NowhereToRead(PermanentError):
    """Neither the cache, the folder's hub nor any other hub could give the content."""


@dataclass(frozen=True, slots=True)
class Served:
    path: Path
    """The verified blob: in the cache, or where a LocalBlobs hub keeps it (sync.pull)."""
    source: str
    """``cache`` or the kind of the hub that sent the bytes (``local``, ``supabase``)."""
    offline: bool
    """The folder's hub could not be reached: another hub's copy of the content."""
    remote: Remote | None
    """The hub the read is counted on (the one that served, or the folder's for a cache
    hit); None when the folder's hub is not connected and the cache served."""


async def fetch_routed(
    cache: BlobCache,
    remote: Remote | None,
    entry: ManifestEntry,
    fallbacks: Sequence[Remote] = (),
    progress: ProgressFn | None = None,
    *,
    offline: tuple[str, str] = ("", ""),
) -> Served:
    """The verified content of ``entry``, from the first place that has it.

    ``remote`` is None when the folder's hub could not even be connected to;
    ``offline`` then says which hub that is and why (for the message)."""
    hit = cache.lookup(entry.sha256)
    if hit is not None:
        return Served(hit, CACHE, remote is None, remote)
    kind, why = offline
    if remote is not None:
        kind = remote.kind
        try:
            path = await cache.download(
                remote, entry.key, entry.sha256, progress=progress, size=entry.size
            )
            return Served(path, remote.kind, False, remote)
        except TransientError as exc:
            why = exc.message
    for other in fallbacks:
        if other is remote:
            continue
        try:
            keys = await other.find_blobs([entry.sha256])
            if entry.sha256 in keys:
                path = await cache.download(
                    other, keys[entry.sha256], entry.sha256, progress=progress, size=entry.size
                )
                return Served(path, other.kind, True, other)
        except SyncError:
            continue
    raise NowhereToRead(
        f"{entry.relpath}: the {kind} hub cannot be reached ({why}) and no other"
        " hub or cache on this machine has its content"
    )


__all__ = ["CACHE", "NowhereToRead", "Served", "fetch_routed"]
