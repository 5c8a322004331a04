"""Writing user files without following symbolic links.

Every place HubSync writes a user's file (restore, and later ``get``/``pull``) goes
through :func:`open_dir` and then works with names relative to the directory fd it
returns (``os.open(name, ..., dir_fd=fd)``, ``os.link(..., src_dir_fd=fd,
dst_dir_fd=fd)``). The walk opens one component at a time with ``O_NOFOLLOW`` relative
to its parent's fd, so a symlink anywhere below the trusted ``base`` is refused, and
swapping a folder for a link after the check cannot redirect the write: the fd already
points at the real folder.

``base`` itself is trusted (the mirrored folder, or the ``--to`` folder a user named);
only what is below it is checked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from sync.errors import PermanentError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkInPath(PermanentError):
    """A component of a path HubSync was about to write through is a symbolic link."""


def _refuse(target: Path, link: Path) -> SymlinkInPath:
    return SymlinkInPath(f"{target} traverses a symbolic link ({link}); not writing there")


def open_dir(base: Path, parts: Sequence[str], *, create: bool = True) -> int:
    """The fd of ``base/parts...``, made if missing (``create``); the caller closes it.

    Raises :class:`SymlinkInPath` when a component below ``base`` is a symbolic link,
    and ``OSError`` for anything else (not a folder, no permission...).
    """
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    here = base
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part:
                raise PermanentError(f"refusing the path component {part!r} under {base}")
            here = here / part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: the open below checks what it is
                child = _open_existing(fd, part, here, base / Path(*parts))
            except OSError:
                child = _open_existing(fd, part, here, base / Path(*parts))
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_existing(parent: int, part: str, here: Path, target: Path) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        if stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode):
            raise _refuse(target, here) from None
        raise
