"""Crash-safe file writes that do not cost one fsync per file.

A blob must be on disk before a row points at it. Calling fsync for each of
10,000 small files would dominate a sync, so writers rename finished temp
files into place and then make a whole batch durable at once: ``syncfs`` on
Linux (one call for the file system), per-file fsync elsewhere. This is the
same idea as git's ``core.fsyncMethod=batch``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path


def _load_syncfs() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def fsync_dir(path: str | Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable(anchor: Path, files: Iterable[str | Path]) -> None:
    """Make ``files`` (and their renames) durable; ``anchor`` is any path on their file system."""
    pending = list(files)
    if not pending:
        return
    if _SYNCFS is not None:
        fd = os.open(anchor, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:  # type: ignore[operator]
                return
        finally:
            os.close(fd)
    dirs = set()
    for path in pending:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dirs.add(os.path.dirname(path))
    for d in dirs:
        fsync_dir(d)
