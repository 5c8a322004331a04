"""Telling a full disk from a damaged file.

A write that finds no space fails with ``ENOSPC`` (or ``EDQUOT``), and SQLite says
``SQLITE_FULL`` ("database or disk is full"); but when it cannot grow its
shared-memory file (WAL index) it only says "disk I/O error", which also means a
damaged file. Free space on the file's filesystem tells the two apart.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from sync.errors import DiskFull

LOW_SPACE = 16 * 2**20
"""Below this much free space, SQLite's vague "disk I/O error" is taken for a full disk."""

_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


def _existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a file not made yet has none)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of ``path``."""
    try:
        st = os.statvfs(_existing(Path(path)))
    except (OSError, AttributeError):  # no statvfs (Windows): unknown
        return None
    return st.f_bavail * st.f_frsize


def mount_point(path: str | os.PathLike[str]) -> Path:
    """The folder where the filesystem holding ``path`` is mounted (what a user frees)."""
    at = _existing(Path(path))
    while not os.path.ismount(at) and at != at.parent:
        at = at.parent
    return at


def is_disk_full(exc: BaseException, path: str | os.PathLike[str]) -> bool:
    """Whether ``exc``, raised writing at ``path``, means that the disk is full."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if not isinstance(exc, sqlite3.Error):
        return False
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    if code == _SQLITE_FULL or "database or disk is full" in text:
        return True
    if code == _SQLITE_IOERR or "disk I/O error" in text:
        free = free_bytes(path)
        return free is not None and free < LOW_SPACE
    return False


def disk_full(
    exc: BaseException, path: str | os.PathLike[str], *, whose: str = ""
) -> DiskFull | None:
    """A :class:`DiskFull` naming the filesystem of ``path`` if ``exc`` means a full disk."""
    if not is_disk_full(exc, path):
        return None
    return DiskFull(mount_point(path), free_bytes(path) or 0, whose=whose)
