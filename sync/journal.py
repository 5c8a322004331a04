"""The local SQLite journal: what HubSync knows about every mirrored file.

One writer connection, owned by the engine; WAL with ``synchronous=NORMAL``.
Changes are grouped into transactions per batch (never one fsync per file), and
every batch is applied after the hub accepted it, so a crash anywhere leaves a
journal that the next pass repairs by repeating idempotent steps.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from sync import journal_rollups, stat_snapshot
from sync.errors import UndecodableName, shown_name
from sync.fingerprint import fingerprint
from sync.stat_index import SYNCED_MARK, StatIndex, StatRow

SCHEMA_VERSION = 5

log = logging.getLogger("hubsync.journal")

# File states, in the order of a file's life.
SEEN = "seen"
SYNCED = "synced"
ERROR = "error"
DELETED = "deleted"
HELD = "held"  # a deletion waiting for --confirm-deletes


@dataclass(frozen=True, slots=True)
class Root:
    id: str
    path: Path
    hub: str
    paused: bool
    degraded: str | None


@dataclass(frozen=True, slots=True)
class FileRow:
    relpath: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    state: str
    version: int
    remote_key: str | None
    error_kind: str | None
    last_error: str | None
    attempts: int
    next_retry: float | None


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: int
    sha256: str
    size: int
    mtime_ns: int
    deleted: bool
    remote_key: str
    recorded_at: float


VersionedRow = tuple[str, int, str, int, int, bool, str, float]
"""(relpath, version, sha256, size, mtime_ns, deleted, remote_key, recorded_at)."""

_FILE_COLUMNS = (
    "relpath, size, mtime_ns, inode, sha256, state, version, remote_key,"
    " error_kind, last_error, attempts, next_retry"
)


def _migrate_v1(db: sqlite_utils.Database) -> None:
    db["roots"].create(  # type: ignore[union-attr]
        {"id": str, "path": str, "hub": str, "added_at": float, "paused": int, "degraded": str},
        pk="id",
        not_null={"path", "hub"},
        defaults={"paused": 0},
    )
    db["roots"].create_index(["path"], unique=True)  # type: ignore[union-attr]
    db.execute(
        """CREATE TABLE files (
            root_id TEXT NOT NULL, relpath TEXT NOT NULL,
            size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
            sha256 TEXT, state TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0,
            remote_key TEXT, error_kind TEXT, last_error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, next_retry REAL, synced_at REAL,
            PRIMARY KEY (root_id, relpath)) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX files_state ON files(root_id, state)")
    db.execute(
        """CREATE TABLE blobs (
            hub TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
            remote_key TEXT NOT NULL, PRIMARY KEY (hub, sha256)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE versions (
            root_id TEXT NOT NULL, relpath TEXT NOT NULL, version INTEGER NOT NULL,
            sha256 TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            deleted INTEGER NOT NULL, remote_key TEXT NOT NULL, recorded_at REAL NOT NULL,
            PRIMARY KEY (root_id, relpath, version)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE operations (
            id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL,
            root_id TEXT, relpath TEXT, sha256 TEXT, bytes INTEGER NOT NULL DEFAULT 0,
            detail TEXT)"""
    )
    db.execute("CREATE INDEX operations_ts ON operations(ts)")
    db.execute("CREATE TABLE resume (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("CREATE TABLE metrics (ts REAL NOT NULL, name TEXT NOT NULL, value REAL NOT NULL)")
    db.execute("CREATE INDEX metrics_name_ts ON metrics(name, ts)")


def _migrate_v2(db: sqlite_utils.Database) -> None:
    """A generation number every change of a file row bumps, whichever connection (or
    process) makes it: what a cached stat index is checked against."""
    db.execute("CREATE TABLE files_generation (n INTEGER NOT NULL)")
    db.execute("INSERT INTO files_generation VALUES (0)")
    for event in ("INSERT", "UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER files_{event.lower()}_generation AFTER {event} ON files"
            " BEGIN UPDATE files_generation SET n = n + 1; END"
        )


def _migrate_v3(db: sqlite_utils.Database) -> None:
    """When a deletion was held: later deletions join a hold only while it is recent."""
    db.execute("ALTER TABLE files ADD COLUMN held_at REAL")


def _migrate_v4(db: sqlite_utils.Database) -> None:
    """What is not in the hub and why: items the scan skips, and failures grouped by
    fingerprint (``error_members``: the files a group's failure is on now)."""
    db.execute(
        """CREATE TABLE skipped (
            root_id TEXT NOT NULL, relpath TEXT NOT NULL, kind TEXT NOT NULL,
            reason TEXT NOT NULL, seen_at REAL NOT NULL,
            PRIMARY KEY (root_id, relpath)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE error_groups (
            id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            operation TEXT NOT NULL, message TEXT NOT NULL, example TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
            paths TEXT NOT NULL DEFAULT '[]', state TEXT NOT NULL DEFAULT 'open',
            resolved_at REAL, diagnosis TEXT, diagnosed_at REAL,
            mirrored INTEGER NOT NULL DEFAULT 0)"""
    )
    db.execute(
        """CREATE TABLE error_members (
            root_id TEXT NOT NULL, relpath TEXT NOT NULL, group_id INTEGER NOT NULL,
            PRIMARY KEY (root_id, relpath)) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX error_members_group ON error_members(group_id)")


_MIGRATIONS = {
    1: _migrate_v1,
    2: _migrate_v2,
    3: _migrate_v3,
    4: _migrate_v4,
    5: journal_rollups.create_schema,
}

GROUP_PATHS = 100
"""Affected paths a group keeps (the most recent)."""

OPEN = "open"
RESOLVED = "resolved"
"""Its files synced (or went away): resolved by itself."""
RESOLVED_BY_USER = "resolved_by_user"


@dataclass(frozen=True, slots=True)
class Failure:
    """One failure of one path (``"."`` for the folder as a whole)."""

    relpath: str
    kind: str
    message: str
    operation: str


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    id: int
    fingerprint: str
    kind: str
    operation: str
    message: str
    example: str
    count: int
    first_seen: float
    last_seen: float
    paths: list[str]
    state: str
    resolved_at: float | None
    diagnosis: str | None
    diagnosed_at: float | None
    open_files: int


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


def _check_decodable(path: Path) -> None:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise UndecodableName(path) from None


class Journal:
    """All reads and writes of the journal go through here."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA temp_store=MEMORY")
        self._in_tx = False
        self._lock = threading.RLock()
        self._stat_cache: dict[str, tuple[int, StatIndex]] = {}
        self._migrate()
        self._snapshot_path = path.with_name(path.name + ".stat")
        generation = self._files_generation()
        self._snapshot = stat_snapshot.read(self._snapshot_path, generation)
        self._snapshot_generation = None if self._snapshot is None else generation

    # -- plumbing -----------------------------------------------------------------

    def _migrate(self) -> None:
        with self.transaction():
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            current = int(self.get_meta("schema_version") or 0)
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"journal {self.path} has schema {current}, newer than this HubSync "
                    f"({SCHEMA_VERSION}); upgrade HubSync"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[version](self.db)
                self.set_meta("schema_version", str(version))
            if self.get_meta("device_id") is None:
                self.set_meta("device_id", self._kept_device_id() or uuid.uuid4().hex)
        self._keep_device_id()

    @property
    def _device_file(self) -> Path:
        """The device's id kept beside the journal: a journal moved aside (the advised
        recovery) and made anew is still this device, whose history the hub keeps."""
        return self.path.with_name(self.path.name + ".device")

    def _kept_device_id(self) -> str | None:
        try:
            text = self._device_file.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if len(text) == 32 and text.isalnum() else None

    def _keep_device_id(self) -> None:
        if self._kept_device_id() != self.get_meta("device_id"):
            try:
                self._device_file.write_text(f"{self.get_meta('device_id')}\n", "ascii")
            except OSError:
                log.warning("could not keep the device id beside %s", self.path)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit; nested calls join the outer transaction.

        Never hold one across an ``await``: the lock only guards against the
        few calls made from worker threads (resumable-upload state).
        """
        with self._lock:
            if self._in_tx:
                yield
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (the disk is full) leaves the transaction open: roll it
                # back, so that the journal stays as it was and the next one can begin.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            finally:
                self._in_tx = False

    def close(self) -> None:
        """Close, leaving a snapshot of the stat indexes for the next run's first rescan."""
        try:
            self.save_snapshot()
        finally:
            self.conn.close()

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
        for root in self.roots():
            cached = self._stat_cache.get(root.id)
            if cached is not None and cached[0] == generation:
                indexes[root.id] = cached[1]
            else:
                indexes[root.id] = self._load_stat_index(root.id)
        stat_snapshot.save(self._snapshot_path, generation, indexes)

    def _files_generation(self) -> int:
        return int(self.conn.execute("SELECT n FROM files_generation").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    @property
    def device_id(self) -> str:
        value = self.get_meta("device_id")
        assert value is not None
        return value

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- roots ----------------------------------------------------------------------

    def add_root(self, path: Path, hub: str, *, hub_asked: bool = False) -> Root:
        """Mirror ``path`` to ``hub``; a folder mirrored already stays as it is, unless
        ``hub_asked`` (the user named the hub) and it goes to another one: ValueError."""
        resolved = path.resolve()
        _check_decodable(resolved)
        existing = self.root_by_path(resolved)
        if existing is not None:
            if hub_asked and existing.hub != hub:
                raise ValueError(
                    f"{resolved} is mirrored to the {existing.hub} hub already; "
                    f"remove it first to mirror it to the {hub} hub"
                )
            return existing
        for other in self.roots():
            if resolved.is_relative_to(other.path) or other.path.is_relative_to(resolved):
                raise ValueError(f"{resolved} overlaps the mirrored folder {other.path}")
        root = Root(uuid.uuid4().hex, resolved, hub, False, None)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO roots(id, path, hub, added_at, paused) VALUES(?, ?, ?, ?, 0)",
                (root.id, str(resolved), hub, time.time()),
            )
        return root

    def reattach(self, root: Root, old_id: str, hub: str, rows: Sequence[VersionedRow]) -> Root:
        """``root`` (just added, nothing synced yet) is the folder this device mirrored
        before as ``old_id``: it takes that id back with the history the hub has
        (``rows``, every recorded version), its files as the newest versions say."""
        latest: dict[str, VersionedRow] = {}
        for r in rows:
            if r[0] not in latest or r[1] > latest[r[0]][1]:
                latest[r[0]] = r
        with self.transaction():
            self.conn.execute("DELETE FROM files WHERE root_id=?", (old_id,))
            self.conn.execute("DELETE FROM versions WHERE root_id=?", (old_id,))
            self.conn.execute("UPDATE roots SET id=? WHERE id=?", (old_id, root.id))
            self.conn.executemany(
                """INSERT OR REPLACE INTO versions(root_id, relpath, version, sha256, size,
                     mtime_ns, deleted, remote_key, recorded_at) VALUES(?,?,?,?,?,?,?,?,?)""",
                ((old_id, *r) for r in rows),
            )
            self.conn.executemany(
                """INSERT INTO files(root_id, relpath, size, mtime_ns, inode, sha256, state,
                     version, remote_key, synced_at) VALUES(?, ?, ?, ?, 0, ?, ?, ?, ?, ?)""",
                (
                    (old_id, r[0], r[3], r[4], r[2], DELETED if r[5] else SYNCED, r[1], r[6], r[7])
                    for r in latest.values()
                ),
            )
            self.add_blobs(hub, {(r[2], r[3], r[6]) for r in rows})
        self._stat_cache.pop(root.id, None)
        return Root(old_id, root.path, root.hub, root.paused, root.degraded)

    def remove_root(self, root_id: str) -> None:
        """Forget a folder locally; its versions stay in the hub."""
        self._stat_cache.pop(root_id, None)
        with self.transaction():
            for table in ("files", "versions", "skipped", "error_members"):
                self.conn.execute(f"DELETE FROM {table} WHERE root_id=?", (root_id,))
            self.conn.execute("DELETE FROM roots WHERE id=?", (root_id,))
            self._resolve_settled(time.time())

    def roots(self) -> list[Root]:
        rows = self.conn.execute(
            "SELECT id, path, hub, paused, degraded FROM roots ORDER BY path"
        ).fetchall()
        return [Root(r[0], Path(r[1]), r[2], bool(r[3]), r[4]) for r in rows]

    def root_by_path(self, path: Path) -> Root | None:
        for root in self.roots():
            if root.path == path:
                return root
        return None

    def root_for(self, path: Path) -> tuple[Root, str] | None:
        """The root holding ``path`` and the path's relative form inside it.

        ``..`` is folded first; a path reaching a root through a symbolic link (or
        /tmp for /private/tmp on macOS) is then tried with its links resolved.
        Raises :class:`UndecodableName` for a name that is not valid UTF-8.
        """
        _check_decodable(path)
        roots = self.roots()
        normal = Path(os.path.abspath(path))
        for candidate in (normal, normal.resolve()):
            for root in roots:
                if candidate == root.path or candidate.is_relative_to(root.path):
                    return root, candidate.relative_to(root.path).as_posix()
        return None

    def set_root_flags(
        self, root_id: str, *, paused: bool | None = None, degraded: str | bool | None = False
    ) -> None:
        with self.transaction():
            if paused is not None:
                self.conn.execute("UPDATE roots SET paused=? WHERE id=?", (int(paused), root_id))
            if degraded is not False:
                self.conn.execute("UPDATE roots SET degraded=? WHERE id=?", (degraded, root_id))

    # -- files ------------------------------------------------------------------------

    def files(self, root_id: str) -> dict[str, FileRow]:
        cur = self.conn.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE root_id=?", (root_id,))
        return {r[0]: FileRow(*r) for r in cur}

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
        if not self.conn.in_transaction:  # a rollback would give its generation back
            self._stat_cache[root_id] = (generation, index)
        return index

    def _snapshot_index(self, root_id: str, generation: int) -> StatIndex | None:
        """The snapshot read at opening, while current: it fills the cache of every root."""
        if self._snapshot is None:
            return None
        indexes = stat_snapshot.load(self._snapshot, generation)
        self._snapshot = None
        for rid, index in (indexes or {}).items():
            self._stat_cache[rid] = (generation, index)
        return None if indexes is None else indexes.get(root_id)

    def _load_stat_index(self, root_id: str) -> StatIndex:
        rows = self.conn.execute(
            "SELECT relpath, size, mtime_ns, inode, CASE state WHEN ? THEN ? ELSE state END"
            " FROM files WHERE root_id=? ORDER BY relpath",
            (SYNCED, SYNCED_MARK, root_id),
        )
        return StatIndex.from_rows(rows)

    def stat_index_under(self, root_id: str, paths: Iterable[str]) -> dict[str, StatRow]:
        """Like :meth:`stat_index`, for some paths and everything below them (index range scans)."""
        out: dict[str, StatRow] = {}
        sql = "SELECT relpath, size, mtime_ns, inode, state FROM files WHERE root_id=? AND "
        for path in paths:
            exact = self.conn.execute(sql + "relpath=?", (root_id, path))
            # Everything below "dir/": the keys from "dir/" up to "dir0" ("0" follows "/").
            below = self.conn.execute(
                sql + "relpath >= ? AND relpath < ?", (root_id, path + "/", path + "0")
            )
            for cur in (exact, below):
                out.update((r[0], r) for r in cur)
        return out

    def files_for(self, root_id: str, relpaths: Iterable[str]) -> dict[str, FileRow]:
        """Full rows of some files (batched look-ups)."""
        wanted = list(relpaths)
        out: dict[str, FileRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE root_id=? AND relpath IN ({marks})",
                (root_id, *chunk),
            )
            out.update((r[0], FileRow(*r)) for r in cur)
        return out

    def error_rows(self, root_id: str) -> dict[str, FileRow]:
        cur = self.conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE root_id=? AND state='error'", (root_id,)
        )
        return {r[0]: FileRow(*r) for r in cur}

    def file(self, root_id: str, relpath: str) -> FileRow | None:
        row = self.conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE root_id=? AND relpath=?", (root_id, relpath)
        ).fetchone()
        return None if row is None else FileRow(*row)

    def count_states(self, root_id: str | None = None) -> dict[str, int]:
        if root_id is None:
            cur = self.conn.execute("SELECT state, count(*) FROM files GROUP BY state")
        else:
            cur = self.conn.execute(
                "SELECT state, count(*) FROM files WHERE root_id=? GROUP BY state", (root_id,)
            )
        return {r[0]: r[1] for r in cur}

    def problems(self, root_id: str | None = None) -> list[tuple[str, FileRow]]:
        """Files not in the hub as they are: errors, held deletions, unsynced."""
        sql = f"SELECT root_id, {_FILE_COLUMNS} FROM files WHERE state NOT IN (?, ?)"
        args: list[Any] = [SYNCED, DELETED]
        if root_id is not None:
            sql += " AND root_id=?"
            args.append(root_id)
        return [(r[0], FileRow(*r[1:])) for r in self.conn.execute(sql + " ORDER BY relpath", args)]

    def mark_seen(self, root_id: str, items: Iterable[tuple[str, int, int, int]]) -> None:
        """New or changed files (relpath, size, mtime_ns, inode) waiting to be hashed.

        A file tried again as it was keeps its count of attempts (its next failure
        waits longer); one that changed starts over."""
        self.conn.executemany(
            """INSERT INTO files(root_id, relpath, size, mtime_ns, inode, state)
               VALUES(?, ?, ?, ?, ?, 'seen')
               ON CONFLICT(root_id, relpath) DO UPDATE SET size=excluded.size,
                 mtime_ns=excluded.mtime_ns, inode=excluded.inode, state='seen',
                 error_kind=NULL, last_error=NULL, next_retry=NULL,
                 attempts=CASE WHEN size=excluded.size AND mtime_ns=excluded.mtime_ns
                   AND inode=excluded.inode THEN attempts ELSE 0 END""",
            ((root_id, *item) for item in items),
        )

    def mark_synced(
        self,
        root_id: str,
        items: Sequence[tuple[str, int, int, int, str, int, str]],
        now: float,
    ) -> None:
        """(relpath, size, mtime_ns, inode, sha256, version, key) recorded in the hub."""
        self.conn.executemany(
            """INSERT INTO files(root_id, relpath, size, mtime_ns, inode, sha256, state,
                 version, remote_key, synced_at)
               VALUES(?, ?, ?, ?, ?, ?, 'synced', ?, ?, ?)
               ON CONFLICT(root_id, relpath) DO UPDATE SET size=excluded.size,
                 mtime_ns=excluded.mtime_ns, inode=excluded.inode, sha256=excluded.sha256,
                 state='synced', version=excluded.version, remote_key=excluded.remote_key,
                 synced_at=excluded.synced_at, error_kind=NULL, last_error=NULL, attempts=0,
                 next_retry=NULL""",
            ((root_id, *item[:5], item[5], item[6], now) for item in items),
        )
        self.conn.executemany(
            """INSERT OR REPLACE INTO versions(root_id, relpath, version, sha256, size, mtime_ns,
                 deleted, remote_key, recorded_at) VALUES(?, ?, ?, ?, ?, ?, 0, ?, ?)""",
            ((root_id, i[0], i[5], i[4], i[1], i[2], i[6], now) for i in items),
        )
        self.settle_failures(root_id, (i[0] for i in items), now)

    def mark_deleted(
        self, root_id: str, items: Sequence[tuple[str, int, str, int, int, str]], now: float
    ) -> None:
        """Tombstones (relpath, version, sha256, size, mtime_ns, key) recorded in the hub."""
        self.conn.executemany(
            """UPDATE files SET state='deleted', version=?, synced_at=?, error_kind=NULL,
                 last_error=NULL, attempts=0, next_retry=NULL WHERE root_id=? AND relpath=?""",
            ((i[1], now, root_id, i[0]) for i in items),
        )
        self.conn.executemany(
            """INSERT OR REPLACE INTO versions(root_id, relpath, version, sha256, size, mtime_ns,
                 deleted, remote_key, recorded_at) VALUES(?, ?, ?, ?, ?, ?, 1, ?, ?)""",
            ((root_id, i[0], i[1], i[2], i[3], i[4], i[5], now) for i in items),
        )
        self.settle_failures(root_id, (i[0] for i in items), now)

    def held(self, root_id: str, limit: int = -1) -> list[str]:
        """Files whose deletion is held for the user to confirm (or undo)."""
        cur = self.conn.execute(
            "SELECT relpath FROM files WHERE root_id=? AND state='held' ORDER BY relpath LIMIT ?",
            (root_id, limit),
        )
        return [r[0] for r in cur]

    def mark_held(self, root_id: str, relpaths: Iterable[str], now: float) -> None:
        """Hold these deletions; ``held_at`` keeps the time a file was first held."""
        self.conn.executemany(
            """UPDATE files SET held_at = CASE WHEN state='held' THEN held_at ELSE ? END,
                 state='held'
               WHERE root_id=? AND relpath=? AND state != 'deleted'""",
            ((now, root_id, p) for p in relpaths),
        )

    def held_since(self, root_id: str, since: float) -> bool:
        """Whether a deletion in the folder was held at or after ``since``."""
        found = self.conn.execute(
            "SELECT 1 FROM files WHERE root_id=? AND state='held' AND held_at >= ? LIMIT 1",
            (root_id, since),
        ).fetchone()
        return found is not None

    def mark_restored(
        self, root_id: str, relpath: str, stat: tuple[int, int, int], version: int
    ) -> None:
        """A version restored in place (size, mtime_ns, inode of the written file): the
        file is that version again, synced as it is (no upload, no new version)."""
        self.conn.execute(
            """UPDATE files SET state='synced', size=?, mtime_ns=?, inode=?, held_at=NULL,
                 version=?, error_kind=NULL, last_error=NULL, attempts=0, next_retry=NULL
               WHERE root_id=? AND relpath=?""",
            (*stat, version, root_id, relpath),
        )
        self.settle_failures(root_id, [relpath])

    def mark_error(
        self, root_id: str, relpath: str, kind: str, message: str, retry_in: float, now: float
    ) -> None:
        self.conn.execute(
            """UPDATE files SET state='error', error_kind=?, last_error=?,
                 attempts=attempts+1, next_retry=? WHERE root_id=? AND relpath=?""",
            (kind, message, now + retry_in, root_id, relpath),
        )

    def mark_recording(self, root_id: str, items: Iterable[tuple[str, str, int, str]]) -> None:
        """(relpath, sha256, version, key) about to be recorded in the hub, files still seen."""
        self.conn.executemany(
            """UPDATE files SET sha256=?, version=?, remote_key=?
               WHERE root_id=? AND relpath=? AND state='seen'""",
            ((sha, version, key, root_id, rel) for rel, sha, version, key in items),
        )

    def mark_deleted_here(self, root_id: str, relpaths: Iterable[str]) -> None:
        """Deleted in the journal only: the hub needs no tombstone (it has one already, or
        the file is still there, only no longer mirrored)."""
        paths = list(relpaths)
        self.conn.executemany(
            "UPDATE files SET state='deleted' WHERE root_id=? AND relpath=?",
            ((root_id, p) for p in paths),
        )
        self.settle_failures(root_id, paths)

    def forget(self, root_id: str, relpaths: Iterable[str]) -> None:
        """Drop rows of files that vanished before they were ever recorded in the hub."""
        gone = list(relpaths)
        self.conn.executemany(
            "DELETE FROM files WHERE root_id=? AND relpath=?", ((root_id, p) for p in gone)
        )
        self.settle_failures(root_id, gone)

    def retry_now(self, root_id: str | None = None) -> int:
        sql = "UPDATE files SET next_retry=NULL WHERE state='error'"
        args: tuple[str, ...] = ()
        if root_id is not None:
            sql += " AND root_id=?"
            args = (root_id,)
        return self.conn.execute(sql, args).rowcount

    # -- what is not in the hub: skipped items and failure groups ---------------------

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
                self.conn.execute("DELETE FROM skipped WHERE root_id=?", (root_id,))
            else:
                for path in scope:
                    self.conn.execute(
                        "DELETE FROM skipped WHERE root_id=? AND (relpath=?"
                        " OR (relpath >= ? AND relpath < ?))",
                        (root_id, path, path + "/", path + "0"),
                    )
            self.conn.executemany(
                "INSERT OR REPLACE INTO skipped(root_id, relpath, kind, reason, seen_at)"
                " VALUES(?, ?, ?, ?, ?)",
                (
                    (root_id, shown_name(rel), kind, why, now)  # (names that are not UTF-8)
                    for rel, (kind, why) in skipped.items()
                ),
            )

    def has_skipped(self, root_id: str) -> bool:
        found = self.conn.execute("SELECT 1 FROM skipped WHERE root_id=? LIMIT 1", (root_id,))
        return found.fetchone() is not None

    def has_failures(self, root_id: str) -> bool:
        found = self.conn.execute("SELECT 1 FROM error_members WHERE root_id=? LIMIT 1", (root_id,))
        return found.fetchone() is not None

    def skipped(self, root_id: str | None = None) -> list[tuple[str, str, str, str, float]]:
        """(root_id, relpath, kind, reason, seen_at) of every skipped item."""
        sql = "SELECT root_id, relpath, kind, reason, seen_at FROM skipped"
        args: tuple[str, ...] = ()
        if root_id is not None:
            sql += " WHERE root_id=?"
            args = (root_id,)
        return [tuple(r) for r in self.conn.execute(sql + " ORDER BY root_id, relpath", args)]

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
                row = self.conn.execute(
                    "SELECT id, paths FROM error_groups WHERE fingerprint=?", (fp,)
                ).fetchone()
                fresh = [f.relpath for f in group][-GROUP_PATHS:]
                if row is None:
                    group_id = self.conn.execute(
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
                    self.conn.execute(  # failing again: open again, whoever resolved it
                        """UPDATE error_groups SET count=count+?, last_seen=?, example=?,
                             paths=?, mirrored=0, resolved_at=NULL, state=?
                           WHERE id=?""",
                        (len(group), now, last.message, json.dumps(paths), OPEN, group_id),
                    )
                self.conn.executemany(
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
        cur = self.conn.executemany(
            "DELETE FROM error_members WHERE root_id=? AND relpath=?",
            ((root_id, p) for p in relpaths),
        )
        if cur.rowcount:
            self._resolve_settled(now or time.time())

    def _resolve_settled(self, now: float) -> None:
        self.conn.execute(
            """UPDATE error_groups SET state=?, resolved_at=?, mirrored=0
               WHERE state=? AND NOT EXISTS
                 (SELECT 1 FROM error_members m WHERE m.group_id = error_groups.id)""",
            (RESOLVED, now, OPEN),
        )

    def failing_elsewhere(self, root_id: str) -> set[str]:
        """Member paths of a folder that are no file rows in error: the folder itself
        ("."), folders that could not be read."""
        cur = self.conn.execute(
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
        return [_group(r) for r in self.conn.execute(sql + " ORDER BY last_seen DESC", args)]

    def error_group(self, group_id: int) -> ErrorGroup | None:
        row = self.conn.execute(
            f"SELECT {_GROUP_COLUMNS} FROM error_groups WHERE id=?", (group_id,)
        ).fetchone()
        return None if row is None else _group(row)

    def groups_of(self, root_id: str) -> dict[str, int]:
        """relpath → error group of every path of a folder failing now."""
        cur = self.conn.execute(
            "SELECT relpath, group_id FROM error_members WHERE root_id=?", (root_id,)
        )
        return {r[0]: int(r[1]) for r in cur}

    def resolve_group(self, group_id: int, now: float) -> bool:
        """The user says the group is dealt with; a new failure of its kind reopens it."""
        with self.transaction():
            return bool(
                self.conn.execute(
                    "UPDATE error_groups SET state=?, resolved_at=?, mirrored=0 WHERE id=?",
                    (RESOLVED_BY_USER, now, group_id),
                ).rowcount
            )

    def store_diagnosis(self, group_id: int, diagnosis: str, now: float) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE error_groups SET diagnosis=?, diagnosed_at=?, mirrored=0 WHERE id=?",
                (diagnosis, now, group_id),
            )

    def groups_to_mirror(self) -> list[ErrorGroup]:
        """Groups changed since they were last written to the hub."""
        cur = self.conn.execute(f"SELECT {_GROUP_COLUMNS} FROM error_groups WHERE mirrored=0")
        return [_group(r) for r in cur]

    def mark_mirrored(self, groups: Iterable[ErrorGroup]) -> None:
        """Written to the hub as they were: a group changed since stays to be written."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE error_groups SET mirrored=1 WHERE id=? AND count=? AND state=?"
                " AND last_seen=? AND diagnosed_at IS ?",
                ((g.id, g.count, g.state, g.last_seen, g.diagnosed_at) for g in groups),
            )

    # -- hubs -------------------------------------------------------------------------

    def hub_seen(self, hub: str) -> tuple[str | None, str | None]:
        """(id, folder) of the hub ``hub`` was last opened as; (None, None) if never."""
        return self.get_meta(f"hub.{hub}.id"), self.get_meta(f"hub.{hub}.path")

    def remember_hub(self, hub: str, hub_id: str, folder: str) -> None:
        with self.transaction():
            self.set_meta(f"hub.{hub}.id", hub_id)
            self.set_meta(f"hub.{hub}.path", folder)

    def hub_in_use(self, hub: str) -> bool:
        """Whether this journal put anything in ``hub``: a blob, or a file recorded there."""
        found = self.conn.execute(
            """SELECT 1 FROM blobs WHERE hub=:hub
               UNION ALL
               SELECT 1 FROM files WHERE sha256 IS NOT NULL
                 AND root_id IN (SELECT id FROM roots WHERE hub=:hub)
               LIMIT 1""",
            {"hub": hub},
        ).fetchone()
        return found is not None

    def rebase_hub(self, hub: str, hub_id: str, where: str) -> int:
        """``hub`` is now the hub ``hub_id``: forget what the old one held, send every
        file mirrored to it back to 'seen' so the next pass uploads it there, and
        remember the new one, all at once. Returns how many files will go up.

        A deletion held for the old hub has nothing to delete in the new one: the
        file is gone, so it is marked deleted (its versions stay in the history).
        """
        in_hub = "root_id IN (SELECT id FROM roots WHERE hub=?)"
        with self.transaction():
            self.conn.execute("DELETE FROM blobs WHERE hub=?", (hub,))
            if hub == "supabase":  # resumable uploads point into the old project
                self.conn.execute("DELETE FROM resume")
            self.conn.execute(
                f"UPDATE files SET state='deleted' WHERE state='held' AND {in_hub}", (hub,)
            )
            files = self.conn.execute(
                f"""UPDATE files SET state='seen', attempts=0, next_retry=NULL,
                      error_kind=NULL, last_error=NULL
                    WHERE state IN ('synced', 'error') AND {in_hub}""",
                (hub,),
            ).rowcount
            self.remember_hub(hub, hub_id, where)
        return files

    # -- blobs ------------------------------------------------------------------------

    def known_blobs(self, hub: str, hashes: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        batch = list(hashes)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                f"SELECT sha256, remote_key FROM blobs WHERE hub=? AND sha256 IN ({marks})",
                (hub, *chunk),
            )
            found.update({r[0]: r[1] for r in cur})
        return found

    def add_blobs(self, hub: str, blobs: Iterable[tuple[str, int, str]]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO blobs(hub, sha256, size, remote_key) VALUES(?, ?, ?, ?)",
            ((hub, *b) for b in blobs),
        )

    # -- versions and operations ------------------------------------------------------

    def versions(self, root_id: str, relpath: str) -> list[VersionRow]:
        cur = self.conn.execute(
            """SELECT version, sha256, size, mtime_ns, deleted, remote_key, recorded_at
               FROM versions WHERE root_id=? AND relpath=? ORDER BY version""",
            (root_id, relpath),
        )
        return [VersionRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in cur]

    def deleted_under(self, root_id: str, prefix: str) -> list[str]:
        """Paths at or below ``prefix`` deleted locally: tombstoned, or held as a
        deletion that looks like an accident (for restoring a deleted folder)."""
        if prefix in ("", "."):  # the mirrored folder itself
            cur = self.conn.execute(
                "SELECT relpath FROM files WHERE root_id=? AND state IN ('deleted', 'held')"
                " ORDER BY relpath",
                (root_id,),
            )
            return [r[0] for r in cur]
        like = prefix.rstrip("/") + "/%"
        cur = self.conn.execute(
            "SELECT relpath FROM files WHERE root_id=? AND state IN ('deleted', 'held')"
            " AND (relpath=? OR relpath LIKE ?) ORDER BY relpath",
            (root_id, prefix, like),
        )
        return [r[0] for r in cur]

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
        self.conn.execute(
            "INSERT INTO operations(ts, kind, root_id, relpath, sha256, bytes, detail)"
            " VALUES(?, ?, ?, ?, ?, ?, ?)",
            (now or time.time(), kind, root_id, relpath, sha256, size, detail),
        )

    def log_many(
        self,
        rows: Iterable[tuple[str, str | None, str | None, str | None, int, str | None]],
        now: float,
    ) -> None:
        self.conn.executemany(
            "INSERT INTO operations(ts, kind, root_id, relpath, sha256, bytes, detail)"
            " VALUES(?, ?, ?, ?, ?, ?, ?)",
            ((now, *r) for r in rows),
        )

    def recent_operations(self, limit: int = 50) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT ts, kind, root_id, relpath, sha256, bytes, detail FROM operations"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("ts", "kind", "root_id", "relpath", "sha256", "bytes", "detail")
        return [dict(zip(keys, r, strict=True)) for r in cur]


class JournalResumeStore:
    """Resumable-upload state (TUS URL and offset) kept in the journal across restarts."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def get_item(self, key: str) -> str | None:
        row = self._journal.conn.execute("SELECT value FROM resume WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_item(self, key: str, value: str) -> None:
        with self._journal.transaction():
            self._journal.conn.execute(
                "INSERT OR REPLACE INTO resume(key, value) VALUES(?, ?)", (key, value)
            )

    def remove_item(self, key: str) -> None:
        with self._journal.transaction():
            self._journal.conn.execute("DELETE FROM resume WHERE key=?", (key,))
