"""File rows: what the journal knows of each mirrored file, and every change of its
state (the moves :mod:`sync.journal.states` allows, checked by triggers)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from sync.journal.issues import IssuesJournal
from sync.journal.records import (
    FILE_COLUMNS,
    DiskStat,
    FileRow,
    FileStat,
    Recording,
    SyncedFile,
    Tombstone,
    file_row,
)
from sync.journal.stat_index import StatIndex, StatRow
from sync.journal.stat_snapshot import load as load_snapshot
from sync.journal.stat_snapshot import save as write_snapshot
from sync.journal.states import GONE, FileState
from sync.journal.store import log

_S = FileState
_BATCH = 500
"""Paths per look-up (SQLite's limit on parameters is far above)."""
_BY_STATE = "INDEXED BY files_state"
"""For the rows of a rare state (errors, held deletions): without statistics SQLite
picks the primary key and reads every row of the folder (~20 ms at 100k files), which
the agent's scheduler did on each wake-up while idle."""


def _marks(states: Collection[FileState]) -> str:
    return ",".join("?" * len(states))


class FilesJournal(IssuesJournal):
    # -- reading ------------------------------------------------------------------------

    def files(self, root_id: str) -> dict[str, FileRow]:
        cur = self._conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE root_id=?", (root_id,))
        return {r[0]: file_row(r) for r in cur}

    def file(self, root_id: str, relpath: str) -> FileRow | None:
        row = self._conn.execute(
            f"SELECT {FILE_COLUMNS} FROM files WHERE root_id=? AND relpath=?", (root_id, relpath)
        ).fetchone()
        return None if row is None else file_row(row)

    def files_for(self, root_id: str, relpaths: Iterable[str]) -> dict[str, FileRow]:
        """Full rows of some files (batched look-ups)."""
        wanted = list(relpaths)
        out: dict[str, FileRow] = {}
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            cur = self._conn.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE root_id=? AND relpath IN ({marks})",
                (root_id, *chunk),
            )
            out.update((r[0], file_row(r)) for r in cur)
        return out

    def error_rows(self, root_id: str) -> dict[str, FileRow]:
        cur = self._conn.execute(
            f"SELECT {FILE_COLUMNS} FROM files {_BY_STATE} WHERE root_id=? AND state=?",
            (root_id, _S.ERROR),
        )
        return {r[0]: file_row(r) for r in cur}

    def count_states(self, root_id: str | None = None) -> dict[str, int]:
        """Files by state, as they are shown (see :attr:`FileState.shown_as`)."""
        if root_id is None:
            cur = self._conn.execute("SELECT state, count(*) FROM files GROUP BY state")
        else:
            cur = self._conn.execute(
                "SELECT state, count(*) FROM files WHERE root_id=? GROUP BY state", (root_id,)
            )
        counts: dict[str, int] = {}
        for state, n in cur:
            shown = FileState(state).shown_as.value
            counts[shown] = counts.get(shown, 0) + n
        return counts

    def tracked_count(self, root_id: str) -> int:
        """Files mirrored now, in any state but gone."""
        return int(
            self._conn.execute(
                f"SELECT count(*) FROM files WHERE root_id=? AND state NOT IN ({_marks(GONE)})",
                (root_id, *GONE),
            ).fetchone()[0]
        )

    def synced_hashes(self, root_id: str, *, besides: Collection[str] = ()) -> set[str]:
        """The hashes of the folder's synced files, but for the paths ``besides``."""
        cur = self._conn.execute(
            "SELECT relpath, sha256 FROM files WHERE root_id=? AND state=?", (root_id, _S.SYNCED)
        )
        return {sha for rel, sha in cur if rel not in besides}

    def problems(self, root_id: str | None = None) -> list[tuple[str, FileRow]]:
        """(root id, row) of files not in the hub as they are: errors, held deletions,
        unsynced."""
        fine = (_S.SYNCED, *GONE)
        sql = f"SELECT root_id, {FILE_COLUMNS} FROM files WHERE state NOT IN ({_marks(fine)})"
        args: list[object] = [*fine]
        if root_id is not None:
            sql += " AND root_id=?"
            args.append(root_id)
        cur = self._conn.execute(sql + " ORDER BY relpath", args)
        return [(r[0], file_row(r[1:])) for r in cur]

    def held(self, root_id: str, limit: int = -1) -> list[str]:
        """Files whose deletion is held for the user to confirm (or undo)."""
        cur = self._conn.execute(
            f"SELECT relpath FROM files {_BY_STATE} WHERE root_id=? AND state=? ORDER BY relpath LIMIT ?",
            (root_id, _S.HELD, limit),
        )
        return [r[0] for r in cur]

    def held_since(self, root_id: str, since: float) -> bool:
        """Whether a deletion in the folder was held at or after ``since``."""
        found = self._conn.execute(
            f"SELECT 1 FROM files {_BY_STATE} WHERE root_id=? AND state=? AND held_at >= ? LIMIT 1",
            (root_id, _S.HELD, since),
        ).fetchone()
        return found is not None

    def deleted_under(self, root_id: str, prefix: str) -> list[str]:
        """Paths at or below ``prefix`` deleted locally: gone, or held as a deletion that
        looks like an accident (for restoring a deleted folder)."""
        states = (*sorted(GONE), _S.HELD)
        sql = f"SELECT relpath FROM files WHERE root_id=? AND state IN ({_marks(states)})"
        if prefix in ("", "."):  # the mirrored folder itself
            cur = self._conn.execute(sql + " ORDER BY relpath", (root_id, *states))
            return [r[0] for r in cur]
        like = prefix.rstrip("/") + "/%"
        cur = self._conn.execute(
            sql + " AND (relpath=? OR relpath LIKE ?) ORDER BY relpath",
            (root_id, *states, prefix, like),
        )
        return [r[0] for r in cur]

    def retries_due(self, root_id: str, now: float) -> list[str]:
        """Files in error whose retry time has come (none set: the user asked to retry now)."""
        cur = self._conn.execute(
            f"SELECT relpath FROM files {_BY_STATE} WHERE root_id=? AND state=?"
            " AND (next_retry IS NULL OR next_retry <= ?)",
            (root_id, _S.ERROR, now),
        )
        return [r[0] for r in cur]

    def next_retry(self, root_id: str) -> float | None:
        """When the folder's first file in error is due to be tried again."""
        row = self._conn.execute(
            f"SELECT min(next_retry) FROM files {_BY_STATE} WHERE root_id=? AND state=?",
            (root_id, _S.ERROR),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # -- the stat index -------------------------------------------------------------------

    def close(self) -> None:
        """Close, leaving a snapshot of the stat indexes for the next run's first rescan."""
        try:
            self.save_snapshot()
        finally:
            self._conn.close()

    def save_snapshot(self) -> None:
        """Write the stat snapshot if it is out of date (close does; an agent also does
        while idle, so that a crash leaves a current one)."""
        try:
            self._save_snapshot()
        except Exception:  # only a cache: the next first rescan reads SQLite instead
            log.debug("no stat snapshot written", exc_info=True)

    def _save_snapshot(self) -> None:
        """For a process that rescanned (the agent; not a one-off CLI command)."""
        generation = self._files_generation()
        if not self._stat_cache or generation == self._snapshot_generation:
            return  # nothing to offer, or the snapshot on disk is still current
        indexes = {}
        root_ids = [r[0] for r in self._conn.execute("SELECT id FROM roots ORDER BY path")]
        for root_id in root_ids:
            cached = self._stat_cache.get(root_id)
            if cached is not None and cached[0] == generation:
                indexes[root_id] = cached[1]
            else:
                indexes[root_id] = self._load_stat_index(root_id)
        write_snapshot(self._snapshot_path, generation, indexes)
        if not self._conn.in_transaction:  # a rollback would give its generation back
            # Current now: an idle agent's next housekeeping neither reads nor writes again.
            self._snapshot_generation = generation
            self._stat_cache.update((rid, (generation, i)) for rid, i in indexes.items())

    def stat_index(self, root_id: str) -> StatIndex:
        """What a rescan compares the tree with (see :class:`StatIndex`); do not change it.

        Kept between calls while no file row changed (the generation, bumped by a
        trigger, covers writes by any connection): a periodic rescan of an unchanged
        tree reads nothing from SQLite.
        """
        generation = self._files_generation()
        cached = self._stat_cache.get(root_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        index = self._snapshot_index(root_id, generation)
        if index is None:
            index = self._load_stat_index(root_id)
        if not self._conn.in_transaction:  # a rollback would give its generation back
            self._stat_cache[root_id] = (generation, index)
        return index

    def _snapshot_index(self, root_id: str, generation: int) -> StatIndex | None:
        """The snapshot read at opening, while current: it fills the cache of every root."""
        if self._snapshot is None:
            return None
        indexes = load_snapshot(self._snapshot, generation)
        self._snapshot = None
        for rid, index in (indexes or {}).items():
            self._stat_cache[rid] = (generation, index)
        return None if indexes is None else indexes.get(root_id)

    def _load_stat_index(self, root_id: str) -> StatIndex:
        rows = self._conn.execute(
            "SELECT relpath, size, mtime_ns, inode, state FROM files WHERE root_id=?"
            " ORDER BY relpath",
            (root_id,),
        )
        return StatIndex.from_rows(rows)

    def stat_index_under(self, root_id: str, paths: Iterable[str]) -> dict[str, StatRow]:
        """Like :meth:`stat_index`, for some paths and everything below them (index range scans)."""
        out: dict[str, StatRow] = {}
        sql = "SELECT relpath, size, mtime_ns, inode, state FROM files WHERE root_id=? AND "
        for path in paths:
            exact = self._conn.execute(sql + "relpath=?", (root_id, path))
            # Everything below "dir/": the keys from "dir/" up to "dir0" ("0" follows "/").
            below = self._conn.execute(
                sql + "relpath >= ? AND relpath < ?", (root_id, path + "/", path + "0")
            )
            for cur in (exact, below):
                out.update((r[0], (*r[:4], FileState(r[4]))) for r in cur)
        return out

    # -- changes of state -----------------------------------------------------------------

    def mark_seen(self, root_id: str, items: Iterable[FileStat]) -> None:
        """New or changed files waiting to be hashed.

        A file tried again as it was keeps its count of attempts (its next failure
        waits longer); one that changed starts over."""
        self._change_states(
            """INSERT INTO files(root_id, relpath, size, mtime_ns, inode, state)
               VALUES(?, ?, ?, ?, ?, ?)
               ON CONFLICT(root_id, relpath) DO UPDATE SET size=excluded.size,
                 mtime_ns=excluded.mtime_ns, inode=excluded.inode, state=excluded.state,
                 error_kind=NULL, last_error=NULL, next_retry=NULL,
                 attempts=CASE WHEN size=excluded.size AND mtime_ns=excluded.mtime_ns
                   AND inode=excluded.inode THEN attempts ELSE 0 END""",
            ((root_id, *item, _S.SEEN) for item in items),
        )

    def mark_recording(self, root_id: str, items: Iterable[Recording]) -> None:
        """Files about to be recorded in the hub (those still seen): from now on their
        deletion leaves a tombstone, whether or not the hub got the row."""
        self._change_states(
            """UPDATE files SET sha256=?, version=?, remote_key=?, state=?
               WHERE root_id=? AND relpath=? AND state=?""",
            (
                (i.sha256, i.version, i.key, _S.RECORDING, root_id, i.relpath, _S.SEEN)
                for i in items
            ),
        )

    def mark_synced(self, root_id: str, items: Sequence[SyncedFile], now: float) -> None:
        """Files whose version the hub recorded (plain tuples in that order do too)."""
        items = [i if type(i) is SyncedFile else SyncedFile._make(i) for i in items]
        self._change_states(
            """INSERT INTO files(root_id, relpath, size, mtime_ns, inode, sha256, state,
                 version, remote_key, synced_at)
               VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(root_id, relpath) DO UPDATE SET size=excluded.size,
                 mtime_ns=excluded.mtime_ns, inode=excluded.inode, sha256=excluded.sha256,
                 state=excluded.state, version=excluded.version, remote_key=excluded.remote_key,
                 synced_at=excluded.synced_at, error_kind=NULL, last_error=NULL, attempts=0,
                 next_retry=NULL""",
            ((root_id, *i[:5], _S.SYNCED, i.version, i.key, now) for i in items),
        )
        self._conn.executemany(
            """INSERT OR REPLACE INTO versions(root_id, relpath, version, sha256, size, mtime_ns,
                 deleted, remote_key, recorded_at) VALUES(?, ?, ?, ?, ?, ?, 0, ?, ?)""",
            (
                (root_id, i.relpath, i.version, i.sha256, i.size, i.mtime_ns, i.key, now)
                for i in items
            ),
        )
        self.settle_failures(root_id, (i[0] for i in items), now)

    def mark_error(
        self, root_id: str, relpath: str, kind: str, message: str, retry_in: float, now: float
    ) -> None:
        self._change_states(
            """UPDATE files SET state=?, error_kind=?, last_error=?,
                 attempts=attempts+1, next_retry=? WHERE root_id=? AND relpath=?""",
            [(_S.ERROR, kind, message, now + retry_in, root_id, relpath)],
        )

    def revive_held(self, root_id: str, relpaths: Iterable[str]) -> None:
        """Held deletions of files that are back as they were: synced again."""
        with self.transaction():
            self._change_states(
                "UPDATE files SET state=? WHERE root_id=? AND relpath=? AND state=?",
                ((_S.SYNCED, root_id, rel, _S.HELD) for rel in relpaths),
            )

    def mark_held(self, root_id: str, relpaths: Iterable[str], now: float) -> None:
        """Hold these deletions; ``held_at`` keeps the time a file was first held."""
        self._change_states(
            f"""UPDATE files SET held_at = CASE WHEN state=? THEN held_at ELSE ? END, state=?
               WHERE root_id=? AND relpath=? AND state NOT IN ({_marks(GONE)})""",
            ((_S.HELD, now, _S.HELD, root_id, p, *GONE) for p in relpaths),
        )

    def mark_deleted(self, root_id: str, items: Sequence[Tombstone], now: float) -> None:
        """Tombstones the hub recorded."""
        self._change_states(
            """UPDATE files SET state=?, version=?, synced_at=?, error_kind=NULL,
                 last_error=NULL, attempts=0, next_retry=NULL WHERE root_id=? AND relpath=?""",
            ((_S.DELETED, i[1], now, root_id, i[0]) for i in items),
        )
        self._conn.executemany(
            """INSERT OR REPLACE INTO versions(root_id, relpath, version, sha256, size, mtime_ns,
                 deleted, remote_key, recorded_at) VALUES(?, ?, ?, ?, ?, ?, 1, ?, ?)""",
            ((root_id, *i, now) for i in items),
        )
        self.settle_failures(root_id, (i[0] for i in items), now)

    def mark_unmirrored(self, root_id: str, relpaths: Iterable[str]) -> None:
        """Still there but no longer mirrored: the hub keeps them as they were."""
        self._mark_gone(root_id, {rel: _S.UNMIRRORED for rel in relpaths})

    def mark_gone_again(self, root_id: str, was: dict[str, FileState]) -> None:
        """Back for a moment at a path that was gone (``was``: how), and gone again."""
        self._mark_gone(root_id, was)

    def _mark_gone(self, root_id: str, states: dict[str, FileState]) -> None:
        self._change_states(
            "UPDATE files SET state=? WHERE root_id=? AND relpath=?",
            ((state, root_id, rel) for rel, state in states.items()),
        )
        self.settle_failures(root_id, states)

    def mark_restored(self, root_id: str, relpath: str, stat: DiskStat, version: int) -> None:
        """A version restored in place: the file is that version again, synced as it is
        (no upload, no new version)."""
        self._change_states(
            """UPDATE files SET state=?, size=?, mtime_ns=?, inode=?, held_at=NULL,
                 version=?, error_kind=NULL, last_error=NULL, attempts=0, next_retry=NULL
               WHERE root_id=? AND relpath=?""",
            [(_S.SYNCED, *stat, version, root_id, relpath)],
        )
        self.settle_failures(root_id, [relpath])

    def forget(self, root_id: str, relpaths: Iterable[str]) -> None:
        """Drop rows of files that vanished before they were ever recorded in the hub."""
        gone = list(relpaths)
        self._conn.executemany(
            "DELETE FROM files WHERE root_id=? AND relpath=?", ((root_id, p) for p in gone)
        )
        self.settle_failures(root_id, gone)

    def retry_now(self, root_id: str | None = None) -> int:
        sql = "UPDATE files SET next_retry=NULL WHERE state=?"
        args: tuple[str, ...] = (_S.ERROR,)
        if root_id is not None:
            sql += " AND root_id=?"
            args = (*args, root_id)
        return self._conn.execute(sql, args).rowcount
