"""One agent per user: an exclusive lock on ``Paths.agent_lock``, held for the agent's life.

The kernel drops the lock when the process dies (even by ``kill -9``), so a
stale lock file never blocks a new agent. The holder's pid is written into the
file so that a second agent can say who is running.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from pathlib import Path
from types import TracebackType

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

# On Windows the lock covers one byte far past the pid, so the pid stays readable.
_WIN_LOCK_OFFSET = 1 << 20


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another agent is running ({who})")
        self.pid = pid


def read_holder(path: Path) -> int | None:
    """The pid written by the current (or last) holder, if any."""
    try:
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def lock_held(path: Path) -> bool:
    """Whether a process holds the agent lock at ``path`` now. The look takes the lock
    for an instant (an agent starting then retries; see :meth:`AgentLock.acquire`)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        _lock(fd)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock
    return False


LOCK_ATTEMPTS = 5


class AgentLock:
    """``with AgentLock(paths.agent_lock): run_agent()`` — raises ``AlreadyRunning``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError("lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(LOCK_ATTEMPTS):
            try:
                _lock(fd)
                break
            except OSError:
                if attempt == LOCK_ATTEMPTS - 1:
                    os.close(fd)
                    raise AlreadyRunning(read_holder(self.path)) from None
                time.sleep(0.02)  # a command looking (``lock_held``) lets go at once
        try:
            _write_pid(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _write_pid(fd: int) -> None:
    """The holder's pid, for messages only: on a full disk the lock is held without it
    (overwritten in place, an old pid's block is reused; else the holder is unknown)."""
    pid = f"{os.getpid()}\n".encode("ascii")
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, pid)
        os.ftruncate(fd, len(pid))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)


def _lock(fd: int) -> None:
    """Take the lock without waiting; ``OSError`` when someone else holds it."""
    if sys.platform == "win32":
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        os.lseek(fd, 0, os.SEEK_SET)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
