"""The hub's SQLite file: its tables (the Supabase ones, same names and columns),
opening it, and the ids and rows written to it."""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sync.errors import TransientError
from sync.remotes.base import BUCKET_FILES, ManifestEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_metadata (
    file_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, filename TEXT, file_size INTEGER,
    content_type TEXT, bucket_id TEXT NOT NULL, path TEXT, sha256_hash TEXT,
    tags TEXT NOT NULL DEFAULT '[]', access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS file_metadata_sha ON file_metadata(user_id, sha256_hash);
CREATE TABLE IF NOT EXISTS file_operations (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, file_id TEXT, operation_type TEXT NOT NULL,
    status TEXT NOT NULL, started_at TEXT, completed_at TEXT, duration_ms INTEGER,
    bytes INTEGER, error_message TEXT, metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hubsync_manifest (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, root_id TEXT NOT NULL,
    root_path TEXT NOT NULL, rel_path TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, storage_key TEXT NOT NULL, content_type TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, root_id, rel_path, version));
CREATE INDEX IF NOT EXISTS hubsync_manifest_sha ON hubsync_manifest(user_id, sha256);
CREATE TABLE IF NOT EXISTS hubsync_devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, name TEXT, last_seen TEXT,
    PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS hubsync_hub (id TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hubsync_errors (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL, operation TEXT NOT NULL, message TEXT NOT NULL, example TEXT,
    occurrences INTEGER NOT NULL DEFAULT 0, open_files INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT, last_seen TEXT, paths TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'open', resolved_at TEXT, diagnosis TEXT, diagnosed_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, fingerprint));
"""
_ERROR_COLUMNS = (
    "device_id", "fingerprint", "kind", "operation", "message", "example", "occurrences",
    "open_files", "first_seen", "last_seen", "paths", "state", "resolved_at", "diagnosis",
    "diagnosed_at",
)  # fmt: skip
HUB_DB = "hub.sqlite3"
LOCAL_USER = "local"


class HubMissing(TransientError):
    """A hub that was in use is not where it was (an unplugged drive, an unmounted
    share): it is waited for, never silently replaced by a new, empty one."""


_ID_PROCESS_BITS = int.from_bytes(os.urandom(5)) >> 2  # 38 random bits per process
_id_counter = itertools.count()


def _new_id_bits() -> None:
    global _ID_PROCESS_BITS  # a forked child must not reuse its parent's
    _ID_PROCESS_BITS = int.from_bytes(os.urandom(5)) >> 2


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_bits)


def _operation_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: time-ordered, so new ``file_operations``
    rows append to the primary-key index instead of each landing on a random page
    (with uuid4 every commit rewrote most of the index). Within a process the low 24
    bits count up; 38 random bits keep processes apart."""
    now = time.time_ns()
    value = (
        (now // 1_000_000) << 80
        | 0x7 << 76
        | ((now // 1_000) % 1_000 * 4) << 64  # the microseconds, in 12 bits
        | 0b10 << 62
        | _ID_PROCESS_BITS << 24
        | next(_id_counter) & 0xFFFFFF
    )
    return f"{value:032x}"


def _entry_blobs(entries: Sequence[ManifestEntry]) -> list[tuple[str, str, str, int, str, str]]:
    """(key, bucket, filename, size, content type, sha256) of the blobs live entries use."""
    return [
        (e.key, BUCKET_FILES, e.key.rsplit("/", 1)[-1], e.size, e.content_type, e.sha256)
        for e in entries
        if not e.deleted
    ]


def _open_hub_db(path: Path) -> sqlite3.Connection:
    """The hub's database, its schema and id in place; closed again if that fails."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.executescript(_SCHEMA)
        from sync.remotes.local.history import add_columns  # (heavy: compression)

        add_columns(db)
        db.execute(  # one statement: two processes creating a hub agree on its id
            "INSERT INTO hubsync_hub(id, created_at) SELECT ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM hubsync_hub)",
            (uuid.uuid4().hex, _now_iso()),
        )
    except BaseException:
        db.close()
        raise
    return db


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _entry_of_row(r: Sequence[object]) -> ManifestEntry:
    """A ManifestEntry from (device_id, root_id, root_path, rel_path, sha256, size,
    mtime_ns, version, storage_key, deleted, content_type, recorded_at)."""
    return ManifestEntry(
        device=str(r[0]),
        root_id=str(r[1]),
        root_path=str(r[2]),
        relpath=str(r[3]),
        sha256=str(r[4]),
        size=int(r[5]),  # type: ignore[call-overload]
        mtime_ns=int(r[6]),  # type: ignore[call-overload]
        version=int(r[7]),  # type: ignore[call-overload]
        key=str(r[8]),
        deleted=bool(r[9]),
        content_type=str(r[10] or "application/octet-stream"),
        recorded_at=str(r[11]),
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
