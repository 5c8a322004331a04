"""A file beside the journal holding its stat index, for a fast first rescan.

Loading 100k rows of ``(relpath, size, mtime_ns, inode, state)`` from SQLite
costs ~0.1 s, a third of the rescan it serves; the same rows come back from
this file in ~0.04 s (names in one string, numbers in packed arrays). The
snapshot is only a cache: it carries the journal's ``files`` generation (bumped
by a trigger on every insert, update and delete of a file row, whoever writes
it) and is used only while that generation is current. A missing, stale or
damaged snapshot is ignored and the rows are read from SQLite as before.

The journal reads the file when it opens and deletes it if it is stale, and
writes a new one when it closes after file rows changed. A journal restored
from a backup has a lower generation and so meets the old snapshot as stale,
once, before it can grow back to that generation with other rows.
"""

from __future__ import annotations

import contextlib
import os
import struct
from array import array
from collections.abc import Mapping
from pathlib import Path

Row = tuple[str, int, int, int, str | int]
"""The journal's ``StatRow``: (relpath, size, mtime_ns, inode, state), where the state
of a synced file is the int 0 (``SYNCED_MARK``), stored here as an empty string."""

_MAGIC = b"HSSTAT01"
_HEADER = struct.Struct("<8sqI")  # magic, generation, number of roots
_ROOT = struct.Struct("<IQQQ")  # root id length, rows, names length, states length


def save(path: Path, generation: int, indexes: Mapping[str, Mapping[str, Row]]) -> None:
    """Write ``indexes`` (root id → stat index) as of ``generation``; atomic, not fsynced
    (a snapshot lost in a power cut is only a slower first rescan)."""
    parts = [_HEADER.pack(_MAGIC, generation, len(indexes))]
    try:
        for root_id, index in indexes.items():
            rows = index.values()
            rid = root_id.encode()
            names = "\0".join(r[0] for r in rows).encode()
            states = "\0".join("" if r[4] == 0 else str(r[4]) for r in rows).encode()
            parts += [_ROOT.pack(len(rid), len(index), len(names), len(states)), rid, names]
            parts += [
                states,
                array("q", (r[1] for r in rows)).tobytes(),
                array("q", (r[2] for r in rows)).tobytes(),
                array("Q", (r[3] for r in rows)).tobytes(),
            ]
    except (OverflowError, UnicodeEncodeError):
        return  # a value the format cannot hold: no snapshot, rows come from SQLite
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(OSError):
        tmp.write_bytes(b"".join(parts))
        os.replace(tmp, path)


def read(path: Path, generation: int) -> bytes | None:
    """The snapshot's bytes if it is of ``generation``; a stale or damaged file is removed."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        magic, saved, _ = _HEADER.unpack_from(data)
    except struct.error:
        magic = saved = None
    if magic == _MAGIC and saved == generation:
        return data
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def load(data: bytes, generation: int) -> dict[str, dict[str, Row]] | None:
    """Root id → stat index, if the snapshot is whole and of ``generation``; else None."""
    try:
        magic, saved, count = _HEADER.unpack_from(data)
        if magic != _MAGIC or saved != generation:
            return None
        indexes = {}
        at = _HEADER.size
        for _ in range(count):
            rid_len, rows, names_len, states_len = _ROOT.unpack_from(data, at)
            at += _ROOT.size
            rid = data[at : at + rid_len].decode()
            at += rid_len
            index = _read_root(data, at, rows, names_len, states_len)
            if index is None:
                return None
            indexes[rid] = index
            at += names_len + states_len + 24 * rows
    except (struct.error, UnicodeDecodeError, ValueError):
        return None
    return indexes


def _read_root(
    data: bytes, at: int, rows: int, names_len: int, states_len: int
) -> dict[str, Row] | None:
    names = data[at : at + names_len].decode().split("\0") if rows else []
    at += names_len
    raw_states = data[at : at + states_len].decode().split("\0") if rows else []
    at += states_len
    columns = []
    for code in ("q", "q", "Q"):
        column = array(code)
        column.frombytes(data[at : at + 8 * rows])
        at += 8 * rows
        columns.append(column)
    if len(names) != rows or len(raw_states) != rows or any(len(c) != rows for c in columns):
        return None
    states: list[str | int] = [s or 0 for s in raw_states]
    return dict(zip(names, zip(names, *columns, states, strict=True), strict=True))
