"""Walking a root and comparing it with the journal.

The walk costs one ``lstat`` per file and nothing else; a file whose size,
mtime_ns and inode match the journal is not opened at all. Symlinks are never
followed (reported), and sockets, FIFOs and devices are skipped with a reason.
"""

from __future__ import annotations

import errno
import operator
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sync.ignore import (
    IGNORE_FILE,
    IgnoreRules,
    is_default_ignored,
    may_hold_default_ignored,
    root_rules,
)
from sync.journal.stat_index import Folder, StatIndex, StatRow
from sync.journal.states import GONE, IN_HUB, WAITING, FileState
from sync.renames import pair_by_inode

Stat = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class WalkResult:
    files: dict[str, Stat] = field(default_factory=dict)
    """Files to look at: new, changed, or not matched with the index."""
    skipped: dict[str, str] = field(default_factory=dict)
    """relpath → why it is not mirrored (symlink, special file, unreadable folder...)."""
    ignored: int = 0
    unchanged: int = 0
    """Files matched with the index as synced and unchanged (not listed in ``files``)."""
    leftover: dict[str, StatRow] = field(default_factory=dict)
    """The index's rows the walk did not match: changed or gone files, and every file
    in a state other than synced. What :func:`diff` compares ``files`` with."""
    folders: int = 1
    """Folders walked, the root included."""
    unreadable: set[str] = field(default_factory=set)
    """Folders that could not be listed and files that could not be stat'ed ("" is the
    root): what the journal knows below them is kept, not taken for deleted."""

    def without_unreadable(self, known: Mapping[str, StatRow]) -> Mapping[str, StatRow]:
        """``known`` without the rows below :attr:`unreadable` paths."""
        if not self.unreadable:
            return known
        hidden = tuple(self.unreadable)
        if "" in hidden:
            return {}
        below = tuple(p + "/" for p in hidden)
        return {r: row for r, row in known.items() if r not in hidden and not r.startswith(below)}


SYMLINK = "skipped: symbolic link (links are not followed)"
INVALID_NAME = "name is not valid UTF-8"
MAX_RELPATH_BYTES = 1024
"""Longer relative paths are skipped: the hub's rows and request URLs carry the path."""
PATH_TOO_LONG = f"skipped: path longer than {MAX_RELPATH_BYTES} bytes"

SKIP_KINDS = {
    SYMLINK: "symlink",
    INVALID_NAME: "invalid_name",
    PATH_TOO_LONG: "path_too_long",
    "skipped: a FIFO (named pipe)": "special",
    "skipped: a socket": "special",
    "skipped: a device file": "special",
    "skipped: not a regular file": "special",
}


def skip_kind(reason: str) -> str:
    """The kind of a walk's skip reason (``symlink``, ``special``, ...); ``other`` if unknown."""
    return SKIP_KINDS.get(reason, "other")


def _special_reason(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "skipped: a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "skipped: a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "skipped: a device file"
    return "skipped: not a regular file"


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_by_name = operator.attrgetter("name")


def walk(root: Path, index: StatIndex | None = None) -> WalkResult:
    """Every regular file below ``root`` that the ignore rules let through.

    With ``index`` (the journal's), files found synced and unchanged are only
    counted in ``unchanged``; a no-change rescan then builds nothing per file.
    What the walk could not match is in ``files`` and ``leftover``.
    """
    result = WalkResult()
    listed: set[str] = set()
    _walk_into(result, os.fspath(root), "", IgnoreRules(), index, listed)
    if index is not None:
        for folder, known in index.folders.items():
            if folder not in listed:  # gone, unreadable or ignored now
                _leave(result, folder + "/" if folder else "", zip(*known, strict=True))
        result.leftover.update(index.others)
    return result


def _walk_into(
    result: WalkResult,
    top: str,
    top_rel: str,
    top_rules: IgnoreRules,
    index: StatIndex | None = None,
    listed: set[str] | None = None,
) -> None:
    # The hot loop of every rescan: one lstat per file, local names, no calls for the
    # common case (a regular file with an ASCII name and no .hubignore in force), and
    # each folder compared with the index as a whole. The built-in patterns are tried
    # on each name only in folders where a name may match them (rare).
    folders = index.folders if index is not None else {}
    unchanged = 0
    default_ignored = is_default_ignored
    is_reg = stat.S_ISREG
    stack: list[tuple[str, str, IgnoreRules]] = [(top, top_rel, top_rules)]
    while stack:
        dir_path, dir_rel, rules = stack.pop()
        prefix = dir_rel + "/" if dir_rel else ""
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=_by_name)
        except OSError as exc:
            result.skipped[dir_rel or "."] = f"folder cannot be read: {exc.strerror or exc}"
            result.unreadable.add(dir_rel)
            continue
        # A folder's own .hubignore applies to it: seen in its listing, so folders
        # without one cost no extra open().
        listing = [e.name for e in entries]
        if IGNORE_FILE in listing:
            rules = rules.enter(Path(dir_path), dir_rel)
        scoped = rules.has_patterns
        defaults = may_hold_default_ignored("\0" + "\0".join(listing) + "\0")
        names: list[str] = []
        sizes: list[int] = []
        mtimes: list[int] = []
        inodes: list[int] = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    rel = prefix + name
                    if rules.ignored(name, rel, True):
                        result.ignored += 1
                    elif not _valid_name(name):
                        result.skipped[rel] = INVALID_NAME
                    else:
                        result.folders += 1
                        stack.append((entry.path, rel, rules))
                    continue
                if (defaults and default_ignored(name)) or (
                    scoped and rules.ignored(name, prefix + name, False)
                ):
                    result.ignored += 1
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.ENOENT:  # (gone since the listing: a deletion)
                    result.skipped[prefix + name] = f"cannot be read: {exc.strerror or exc}"
                    result.unreadable.add(prefix + name)
                continue
            if is_reg(st.st_mode) and (name.isascii() or _valid_name(name)):
                names.append(name)
                sizes.append(st.st_size)
                mtimes.append(st.st_mtime_ns)
                inodes.append(st.st_ino)
            else:
                _classify(result, prefix + name, name, st)
        known = folders.get(dir_rel)
        if known is not None and listed is not None:
            listed.add(dir_rel)
        if (
            known is not None
            and names == known[0]
            and sizes == known[1]
            and mtimes == known[2]
            and inodes == known[3]
        ):
            unchanged += len(names)
        else:
            unchanged += _compare_files(result, prefix, names, sizes, mtimes, inodes, known)
    result.unchanged += unchanged


def _compare_files(
    result: WalkResult,
    prefix: str,
    names: list[str],
    sizes: list[int],
    mtimes: list[int],
    inodes: list[int],
    known: Folder | None,
) -> int:
    """A folder that differs from the index, file by file; returns how many are unchanged."""
    rows = {} if known is None else dict(zip(known[0], zip(*known[1:], strict=True), strict=True))
    files = result.files
    unchanged = 0
    for name, current in zip(names, zip(sizes, mtimes, inodes, strict=True), strict=True):
        row = rows.pop(name, None)
        if row == current:
            unchanged += 1
            continue
        rel = prefix + name
        if len(rel) > MAX_RELPATH_BYTES and len(rel.encode()) > MAX_RELPATH_BYTES:
            result.skipped[rel] = PATH_TOO_LONG
            continue
        files[rel] = current
        if row is not None:
            result.leftover[rel] = (rel, *row, FileState.SYNCED)
    _leave(result, prefix, ((name, *row) for name, row in rows.items()))
    return unchanged


def _leave(result: WalkResult, prefix: str, rows: Iterable[tuple[str, int, int, int]]) -> None:
    """Put index rows (name, size, mtime_ns, inode) of one folder in ``result.leftover``."""
    for name, size, mtime_ns, inode in rows:
        rel = prefix + name
        result.leftover[rel] = (rel, size, mtime_ns, inode, FileState.SYNCED)


def _classify(result: WalkResult, rel: str, name: str, st: os.stat_result) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if not _valid_name(name):
            result.skipped[rel] = INVALID_NAME
        elif len(rel.encode()) > MAX_RELPATH_BYTES:
            result.skipped[rel] = PATH_TOO_LONG
        else:
            result.files[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    elif stat.S_ISLNK(mode):
        result.skipped[rel] = SYMLINK
    else:
        result.skipped[rel] = _special_reason(mode)


def walk_paths(root: Path, relpaths: Iterable[str]) -> WalkResult:
    """Like :func:`walk`, but only for some paths (files or folders) inside ``root``.

    This is what a file-system event costs: the changed paths, not the tree.
    """
    result = WalkResult()
    for rel in sorted(set(relpaths)):
        rules: IgnoreRules | None = root_rules(root)
        parts = rel.split("/")
        base = ""
        for part in parts[:-1]:
            base = f"{base}/{part}" if base else part
            assert rules is not None
            if rules.ignored(part, base, True):
                rules = None
                break
            rules = rules.enter(root / base, base)
        if rules is None:
            continue
        try:
            st = os.stat(root / rel, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                result.skipped[rel] = f"cannot be read: {exc.strerror or exc}"
                result.unreadable.add(rel)
            continue
        name = parts[-1]
        is_dir = stat.S_ISDIR(st.st_mode)
        if rules.ignored(name, rel, is_dir):
            result.ignored += 1
        elif is_dir:
            _walk_into(result, os.fspath(root / rel), rel, rules)
        else:
            _classify(result, rel, name, st)
    return result


@dataclass
class Diff:
    """What a pass has to do for one root."""

    to_hash: dict[str, Stat] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    """new relpath → old relpath, matched by inode (same size and mtime): no hashing."""
    revived: list[str] = field(default_factory=list)
    """Files whose deletion was held and that are back, unchanged."""
    unchanged: int = 0


def diff(
    current: Mapping[str, Stat],
    known: Mapping[str, StatRow],
    retry_due: set[str] | frozenset[str] = frozenset(),
    *,
    unchanged: int = 0,
) -> Diff:
    """Compare walked files with the journal's (relpath, size, mtime_ns, inode, state) rows.

    ``retry_due`` are files in the error state whose retry time has come: they
    are hashed again even though their stat is unchanged. ``known`` may lack the
    rows a pruning walk already matched (``unchanged`` of them).
    """
    d = Diff(unchanged=unchanged)
    to_hash = d.to_hash
    for rel, st in current.items():
        row = known.get(rel)
        if row is None or row[4] in GONE:
            to_hash[rel] = st
            continue
        state = row[4]
        same = row[1] == st[0] and row[2] == st[1] and row[3] == st[2]
        if same and state in IN_HUB:
            d.unchanged += 1
            if state == FileState.HELD:
                d.revived.append(rel)
            continue
        if same and rel not in retry_due and state not in WAITING:
            d.unchanged += 1
            continue
        to_hash[rel] = st
    for rel, row in known.items():
        if row[4] not in GONE and rel not in current:
            d.deleted.append(rel)
    if d.deleted and to_hash:
        d.renamed = pair_by_inode(d.deleted, to_hash, known)
    return d
