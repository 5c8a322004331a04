"""Streaming SHA-256 of files, done in worker threads.

hashlib releases the GIL while it digests large buffers, so a small thread
pool keeps every core busy when several files wait. A file is hashed only
when its size and mtime are the same before and after the read (on the open
descriptor, so a rename over it during the read leaves a consistent old
version, whose replacement the next pass sees); a file still being written
raises :class:`FileChangedError` and is retried later, never uploaded
half-written.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.errors import FileChangedError, FileVanished, LocalFileError, SyncError

CHUNK = 1024 * 1024
READ_AHEAD_MIN = 16 * 1024 * 1024
"""Files this large are read by a second thread while this one digests: one thread
alone copies from the page cache and digests by turns (the copy is ~20% of a big file's
time, measured on 1 GiB; 1, 4 and 8 MiB reads cost the same)."""
READ_AHEAD_BLOCK = 4 * 1024 * 1024


_buffers = threading.local()


def reusable_buffer(size: int = CHUNK) -> bytearray:
    """A per-thread I/O buffer: a fresh 1 MiB bytearray per file costs a zero-fill and
    hundreds of page faults, which dominated copying many small files."""
    buf: bytearray | None = getattr(_buffers, "buf", None)
    if buf is None or len(buf) != size:
        buf = _buffers.buf = bytearray(size)
    return buf


@dataclass(frozen=True, slots=True)
class Hashed:
    sha256: str
    size: int
    mtime_ns: int
    inode: int

    def __reduce__(self) -> tuple[type[Hashed], tuple[str, int, int, int]]:
        # Worker processes send thousands back: a plain constructor call pickles in
        # half the bytes and time of the generic path for frozen slotted classes.
        return Hashed, (self.sha256, self.size, self.mtime_ns, self.inode)


def _unreadable(exc: OSError) -> LocalFileError:
    if exc.errno == errno.ENOENT:
        return FileVanished()
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalFileError("cannot read: permission denied")
    return LocalFileError(f"cannot read: {exc.strerror or exc}")


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)

Reader = Callable[[int, os.stat_result], tuple[str, int, bytes]]
"""Reads an open file (fd, its stat): returns (hex SHA-256, bytes read, bytes kept)."""


def _read_stable(path: str | Path, read: Reader) -> tuple[bytes, Hashed]:
    """Run ``read`` on ``path``; raise unless the file was the same before and after."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _unreadable(exc) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise LocalFileError("not a regular file")
        digest, total, data = read(fd, before)
        after = os.fstat(fd)
    except OSError as exc:
        raise _unreadable(exc) from None
    finally:
        os.close(fd)
    if (
        total != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
    ):
        raise FileChangedError("still being written (changed while hashing)")
    return data, Hashed(digest, total, before.st_mtime_ns, before.st_ino)


def _read_whole(fd: int, st: os.stat_result) -> tuple[str, int, bytes]:
    # One read, one digest call, no buffer objects. One byte more than expected:
    # getting it means the file grew meanwhile.
    data = os.read(fd, st.st_size + 1)
    return hashlib.sha256(data).hexdigest(), len(data), data


def _read_ahead(fd: int) -> tuple[str, int]:
    """(hex SHA-256, bytes read) of ``fd`` to its end, read a block ahead in a thread.

    Two buffers go round: the reader fills one while this thread digests the other
    (both calls release the GIL). The reader is joined before returning, so ``fd`` is
    never read after its owner closes it.
    """
    hasher = hashlib.sha256()
    free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
    filled: queue.SimpleQueue[tuple[bytearray, int] | OSError] = queue.SimpleQueue()
    for _ in range(2):
        free.put(bytearray(READ_AHEAD_BLOCK))

    def read() -> None:
        while (buf := free.get()) is not None:
            try:
                n = os.readv(fd, (buf,))
            except OSError as exc:
                filled.put(exc)
                return
            filled.put((buf, n))
            if not n:
                return

    reader = threading.Thread(target=read, name="hubsync-read-ahead", daemon=True)
    reader.start()
    total = 0
    try:
        while True:
            got = filled.get()
            if isinstance(got, OSError):
                raise got
            buf, n = got
            if not n:
                return hasher.hexdigest(), total
            with memoryview(buf) as view:
                hasher.update(view[:n])
            total += n
            free.put(buf)
    finally:
        free.put(None)
        reader.join()


def _hash_chunked(chunk: int) -> Reader:
    """A reader that hashes ``fd`` to its end: small files in one read into this
    thread's buffer, big ones read ahead, the rest in ``chunk``-sized reads."""

    def read(fd: int, st: os.stat_result) -> tuple[str, int, bytes]:
        if st.st_size < chunk:  # most files: one read into this thread's buffer
            buf = reusable_buffer(max(chunk, CHUNK))
            # Up to the buffer's size: more than st_size shows a file that grew.
            n = os.readv(fd, (buf,))
            with memoryview(buf) as view:
                return hashlib.sha256(view[:n]).hexdigest(), n, b""
        if st.st_size >= READ_AHEAD_MIN:
            return (*_read_ahead(fd), b"")
        hasher = hashlib.sha256()
        buf = reusable_buffer(chunk)
        view = memoryview(buf)
        total = 0
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            while n := f.readinto(buf):
                hasher.update(view[:n])
                total += n
        return hasher.hexdigest(), total, b""

    return read


_hash_read = _hash_chunked(CHUNK)


def hash_file(path: str | Path, chunk: int = CHUNK) -> Hashed:
    """Hash ``path``; raises LocalFileError or FileChangedError with a clear reason."""
    return _read_stable(path, _hash_read if chunk == CHUNK else _hash_chunked(chunk))[1]


def read_small(path: Path, limit: int = CHUNK) -> tuple[bytes, Hashed]:
    """The bytes of a file smaller than ``limit`` and their hash, with the checks of
    :func:`hash_file`: one read serves both hashing and storing them."""

    def read(fd: int, st: os.stat_result) -> tuple[str, int, bytes]:
        if st.st_size >= limit:
            raise FileChangedError("still being written (grew since it was scanned)")
        return _read_whole(fd, st)

    return _read_stable(path, read)


def hash_many(
    paths: Sequence[str | Path], hash_one: Callable[[str | Path], Hashed] | None = None
) -> list[Hashed | SyncError]:
    """Hash several files in one trip to a hash thread or worker process
    (:mod:`sync.workers`) with ``hash_one`` (:func:`hash_file`); each gets its hash or
    its error."""
    one = hash_one or hash_file
    out: list[Hashed | SyncError] = []
    for path in paths:
        try:
            out.append(one(path))
        except SyncError as exc:
            out.append(exc)
    return out


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
