"""Temp files of one writer in a folder other writers may share (a hub on a NAS).

Each writer names its temp files ``<owner>-<n>.part`` and holds an exclusive
``flock`` on ``<owner>-lock`` while it is open; the kernel drops the lock when
the process ends, however it ends. A writer starting up removes the temp files
of owners whose lock it can take (they are gone, so are their half-written
files) and leaves alone those of owners still writing. Where locks are not
supported (some network file systems, Windows), only temp files nobody has
touched for a day are removed.

A network mount whose locks are only local (NFS with ``nolock``, CIFS with
``nobrl``) cannot tell a writer on another machine from a dead one: its temp
files may be removed mid-write. That upload then fails and is retried; no blob
is ever stored half-written, since a temp file only becomes a blob by rename.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

ABANDONED_AFTER = 24 * 3600.0
"""Without locks: a temp file untouched this long (seconds) is taken as abandoned."""


class TempArea:
    """This writer's temp files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._owner = uuid.uuid4().hex[:12]
        self._prefix = f"{os.fspath(folder)}/{self._owner}-"
        self._ids = itertools.count()
        self._lock_fd = _hold_lock(folder, self._owner)
        with contextlib.suppress(OSError):  # best effort: it never stops a hub opening
            remove_abandoned(folder, keep=self._owner)

    @property
    def prefix(self) -> str:
        """What this writer's temp file names start with (its worker processes name
        theirs with it too: they are cleared with the writer's own)."""
        return self._prefix

    def new_path(self) -> str:
        """A fresh temp file name (str: the hot path of blob writes)."""
        return f"{self._prefix}{next(self._ids)}.part"

    def close(self) -> None:
        """Remove what is left of ours and let go of the lock."""
        for path in self.folder.glob(f"{self._owner}-*"):
            with contextlib.suppress(OSError):
                path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _hold_lock(folder: Path, owner: str) -> int | None:
    """Lock a new file, then give it the lock file's name: others never see it unlocked."""
    if fcntl is None:
        return None
    fresh = folder / f"{owner}-lock.new"
    fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(fresh, folder / f"{owner}-lock")
    except OSError:
        # No locks on this file system: without a lock file others use the age rule.
        os.close(fd)
        fresh.unlink(missing_ok=True)
        return None
    return fd


def remove_abandoned(folder: Path, keep: str = "") -> int:
    """Remove temp files whose writer is gone; returns how many were removed."""
    owners: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        owner = path.name.split("-", 1)[0]
        if owner != keep:
            owners.setdefault(owner, []).append(path)
    removed = 0
    for owner, paths in owners.items():
        lock = folder / f"{owner}-lock"
        if lock in paths and fcntl is not None:
            removed += _remove_if_unlocked(lock, paths)
        else:
            removed += _remove_if_old(paths)
    return removed


def _remove_if_unlocked(lock: Path, paths: list[Path]) -> int:
    try:
        fd = os.open(lock, os.O_RDONLY)  # (another user's lock file is not writable)
    except OSError:
        return _remove_if_old(paths)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # its writer is still at work
    except OSError:
        return _remove_if_old(paths)  # locks not supported here after all
    else:
        return _unlink_all(p for p in paths if p != lock) + _unlink_all([lock])
    finally:
        os.close(fd)


def _remove_if_old(paths: list[Path]) -> int:
    cutoff = time.time() - ABANDONED_AFTER
    old = []
    for path in paths:
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                old.append(path)
    return _unlink_all(old)


def _unlink_all(paths: Iterable[Path]) -> int:
    removed = 0
    for path in paths:
        with contextlib.suppress(OSError):  # gone, not ours, a folder: left alone
            path.unlink()
            removed += 1
    return removed
