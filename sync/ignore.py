"""What is never mirrored: built-in temp/lock-file patterns and ``.hubignore`` files.

``.hubignore`` uses gitignore syntax (pathspec) and applies to its own folder
and below, like ``.gitignore``. The built-in patterns only look at a file's
name, so they are folded into one regular expression: a rescan of 100k files
must not run dozens of regexes per file.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pathspec

IGNORE_FILE = ".hubignore"

DEFAULT_PATTERNS: tuple[str, ...] = (
    "~$*",  # Office lock files
    ".~lock.*#",  # LibreOffice lock files
    "*.swp",
    "*.swo",
    "*.swx",  # vim
    ".#*",  # emacs lock
    "*~",  # editor backups
    "*.part",
    "*.crdownload",
    "*.partial",
    "*.download",  # browsers
    "*.tmp",
    ".DS_Store",
    "._*",  # macOS resource forks
    "Thumbs.db",
    "desktop.ini",
    ".hubsync-*",  # our own temp files (restores, results)
)

_DEFAULT_NAME_RE = re.compile("|".join(fnmatch.translate(p) for p in DEFAULT_PATTERNS))


def is_default_ignored(name: str) -> bool:
    return _DEFAULT_NAME_RE.match(name) is not None


def _hints(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """Two searches that find, in NUL-framed names, every name a pattern may match: one
    for fixed starts (``\\0~$``, whole names ``\\0Thumbs.db\\0``), one, in the names
    reversed, for fixed ends (``.tmp`` is ``\\0pmt.``). None when a pattern has neither."""
    starts: list[str] = []
    ends: list[str] = []
    for pattern in patterns:
        first, star, _ = pattern.partition("*")
        if any(c in pattern for c in "?[\\") or pattern == "*":
            return None
        if not star:
            starts.append(pattern + "\0")
        elif first:
            starts.append(first)
        else:
            ends.append(pattern.rpartition("*")[2][::-1])

    def search(fixed: list[str]) -> re.Pattern[str]:
        # An empty list must match nothing: "(?!)" never does.
        return re.compile("\0(?:" + ("|".join(map(re.escape, fixed)) or "(?!)") + ")")

    return search(starts), search(ends)


_DEFAULT_HINTS = _hints(DEFAULT_PATTERNS)


def may_hold_default_ignored(framed: str) -> bool:
    """False when no name in ``framed`` ("\\0" + names joined by "\\0" + "\\0") can match
    a built-in pattern: two regex searches per folder instead of one per file."""
    if _DEFAULT_HINTS is None:
        return True
    starts, ends = _DEFAULT_HINTS
    return starts.search(framed) is not None or ends.search(framed[::-1]) is not None


@dataclass(frozen=True, slots=True)
class _Scoped:
    base: str  # relpath of the folder holding the .hubignore ("" for the root)
    spec: pathspec.GitIgnoreSpec


class IgnoreRules:
    """The rules in force inside one folder while walking a root."""

    __slots__ = ("_scoped",)

    def __init__(self, scoped: tuple[_Scoped, ...] = ()) -> None:
        self._scoped = scoped

    def enter(self, dir_path: Path, relpath: str) -> IgnoreRules:
        """The rules for a sub-folder: ours plus its own ``.hubignore``, if any."""
        try:
            text = (dir_path / IGNORE_FILE).read_text("utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return self
        spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
        return IgnoreRules((*self._scoped, _Scoped(relpath, spec)))

    @property
    def has_patterns(self) -> bool:
        """Whether any ``.hubignore`` is in force here (beyond the built-in patterns)."""
        return bool(self._scoped)

    def ignored(self, name: str, relpath: str, is_dir: bool) -> bool:
        if _DEFAULT_NAME_RE.match(name):
            return True
        for scoped in self._scoped:
            sub = relpath[len(scoped.base) + 1 :] if scoped.base else relpath
            if scoped.spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False


def root_rules(root: Path) -> IgnoreRules:
    return IgnoreRules().enter(root, "")
