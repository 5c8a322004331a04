"""A file beside the journal holding its stat indexes, for a fast first rescan.

Loading 100k rows of ``(relpath, size, mtime_ns, inode, state)`` from SQLite
and grouping them by folder costs ~0.15 s, half the rescan it serves; the same
:class:`StatIndex` comes back from this file in ~0.02 s (names in one string,
numbers in packed arrays, already grouped). The snapshot is only a cache: it
carries the journal's ``files`` generation (bumped by a trigger on every insert,
update and delete of a file row, whoever writes it) and is used only while
that generation is current. A missing, stale or damaged snapshot is ignored
and the rows are read from SQLite as before.

The journal reads the file when it opens and deletes it if it is stale, and
writes a new one when it closes after file rows changed. A journal restored
from a backup has a lower generation and so meets the old snapshot as stale,
once, before it can grow back to that generation with other rows. The same
holds after a power cut that lost the journal's last commits (``synchronous=
NORMAL``): its generation is then lower than the snapshot's, which is dropped.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path

from sync.journal.stat_index import StatIndex, StatRow
from sync.journal.states import FileState

_MAGIC = b"HSSTAT03"
_HEADER = struct.Struct("<8sqII")  # magic, generation, CRC-32 of what follows, roots
_LENGTH = struct.Struct("<Q")  # before each section
_SECTIONS = 12  # per root, in the order of _root_sections


def save(path: Path, generation: int, indexes: Mapping[str, StatIndex]) -> None:
    """Write ``indexes`` (root id → stat index) as of ``generation``; atomic, not fsynced
    (a snapshot lost in a power cut is only a slower first rescan)."""
    parts = []
    try:
        for root_id, index in indexes.items():
            for section in _root_sections(root_id, index):
                parts += [_LENGTH.pack(len(section)), section]
    except (OverflowError, UnicodeEncodeError):
        return  # a value the format cannot hold: no snapshot, rows come from SQLite
    body = b"".join(parts)
    header = _HEADER.pack(_MAGIC, generation, zlib.crc32(body), len(indexes))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two processes may close at once
    try:
        tmp.write_bytes(header + body)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _root_sections(root_id: str, index: StatIndex) -> list[bytes]:
    folders = index.folders
    others = list(index.others.values())
    return [
        root_id.encode(),
        _join(folders),
        array("q", (len(f[0]) for f in folders.values())).tobytes(),
        _join(name for f in folders.values() for name in f[0]),
        array("q", (v for f in folders.values() for v in f[1])).tobytes(),
        array("q", (v for f in folders.values() for v in f[2])).tobytes(),
        array("Q", (v for f in folders.values() for v in f[3])).tobytes(),
        _join(r[0] for r in others),
        array("q", (r[1] for r in others)).tobytes(),
        array("q", (r[2] for r in others)).tobytes(),
        array("Q", (r[3] for r in others)).tobytes(),
        _join(str(r[4]) for r in others),
    ]


def read(path: Path, generation: int) -> bytes | None:
    """The snapshot's bytes if it is of ``generation``; a stale or damaged file is removed."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        magic, saved, *_ = _HEADER.unpack_from(data)
    except struct.error:
        magic = saved = None
    if magic == _MAGIC and saved == generation:
        return data
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def load(data: bytes, generation: int) -> dict[str, StatIndex] | None:
    """Root id → stat index, if the snapshot is whole and of ``generation``; else None."""
    try:
        magic, saved, crc, count = _HEADER.unpack_from(data)
        if magic != _MAGIC or saved != generation:
            return None
        if zlib.crc32(memoryview(data)[_HEADER.size :]) != crc:
            return None  # a flipped byte must not pass for a file that changed
        sections = _sections(data, _HEADER.size)
        indexes = {}
        for _ in range(count):
            parts = [next(sections) for _ in range(_SECTIONS)]
            indexes[parts[0].decode()] = _read_root(parts[1:])
        if next(sections, None) is not None:
            return None
    except (struct.error, UnicodeDecodeError, ValueError, StopIteration):
        return None
    return indexes


def _sections(data: bytes, at: int) -> Iterator[bytes]:
    while at < len(data):
        (length,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + length > len(data):
            raise ValueError("truncated")
        yield data[at : at + length]
        at += length


def _read_root(parts: list[bytes]) -> StatIndex:
    folder_names, counts, names, sizes, mtimes, inodes = parts[:6]
    index = StatIndex()
    count_list = _numbers("q", counts)
    folder_list = _split(folder_names, len(count_list))
    total = sum(count_list)
    name_list = _split(names, total)
    columns = [_numbers("q", sizes), _numbers("q", mtimes), _numbers("Q", inodes)]
    if any(len(c) != total for c in columns):
        raise ValueError("inconsistent")
    at = 0
    for folder, n in zip(folder_list, count_list, strict=True):
        end = at + n
        index.folders[folder] = (
            name_list[at:end],
            columns[0][at:end],
            columns[1][at:end],
            columns[2][at:end],
        )
        at = end
    other_columns = [_numbers("q", parts[7]), _numbers("q", parts[8]), _numbers("Q", parts[9])]
    others = len(other_columns[0])
    rels = _split(parts[6], others)
    states = [FileState(s) for s in _split(parts[10], others)]
    rows: list[StatRow] = list(zip(rels, *other_columns, states, strict=True))
    index.others = {r[0]: r for r in rows}
    return index


def _join(strings: Iterator[str] | Mapping[str, object]) -> bytes:
    return "\0".join(strings).encode()


def _split(blob: bytes, count: int) -> list[str]:
    """``count`` strings joined by NUL (one empty string and none look alike otherwise)."""
    strings = blob.decode().split("\0") if count else []
    if len(strings) != count:
        raise ValueError("inconsistent")
    return strings


def _numbers(code: str, blob: bytes) -> list[int]:
    column = array(code)
    column.frombytes(blob)
    return column.tolist()
