"""Renames, paired in one place: a deleted path and a new one are the same file when
the new one has the old one's inode, size and mtime (found without hashing), and a
deletion is a move when its content is synced at another path now.

A pairing by inode is only a guess (a freed inode can be reused for a new file of
the same size and pinned mtime): the new file is still hashed, and counts as renamed
only when its hash is the old one's. Its blob is then found in the hub: a real
rename uploads nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from sync.journal import FileRow, FileState
from sync.journal.stat_index import StatRow

Stat = tuple[int, int, int]
"""(size, mtime_ns, inode) of a file on disk."""


def pair_by_inode(
    deleted: Iterable[str], new: Mapping[str, Stat], known: Mapping[str, StatRow]
) -> dict[str, str]:
    """new relpath → the deleted synced path it seems renamed from."""
    by_inode: dict[tuple[int, int, int], str] = {}
    for rel in deleted:
        row = known[rel]
        if row[4] == FileState.SYNCED:
            by_inode[(row[3], row[1], row[2])] = rel
    pairs: dict[str, str] = {}
    if not by_inode:
        return pairs
    for rel, st in new.items():
        old = by_inode.pop((st[2], st[0], st[1]), None)
        if old is not None:
            pairs[rel] = old
    return pairs


def moved_from(pairs: Mapping[str, str], rows: Mapping[str, FileRow]) -> dict[str, str]:
    """new relpath → the hash of the file it seems renamed from (for :func:`is_rename`)."""
    out: dict[str, str] = {}
    for new, old in pairs.items():
        row = rows.get(old)
        if row is not None and row.sha256:
            out[new] = row.sha256
    return out


def is_rename(sha256: str, old_sha256: str | None) -> bool:
    """Whether a file paired with an old path has the old content (then it is moved)."""
    return old_sha256 == sha256


def moves(deleting: Collection[str], rows: Mapping[str, FileRow], elsewhere: set[str]) -> set[str]:
    """The deletions that are the old names of moved files: their content is synced at
    another path now (``elsewhere``: the hashes of the folder's other synced files)."""
    return {rel for rel in deleting if rows[rel].sha256 in elsewhere}
