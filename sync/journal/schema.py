"""The journal's tables and how a journal of any older version is brought up to date.

Each migration runs once, in order, inside the transaction that opens the journal;
``meta.schema_version`` says how far a journal got.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from sync.journal.rollups import create_schema as create_rollups
from sync.journal.states import NEW, FileState, transition_rows

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 6

ILLEGAL_TRANSITION = "illegal file-state transition"
"""The message of the triggers' abort (see :mod:`sync.journal.states`)."""


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


def _migrate_v6(db: sqlite_utils.Database) -> None:
    """File states as :class:`FileState` has them: the moves allowed are a table that
    triggers check on every write; the states that hid in others get their names
    ("recording": seen with the hash of a version the hub has no row for in the journal;
    "unmirrored": deleted with no tombstone, its newest version live)."""
    version_is = (
        "EXISTS (SELECT 1 FROM versions v WHERE v.root_id=files.root_id"
        " AND v.relpath=files.relpath AND v.version=files.version"
    )
    db.execute(
        f"UPDATE files SET state=? WHERE state=? AND sha256 IS NOT NULL AND NOT {version_is})",
        (FileState.RECORDING, FileState.SEEN),
    )
    db.execute(
        f"UPDATE files SET state=? WHERE state=? AND NOT {version_is} AND v.deleted=1)",
        (FileState.UNMIRRORED, FileState.DELETED),
    )
    db.execute(
        """CREATE TABLE file_transitions (
            source TEXT NOT NULL, target TEXT NOT NULL,
            PRIMARY KEY (source, target)) WITHOUT ROWID"""
    )
    db.execute(
        f"""CREATE TRIGGER files_state_insert BEFORE INSERT ON files
            WHEN NOT EXISTS (SELECT 1 FROM file_transitions
              WHERE source='{NEW}' AND target=NEW.state)
            BEGIN SELECT RAISE(ABORT, '{ILLEGAL_TRANSITION}'); END"""
    )
    db.execute(
        f"""CREATE TRIGGER files_state_update BEFORE UPDATE OF state ON files
            WHEN NOT EXISTS (SELECT 1 FROM file_transitions
              WHERE source=OLD.state AND target=NEW.state)
            BEGIN SELECT RAISE(ABORT, '{ILLEGAL_TRANSITION}'); END"""
    )
    install_transitions(db.conn)


MIGRATIONS = {
    1: _migrate_v1,
    2: _migrate_v2,
    3: _migrate_v3,
    4: _migrate_v4,
    5: create_rollups,
    6: _migrate_v6,
}


def install_transitions(conn: sqlite3.Connection) -> None:
    """Make the table of allowed moves the code's (a no-op when it is already)."""
    wanted = transition_rows()
    have = conn.execute("SELECT source, target FROM file_transitions ORDER BY 1, 2").fetchall()
    if have != wanted:
        conn.execute("DELETE FROM file_transitions")
        conn.executemany("INSERT INTO file_transitions(source, target) VALUES(?, ?)", wanted)
