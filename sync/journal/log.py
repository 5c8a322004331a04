"""The history kept here: each file's versions, and the log of operations."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sync.journal.records import Logged, VersionRow
from sync.journal.rollups import JournalRollups
from sync.journal.store import JournalStore

UPLOAD = "upload"
DELETE = "delete"
MOVED = "moved"
"""The detail of a deletion that was the old name of a moved file."""


class LogJournal(JournalStore):
    def rollups(self) -> JournalRollups:
        """The analytics kept beside the history (see :mod:`sync.journal.rollups`)."""
        return JournalRollups(self._conn)

    def versions(self, root_id: str, relpath: str) -> list[VersionRow]:
        cur = self._conn.execute(
            """SELECT version, sha256, size, mtime_ns, deleted, remote_key, recorded_at
               FROM versions WHERE root_id=? AND relpath=? ORDER BY version""",
            (root_id, relpath),
        )
        return [VersionRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in cur]

    def log(
        self,
        kind: str,
        *,
        root_id: str | None = None,
        relpath: str | None = None,
        sha256: str | None = None,
        size: int = 0,
        detail: str | None = None,
        now: float | None = None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO operations(ts, kind, root_id, relpath, sha256, bytes, detail)"
            " VALUES(?, ?, ?, ?, ?, ?, ?)",
            (now or time.time(), kind, root_id, relpath, sha256, size, detail),
        )

    def log_many(
        self,
        rows: Iterable[Logged],
        now: float,
    ) -> None:
        self._conn.executemany(
            "INSERT INTO operations(ts, kind, root_id, relpath, sha256, bytes, detail)"
            " VALUES(?, ?, ?, ?, ?, ?, ?)",
            ((now, *r) for r in rows),
        )

    def recent_operations(self, limit: int = 50) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            "SELECT ts, kind, root_id, relpath, sha256, bytes, detail FROM operations"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("ts", "kind", "root_id", "relpath", "sha256", "bytes", "detail")
        return [dict(zip(keys, r, strict=True)) for r in cur]

    def recent_deletions(self, root_id: str, since: float) -> int:
        """Deletions of the folder logged since ``since``, but the old names of moved files
        (logged as deletions too, they removed nothing)."""
        return int(
            self._conn.execute(
                "SELECT count(*) FROM operations WHERE kind=? AND root_id=? AND ts >= ?"
                " AND detail IS NOT ?",
                (DELETE, root_id, since, MOVED),
            ).fetchone()[0]
        )
