"""Walking a root and comparing it with the journal.

The walk costs one ``lstat`` per file and nothing else; a file whose size,
mtime_ns and inode match the journal is not opened at all. Symlinks are never
followed (reported), and sockets, FIFOs and devices are skipped with a reason.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sync.ignore import IGNORE_FILE, IgnoreRules, is_default_ignored, root_rules
from sync.journal import DELETED, HELD, SYNCED, SYNCED_MARK, StatRow

Stat = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class WalkResult:
    files: dict[str, Stat] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """relpath → why it is not mirrored (symlink, special file, unreadable folder...)."""
    ignored: int = 0
    unchanged: int = 0
    """Files a pruning walk matched with the journal (not listed in ``files``)."""
    folders: int = 1
    """Folders walked, the root included."""


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


def walk(root: Path, prune: dict[str, StatRow] | None = None) -> WalkResult:
    """Every regular file below ``root`` that the ignore rules let through.

    With ``prune`` (the journal's rows, which the walk may change), a file found
    synced and unchanged is removed from ``prune`` and only counted in
    ``unchanged`` instead of being listed: a no-change rescan then builds
    nothing per file, and what is left in ``prune`` is changed or gone.
    """
    result = WalkResult()
    _walk_into(result, os.fspath(root), "", IgnoreRules(), prune)
    return result


def _walk_into(
    result: WalkResult,
    top: str,
    top_rel: str,
    top_rules: IgnoreRules,
    prune: dict[str, StatRow] | None = None,
) -> None:
    # The hot loop of every rescan: one lstat per file, local names, no calls for the
    # common case (a regular file with an ASCII name and no .hubignore in force).
    files = result.files
    known = prune if prune is not None else {}
    known_get = known.get
    unchanged = 0
    default_ignored = is_default_ignored
    is_reg = stat.S_ISREG
    stack: list[tuple[str, str, IgnoreRules]] = [(top, top_rel, top_rules)]
    while stack:
        dir_path, dir_rel, rules = stack.pop()
        prefix = dir_rel + "/" if dir_rel else ""
        try:
            with os.scandir(dir_path) as it:
                entries = list(it)
        except OSError as exc:
            result.skipped[dir_rel or "."] = f"folder cannot be read: {exc.strerror or exc}"
            continue
        # A folder's own .hubignore applies to it: seen in its listing, so folders
        # without one cost no extra open().
        if any(e.name == IGNORE_FILE for e in entries):
            rules = rules.enter(Path(dir_path), dir_rel)
        scoped = rules.has_patterns
        for entry in entries:
            name = entry.name
            rel = prefix + name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if rules.ignored(name, rel, True):
                        result.ignored += 1
                    elif not _valid_name(name):
                        result.skipped[rel] = "name is not valid UTF-8"
                    else:
                        result.folders += 1
                        stack.append((entry.path, rel, rules))
                    continue
                if default_ignored(name) or (scoped and rules.ignored(name, rel, False)):
                    result.ignored += 1
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                result.skipped[rel] = f"cannot be read: {exc.strerror or exc}"
                continue
            if is_reg(st.st_mode) and name.isascii():
                row = known_get(rel)
                if (
                    row is not None
                    and row[4] == SYNCED_MARK
                    and row[1] == st.st_size
                    and row[2] == st.st_mtime_ns
                    and row[3] == st.st_ino
                ):
                    del known[rel]
                    unchanged += 1
                else:
                    files[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
            else:
                _classify(result, rel, name, st)
    result.unchanged += unchanged


def _classify(result: WalkResult, rel: str, name: str, st: os.stat_result) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if _valid_name(name):
            result.files[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
        else:
            result.skipped[rel] = "name is not valid UTF-8"
    elif stat.S_ISLNK(mode):
        result.skipped[rel] = "skipped: symbolic link (links are not followed)"
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
        if row is None or row[4] == DELETED:
            to_hash[rel] = st
            continue
        state = SYNCED if row[4] == SYNCED_MARK else row[4]
        same = row[1] == st[0] and row[2] == st[1] and row[3] == st[2]
        if same and state in (SYNCED, HELD):
            d.unchanged += 1
            if state == HELD:
                d.revived.append(rel)
            continue
        if same and rel not in retry_due and state != "seen":
            d.unchanged += 1
            continue
        to_hash[rel] = st
    for rel, row in known.items():
        if row[4] != DELETED and rel not in current:  # SYNCED_MARK rows included
            d.deleted.append(rel)
    if d.deleted and to_hash:
        by_inode: dict[tuple[int, int, int], str] = {}
        for rel in d.deleted:
            row = known[rel]
            if row[4] in (SYNCED, SYNCED_MARK):
                by_inode[(row[3], row[1], row[2])] = rel
        for rel, st in to_hash.items():
            old = by_inode.pop((st[2], st[0], st[1]), None)
            if old is not None:
                d.renamed[rel] = old
    return d
