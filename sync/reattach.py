"""A folder this device mirrored before, added again, takes its history back.

After ``remove`` then ``add``, or a journal moved aside and made anew (the device
id is kept beside it), the hub still holds every version of the folder's files.
The new root takes the old root's id and its versions, so ``history`` lists them,
``restore --version`` finds them and the next versions follow on from them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sync.journal import HubVersion, Journal, Root
from sync.remotes.base import FolderManifest, Remote


async def reattach(journal: Journal, remote: Remote, root: Root) -> tuple[Root, int]:
    """``root`` with its history from the hub, and how many files it has there (0: none)."""
    if not isinstance(remote, FolderManifest) or journal.count_states(root.id):
        return root, 0
    entries = await remote.folder_manifest(journal.device_id, str(root.path))
    if not entries:
        return root, 0
    # The folder mirrored last under this path (remove then add may have happened twice).
    old_id = entries[-1].root_id
    if old_id == root.id:
        return root, 0
    rows = [
        HubVersion(
            e.relpath,
            e.version,
            e.sha256,
            e.size,
            e.mtime_ns,
            e.deleted,
            e.key,
            _epoch(e.recorded_at),
        )
        for e in entries
        if e.root_id == old_id
    ]
    files = Counter(r.relpath for r in rows)
    return journal.reattach(root, old_id, root.hub, rows), len(files)


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0
