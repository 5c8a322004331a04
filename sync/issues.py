"""One list of what is not in the hub, and why.

Errors (grouped by fingerprint, with attempts and next retry per file), items the
scan skips (links, special files, invalid names, paths too long, files the upload
policy refuses), held deletions, and, on demand, what an ignore rule excludes
(with the rule and the ``.hubignore`` holding it). Read from the journal only.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pathspec

from sync.ignore import DEFAULT_PATTERNS, IGNORE_FILE, is_default_ignored
from sync.journal import ErrorGroup, FileState, Journal, Root

_Scope = tuple[tuple[str, str, pathspec.GitIgnoreSpec], ...]
"""(folder relpath, .hubignore relpath, its rules) in force, outermost first."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One path that is not in the hub as it is."""

    root: str
    path: str
    category: str
    """``error``, ``skipped``, ``held`` or ``ignored``."""
    kind: str
    """Error kind (transient, local...), skip kind (symlink, special, invalid_name,
    path_too_long, too_large, type_not_allowed), ``deletion`` or ``rule``."""
    reason: str
    attempts: int = 0
    next_retry: float | None = None
    group: int | None = None
    rule: str | None = None
    rule_file: str | None = None


def group_json(g: ErrorGroup) -> dict[str, Any]:
    return asdict(g)


def list_issues(journal: Journal, *, with_ignored: bool = False) -> list[Issue]:
    """Every issue of every mirrored folder, folder by folder."""
    issues: list[Issue] = []
    for root in journal.roots():
        issues.extend(root_issues(journal, root))
        if with_ignored:
            issues.extend(ignored_items(root))
    return issues


def root_issues(journal: Journal, root: Root) -> list[Issue]:
    base = str(root.path)
    out: list[Issue] = []
    groups = journal.groups_of(root.id)
    for _, row in journal.problems(root.id):
        if row.state == FileState.ERROR:
            out.append(
                Issue(
                    base,
                    row.relpath,
                    "error",
                    row.error_kind or "error",
                    row.last_error or "failed",
                    row.attempts,
                    row.next_retry,
                    groups.get(row.relpath),
                )
            )
        elif row.state == FileState.HELD:
            out.append(
                Issue(
                    base,
                    row.relpath,
                    "held",
                    "deletion",
                    "deletion held: `hubsync sync --once --confirm-deletes` applies it",
                )
            )
    for rel in sorted(journal.failing_elsewhere(root.id)):
        group_id = groups.get(rel)
        group = journal.error_group(group_id) if group_id is not None else None
        if group is not None:
            out.append(Issue(base, rel, "error", group.kind, group.example, group=group.id))
    for item in journal.skipped(root.id):
        out.append(Issue(base, item.relpath, "skipped", item.kind, item.reason))
    return out


def ignored_items(root: Root) -> Iterator[Issue]:
    """What the ignore rules exclude below ``root``, each with the rule that does it and
    the file holding that rule (built-in patterns: ``(built-in)``)."""
    base = str(root.path)
    stack: list[tuple[Path, str, _Scope]] = [(root.path, "", ())]
    while stack:
        folder, rel, scoped = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        if any(e.name == IGNORE_FILE for e in entries):
            try:
                lines = (folder / IGNORE_FILE).read_text("utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            source = f"{rel}/{IGNORE_FILE}" if rel else IGNORE_FILE
            scoped = (*scoped, (rel, source, pathspec.GitIgnoreSpec.from_lines(lines)))
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            found = _rule_for(entry.name, path, is_dir, scoped)
            if found is not None:
                rule, source = found
                yield Issue(
                    base,
                    path,
                    "ignored",
                    "rule",
                    f"ignored by {rule!r} in {source}",
                    rule=rule,
                    rule_file=source,
                )
            elif is_dir:
                stack.append((Path(entry.path), path, scoped))


def _rule_for(name: str, path: str, is_dir: bool, scoped: _Scope) -> tuple[str, str] | None:
    """(rule, file holding it) of the rule that excludes ``path``; None if kept."""
    if is_default_ignored(name):
        for pattern in DEFAULT_PATTERNS:
            if fnmatch.fnmatchcase(name, pattern):
                return pattern, "(built-in)"
        return "(built-in)", "(built-in)"
    for base, source, spec in scoped:  # as IgnoreRules.ignored decides: any file's rules
        sub = path[len(base) + 1 :] if base else path
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is True and result.index is not None:
            return str(spec.patterns[result.index].pattern), source
    return None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def hub_error_row(device: str, g: ErrorGroup) -> dict[str, Any]:
    """A group as a ``hubsync_errors`` row (user_id is added by the hub)."""
    return {
        "device_id": device,
        "fingerprint": g.fingerprint,
        "kind": g.kind,
        "operation": g.operation,
        "message": g.message,
        "example": g.example,
        "occurrences": g.count,
        "open_files": g.open_files,
        "first_seen": _iso(g.first_seen),
        "last_seen": _iso(g.last_seen),
        "paths": g.paths,
        "state": g.state,
        "resolved_at": _iso(g.resolved_at),
        "diagnosis": g.diagnosis,
        "diagnosed_at": _iso(g.diagnosed_at),
    }
