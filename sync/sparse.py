"""Copying files with holes (sparse files) without filling the holes.

A file whose blocks cover less than its size has holes: ranges that read as zeros
and take no space. Copies find the data ranges with ``SEEK_DATA``/``SEEK_HOLE`` and
write only those, at their offsets, then set the size; the holes stay holes where
the filesystem keeps them (elsewhere they are written as zeros, as before).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from typing import Protocol

_SEEK_DATA = getattr(os, "SEEK_DATA", None)
_SEEK_HOLE = getattr(os, "SEEK_HOLE", None)
CHUNK = 1 << 20
ZEROS = bytes(CHUNK)
"""Shared zeros: a hole is hashed as what it reads as."""


class Digest(Protocol):
    """What :func:`copy_file` needs of a hash object (``hashlib.sha256()``)."""

    def update(self, data: bytes | memoryview, /) -> None: ...


def has_holes(fd: int, st: os.stat_result | None = None) -> bool:
    """Whether the file open at ``fd`` (whose ``fstat`` is ``st``, when known) is sparse
    (and holes can be found)."""
    if _SEEK_DATA is None:
        return False
    st = st or os.fstat(fd)
    blocks = getattr(st, "st_blocks", None)
    return blocks is not None and blocks * 512 < st.st_size


def data_extents(fd: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each range of the file at ``fd`` that holds data, in order.

    Only for files :func:`has_holes` says yes to. The end is where the next hole
    begins (the file's end for the last range); nothing after the last range: the
    rest of the file, if any, is a hole."""
    assert _SEEK_DATA is not None and _SEEK_HOLE is not None
    pos = 0
    while True:
        try:
            start = os.lseek(fd, pos, _SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                return
            raise
        end = os.lseek(fd, start, _SEEK_HOLE)
        yield start, end
        pos = end


def copy_sparse(src: int, dst: int, moved: Callable[[int], None] | None = None) -> int:
    """Copy the data ranges of ``src`` to the same offsets of the new, empty ``dst`` and
    give it ``src``'s size; returns that size. ``moved`` hears of data bytes written."""
    size = os.fstat(src).st_size
    for start, end in data_extents(src):
        copy_range(src, dst, start, end, moved)
    os.ftruncate(dst, size)
    return size


def copy_range(
    src: int,
    dst: int,
    start: int,
    end: int,
    moved: Callable[[int], None] | None = None,
    chunk: int = 1 << 20,
) -> int:
    """Copy bytes ``start:end`` of ``src`` to the same offsets of ``dst``; returns how many
    were read (fewer when ``src`` ended early)."""
    pos = start
    while pos < end:
        data = os.pread(src, min(chunk, end - pos), pos)
        if not data:
            break
        write_at(dst, data, pos)
        if moved is not None:
            moved(len(data))
        pos += len(data)
    return pos - start


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def copy_file(
    src: int,
    dst: int,
    digest: Digest | None = None,
    moved: Callable[[int], None] | None = None,
    size: int = -1,
) -> int:
    """Every byte of ``src`` into the new, empty ``dst``; a sparse ``src`` keeps its holes.

    ``digest``, when given, is fed every byte as it is copied (a hole as the zeros it
    reads as), so a copy can be checked without reading it twice; ``moved`` hears of
    the bytes copied. ``size``, when the caller knows it: a file under CHUNK is copied
    without an ``fstat`` (one read; its holes, if any, are written as zeros: a few
    blocks at most). Returns the size copied."""
    if not 0 <= size < CHUNK:
        st = os.fstat(src)
        if has_holes(src, st):
            if digest is None:
                return copy_sparse(src, dst, moved)
            return _copy_sparse_hashed(src, dst, digest, moved)
        size = st.st_size
    total = 0
    # Most files fit one read: asking one byte more than expected, a short read is the
    # end of the file (no second read to find it), and a file that grew shows.
    want = size + 1 if size < CHUNK else CHUNK
    while data := os.read(src, want):
        if digest is not None:
            digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view) :]
        total += len(data)
        if moved is not None:
            moved(len(data))
        if len(data) < want:
            break
        want = CHUNK
    return total


def _copy_sparse_hashed(
    src: int, dst: int, digest: Digest, moved: Callable[[int], None] | None
) -> int:
    pos = 0  # everything before pos is hashed (and written, or a hole)
    for start, end in data_extents(src):
        _hash_zeros(digest, start - pos)
        pos = start
        while pos < end:
            data = os.pread(src, min(CHUNK, end - pos), pos)
            if not data:
                break
            digest.update(data)
            write_at(dst, data, pos)
            pos += len(data)
            if moved is not None:
                moved(len(data))
    size = os.fstat(src).st_size
    _hash_zeros(digest, size - pos)
    os.ftruncate(dst, max(size, pos))
    return max(size, pos)


def _hash_zeros(digest: Digest, count: int) -> None:
    while count > 0:
        n = min(len(ZEROS), count)
        digest.update(memoryview(ZEROS)[:n])
        count -= n
