"""What a rescan compares the tree with: the journal's stat of every tracked file.

Synced files (nearly all) are kept by folder, in name order, as parallel lists
of names, sizes, mtimes and inodes. A walk collects the same lists for each
folder it lists and compares them whole: an unchanged folder costs four list
comparisons in C instead of a dict lookup, a string concatenation and three
comparisons per file. Files in any other state (seen, error, held, deleted)
are few and kept as rows by relpath.

The order within a folder only decides speed: a folder whose lists differ for
any reason (a change, another order) is compared file by file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sync.journal.states import FileState

StatRow = tuple[str, int, int, int, FileState]
"""(relpath, size, mtime_ns, inode, state) of a tracked file."""

Folder = tuple[list[str], list[int], list[int], list[int]]
"""The synced files of one folder: names (sorted), sizes, mtimes (ns), inodes."""


@dataclass
class StatIndex:
    """The tracked files of one root; a walk reads it and never changes it."""

    folders: dict[str, Folder] = field(default_factory=dict)
    """Folder relpath ("" for the root) → its synced files."""
    others: dict[str, StatRow] = field(default_factory=dict)
    """Relpath → row, for files in any state but synced."""

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, int, int, int, str]]) -> StatIndex:
        """Rows in relpath order (the journal's key order) give folders in name order, which
        makes unchanged folders match whole; any other order only makes rescans slower.
        A state may come as the text the journal stores."""
        index = cls()
        folders, others = index.folders, index.others
        synced = FileState.SYNCED.value  # a plain str: compared once per row
        for rel, size, mtime_ns, inode, state in rows:
            if state != synced:
                others[rel] = (rel, size, mtime_ns, inode, FileState(state))
                continue
            folder, _, name = rel.rpartition("/")
            columns = folders.get(folder)
            if columns is None:
                columns = folders[folder] = ([], [], [], [])
            columns[0].append(name)
            columns[1].append(size)
            columns[2].append(mtime_ns)
            columns[3].append(inode)
        return index

    def rows(self) -> Iterator[StatRow]:
        for folder, (names, sizes, mtimes, inodes) in self.folders.items():
            prefix = folder + "/" if folder else ""
            for name, size, mtime_ns, inode in zip(names, sizes, mtimes, inodes, strict=True):
                yield (prefix + name, size, mtime_ns, inode, FileState.SYNCED)
        yield from self.others.values()
