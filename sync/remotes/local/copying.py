"""Copying bytes into and out of the hub, verified against their SHA-256 while they
move (sparse files keep their holes)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

from sync.errors import (
    FileChangedError,
    FileVanished,
    IntegrityError,
    LocalFileError,
    TransientError,
)
from sync.hashing import reusable_buffer
from sync.remotes.base import ProgressFn
from sync.remotes.local.schema import HubMissing
from sync.sparse import ZEROS, data_extents, has_holes, write_at

CHUNK = 1024 * 1024
_O_BINARY = getattr(os, "O_BINARY", 0)


def _copy_verified(
    src: str | Path,
    dst: str | Path,
    sha256: str,
    size: int,
    progress: ProgressFn | None,
    src_kind: str,
) -> None:
    """Copy ``src`` to a new file ``dst`` while hashing; raise if the bytes are not ``sha256``."""
    try:
        fin = io.FileIO(src, "r")
    except FileNotFoundError:
        if src_kind == "blob":
            raise IntegrityError("blob missing from the hub") from None
        raise FileVanished() from None
    except OSError as exc:
        raise LocalFileError(f"cannot read: {exc.strerror or exc}") from None
    try:
        with fin:
            fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
            try:
                digest, total = _pump(fin, fout, size, progress)
            finally:
                os.close(fout)
    except _ReadFailed as failed:
        _unlink_quiet(dst)
        why = failed.error.strerror or failed.error
        if src_kind == "blob":
            raise TransientError(f"cannot read from the hub: {why}") from None
        raise LocalFileError(f"cannot read: {why}") from None  # not the hub's fault
    except BaseException:
        _unlink_quiet(dst)
        raise
    if digest != sha256 or total != size:
        _unlink_quiet(dst)
        if src_kind == "blob":
            raise IntegrityError("blob in the hub does not match its SHA-256")
        raise FileChangedError("changed since it was hashed")


class _ReadFailed(Exception):
    """Reading the source failed (an I/O error), as opposed to writing the copy."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _read(fin: io.FileIO, size: int) -> bytes:
    try:
        return fin.read(size) or b""
    except OSError as exc:
        raise _ReadFailed(exc) from None


def _read_into(fin: io.FileIO, buf: bytearray) -> int:
    try:
        return fin.readinto(buf) or 0
    except OSError as exc:
        raise _ReadFailed(exc) from None


def _pump(fin: io.FileIO, fout: int, size: int, progress: ProgressFn | None) -> tuple[str, int]:
    """Move every byte of ``fin`` to ``fout``; returns (hex SHA-256, bytes moved)."""
    if size >= CHUNK and _sparse(fin):
        return _pump_sparse(fin.fileno(), fout, progress)
    if 0 <= size < CHUNK:
        # Most files: one read (one byte more than expected shows a file that grew).
        data = _read(fin, size + 1)
        _write_all(fout, data)
        if progress is not None and data:
            progress(len(data))
        return hashlib.sha256(data).hexdigest(), len(data)
    digest = hashlib.sha256()
    total = 0
    buf = reusable_buffer(CHUNK)
    view = memoryview(buf)
    while n := _read_into(fin, buf):
        chunk = view[:n]
        digest.update(chunk)
        _write_all(fout, chunk)
        total += n
        if progress is not None:
            progress(n)
    return digest.hexdigest(), total


def _sparse(fin: io.FileIO) -> bool:
    try:
        return has_holes(fin.fileno())
    except OSError as exc:
        raise _ReadFailed(exc) from None


def _pump_sparse(src: int, fout: int, progress: ProgressFn | None) -> tuple[str, int]:
    """:func:`_pump` for a file with holes: only its data ranges are written (at their
    offsets), so the copy keeps the holes; the hash covers every byte, holes as zeros."""
    digest = hashlib.sha256()
    pos = 0  # everything before pos is hashed (and written, or a hole)

    def zeros_to(offset: int) -> None:
        nonlocal pos
        hole = offset - pos
        while pos < offset:
            n = min(len(ZEROS), offset - pos)
            digest.update(memoryview(ZEROS)[:n])
            pos += n
        if progress is not None and hole > 0:
            progress(hole)  # the meter counts the file's bytes, holes too

    try:
        extents = list(data_extents(src))
        end = os.fstat(src).st_size
    except OSError as exc:
        raise _ReadFailed(exc) from None
    for start, stop in extents:
        zeros_to(start)
        while pos < stop:
            try:
                data = os.pread(src, min(CHUNK, stop - pos), pos)
            except OSError as exc:
                raise _ReadFailed(exc) from None
            if not data:  # shrank meanwhile: the size check tells
                os.ftruncate(fout, pos)
                return digest.hexdigest(), pos
            digest.update(data)
            write_at(fout, data, pos)
            pos += len(data)
            if progress is not None:
                progress(len(data))
    zeros_to(max(end, pos))
    os.ftruncate(fout, pos)
    return digest.hexdigest(), pos


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quiet(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _new_dir(path: str, levels: int = 3) -> bool:
    """Make the folder ``path`` and at most ``levels - 1`` missing parents (the user and
    ``sha[:2]`` folders of a blob); False when it was there already. A missing bucket
    folder means the hub went away (an unplugged drive): it is never recreated, since
    the real hub would then land nested inside the new folder when the drive returns."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        if levels <= 1:
            raise HubMissing(
                f"{os.path.dirname(path)} is missing (was the hub's drive unplugged?)"
            ) from None
        _new_dir(os.path.dirname(path), levels - 1)
        try:
            os.mkdir(path)
        except FileExistsError:
            return False
    return True
