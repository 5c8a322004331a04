"""What is not in the hub and why: items the scan skips by design, and failures
grouped by fingerprint (a group's members are the paths it is failing on now)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sync.errors import shown_name
from sync.fingerprint import fingerprint
from sync.journal.records import ErrorGroup, Failure, Skipped
from sync.journal.states import FileState
from sync.journal.store import JournalStore

GROUP_PATHS = 100
"""Affected paths a group keeps (the most recent)."""

WHOLE_FOLDER = "."
"""The path a failure of a folder as a whole is kept under (its members are paths)."""

OPEN = "open"
RESOLVED = "resolved"
"""Its files synced (or went away): resolved by itself."""
RESOLVED_BY_USER = "resolved_by_user"

_GROUP_COLUMNS = (
    "id, fingerprint, kind, operation, message, example, count, first_seen, last_seen,"
    " paths, state, resolved_at, diagnosis, diagnosed_at,"
    " (SELECT count(*) FROM error_members m WHERE m.group_id = error_groups.id)"
)


def _group(row: Sequence[Any]) -> ErrorGroup:
    (gid, fp, kind, op, message, example, count, first, last, paths, state, *rest) = row
    resolved_at, diagnosis, diagnosed_at, open_files = rest
    return ErrorGroup(
        gid,
        fp,
        kind,
        op,
        message,
        example,
        count,
        first,
        last,
        json.loads(paths),
        state,
        resolved_at,
        diagnosis,
        diagnosed_at,
        open_files,
    )


class IssuesJournal(JournalStore):
    def set_skipped(
        self,
        root_id: str,
        skipped: Mapping[str, tuple[str, str]],
        now: float,
        scope: Sequence[str] | None = None,
    ) -> None:
        """What a walk skipped (relpath → (kind, reason)), replacing what the walk covered:
        the whole folder (``scope`` None) or ``scope``'s paths and everything below them.
        An item that went away or became syncable is no longer listed."""
        if not skipped and not self.has_skipped(root_id):
            return  # the common pass: nothing skipped before or now, no write
        with self.transaction():
            if scope is None:
                self._conn.execute("DELETE FROM skipped WHERE root_id=?", (root_id,))
            else:
                for path in scope:
                    self._conn.execute(
                        "DELETE FROM skipped WHERE root_id=? AND (relpath=?"
                        " OR (relpath >= ? AND relpath < ?))",
                        (root_id, path, path + "/", path + "0"),
                    )
            self._conn.executemany(
                "INSERT OR REPLACE INTO skipped(root_id, relpath, kind, reason, seen_at)"
                " VALUES(?, ?, ?, ?, ?)",
                (
                    (root_id, shown_name(rel), kind, why, now)  # (names that are not UTF-8)
                    for rel, (kind, why) in skipped.items()
                ),
            )

    def has_skipped(self, root_id: str) -> bool:
        found = self._conn.execute("SELECT 1 FROM skipped WHERE root_id=? LIMIT 1", (root_id,))
        return found.fetchone() is not None

    def has_failures(self, root_id: str) -> bool:
        found = self._conn.execute(
            "SELECT 1 FROM error_members WHERE root_id=? LIMIT 1", (root_id,)
        )
        return found.fetchone() is not None

    def skipped(self, root_id: str | None = None) -> list[Skipped]:
        """Every skipped item (of one folder, or of all)."""
        sql = "SELECT root_id, relpath, kind, reason, seen_at FROM skipped"
        args: tuple[str, ...] = ()
        if root_id is not None:
            sql += " WHERE root_id=?"
            args = (root_id,)
        return [Skipped(*r) for r in self._conn.execute(sql + " ORDER BY root_id, relpath", args)]

    def record_failures(self, root_id: str, failures: Iterable[Failure], now: float) -> None:
        """Count failures in their groups (made on first sight, reopened if resolved)
        and make each path a member of its group, leaving any group it was in before."""
        by_print: dict[str, tuple[str, list[Failure]]] = {}
        for f in failures:
            fp, norm = fingerprint(f.kind, f.message, f.operation)
            by_print.setdefault(fp, (norm, []))[1].append(f)
        if not by_print:
            return
        with self.transaction():
            for fp, (norm, group) in by_print.items():
                last = group[-1]
                row = self._conn.execute(
                    "SELECT id, paths FROM error_groups WHERE fingerprint=?", (fp,)
                ).fetchone()
                fresh = [f.relpath for f in group][-GROUP_PATHS:]
                if row is None:
                    group_id = self._conn.execute(
                        """INSERT INTO error_groups(fingerprint, kind, operation, message,
                             example, count, first_seen, last_seen, paths)
                           VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        (
                            fp,
                            last.kind,
                            last.operation,
                            norm,
                            last.message,
                            len(group),
                            now,
                            now,
                            json.dumps(fresh),
                        ),
                    ).lastrowid
                else:
                    group_id = row[0]
                    again = set(fresh)
                    kept = [p for p in json.loads(row[1]) if p not in again]
                    paths = (kept + fresh)[-GROUP_PATHS:]
                    self._conn.execute(  # failing again: open again, whoever resolved it
                        """UPDATE error_groups SET count=count+?, last_seen=?, example=?,
                             paths=?, mirrored=0, resolved_at=NULL, state=?
                           WHERE id=?""",
                        (len(group), now, last.message, json.dumps(paths), OPEN, group_id),
                    )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO error_members(root_id, relpath, group_id)"
                    " VALUES(?, ?, ?)",
                    ((root_id, f.relpath, group_id) for f in group),
                )
            self._resolve_settled(now)

    def settle_failures(
        self, root_id: str, relpaths: Iterable[str], now: float | None = None
    ) -> None:
        """These paths are fine now (synced, deleted, gone): they leave their groups, and
        a group with no path left resolves by itself."""
        if not self.has_failures(root_id):  # the common case: nothing to settle
            return
        cur = self._conn.executemany(
            "DELETE FROM error_members WHERE root_id=? AND relpath=?",
            ((root_id, p) for p in relpaths),
        )
        if cur.rowcount:
            self._resolve_settled(now or time.time())

    def _resolve_settled(self, now: float) -> None:
        self._conn.execute(
            """UPDATE error_groups SET state=?, resolved_at=?, mirrored=0
               WHERE state=? AND NOT EXISTS
                 (SELECT 1 FROM error_members m WHERE m.group_id = error_groups.id)""",
            (RESOLVED, now, OPEN),
        )

    def failing_elsewhere(self, root_id: str) -> set[str]:
        """Member paths of a folder that are no file rows in error: the folder itself
        (:data:`WHOLE_FOLDER`), folders that could not be read."""
        cur = self._conn.execute(
            """SELECT relpath FROM error_members m WHERE root_id=? AND NOT EXISTS
                 (SELECT 1 FROM files f WHERE f.root_id=m.root_id AND f.relpath=m.relpath)""",
            (root_id,),
        )
        return {r[0] for r in cur}

    def error_groups(self, state: str | None = None) -> list[ErrorGroup]:
        sql = f"SELECT {_GROUP_COLUMNS} FROM error_groups"
        args: tuple[str, ...] = ()
        if state is not None:
            sql += " WHERE state=?"
            args = (state,)
        return [_group(r) for r in self._conn.execute(sql + " ORDER BY last_seen DESC", args)]

    def error_group(self, group_id: int) -> ErrorGroup | None:
        row = self._conn.execute(
            f"SELECT {_GROUP_COLUMNS} FROM error_groups WHERE id=?", (group_id,)
        ).fetchone()
        return None if row is None else _group(row)

    def groups_of(self, root_id: str) -> dict[str, int]:
        """relpath → error group of every path of a folder failing now."""
        cur = self._conn.execute(
            "SELECT relpath, group_id FROM error_members WHERE root_id=?", (root_id,)
        )
        return {r[0]: int(r[1]) for r in cur}

    def resolve_group(self, group_id: int, now: float) -> bool:
        """The user says the group is dealt with; a new failure of its kind reopens it."""
        with self.transaction():
            return bool(
                self._conn.execute(
                    "UPDATE error_groups SET state=?, resolved_at=?, mirrored=0 WHERE id=?",
                    (RESOLVED_BY_USER, now, group_id),
                ).rowcount
            )

    def store_diagnosis(self, group_id: int, diagnosis: str, now: float) -> None:
        with self.transaction():
            self._conn.execute(
                "UPDATE error_groups SET diagnosis=?, diagnosed_at=?, mirrored=0 WHERE id=?",
                (diagnosis, now, group_id),
            )

    def groups_to_mirror(self) -> list[ErrorGroup]:
        """Groups changed since they were last written to the hub."""
        cur = self._conn.execute(f"SELECT {_GROUP_COLUMNS} FROM error_groups WHERE mirrored=0")
        return [_group(r) for r in cur]

    def mark_mirrored(self, groups: Iterable[ErrorGroup]) -> None:
        """Written to the hub as they were: a group changed since stays to be written."""
        with self.transaction():
            self._conn.executemany(
                "UPDATE error_groups SET mirrored=1 WHERE id=? AND count=? AND state=?"
                " AND last_seen=? AND diagnosed_at IS ?",
                ((g.id, g.count, g.state, g.last_seen, g.diagnosed_at) for g in groups),
            )

    def retry_group(self, group_id: int) -> int:
        """Files of the group are tried again on the next pass, at once; returns how many."""
        with self.transaction():
            return self._conn.execute(
                """UPDATE files SET next_retry=NULL WHERE state=? AND EXISTS
                     (SELECT 1 FROM error_members m WHERE m.group_id=? AND m.root_id=files.root_id
                       AND m.relpath=files.relpath)""",
                (FileState.ERROR, group_id),
            ).rowcount
