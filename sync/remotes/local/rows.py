"""The hub's rows, written: manifest entries (after their blobs are durable), the
operations log, reads and error groups."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from sync.durable import make_durable
from sync.errors import TransientError
from sync.remotes.base import ManifestEntry, Operation
from sync.remotes.local.database import HubDatabase
from sync.remotes.local.schema import _ERROR_COLUMNS, _entry_blobs, _now_iso, _operation_id
from sync.remotes.local.writer import write_failed


class HubRows(HubDatabase):
    _unflushed: list[str]
    _unflushed_lock: threading.Lock
    _new_blobs: list[tuple[str, str, str, int, str, str]]
    _writes: int

    def _flush_blobs(self) -> None:
        with self._unflushed_lock:
            pending, self._unflushed = self._unflushed, []
        try:
            make_durable(self.root, pending)
        except OSError as exc:
            with self._unflushed_lock:
                self._unflushed[:0] = pending
            raise self._write_failed(exc) from None

    def _write_failed(self, exc: OSError) -> TransientError:
        return write_failed(exc, self.root)

    async def record(self, entries: Sequence[ManifestEntry]) -> None:
        def write() -> None:
            self._flush_blobs()
            with self._unflushed_lock:
                new_blobs = list(self._new_blobs)
            now = _now_iso()
            # A blob's row also comes from the entries that point at it: a blob stored
            # by a process killed before it recorded it still gets its row.
            blob_rows = {row[0]: row for row in (*new_blobs, *_entry_blobs(entries))}.values()
            with self._transaction():
                self._db.executemany(
                    """INSERT INTO file_metadata(file_id, user_id, filename, file_size,
                         content_type, bucket_id, path, sha256_hash, created_at, updated_at)
                       VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(file_id) DO NOTHING""",
                    (
                        (key, self.user_id, name, size, ctype, bucket, key, sha, now, now)
                        for key, bucket, name, size, ctype, sha in blob_rows
                    ),
                )
                self._db.executemany(
                    """INSERT INTO hubsync_manifest(user_id, device_id, root_id, root_path,
                         rel_path, sha256, size, mtime_ns, version, deleted, storage_key,
                         content_type, recorded_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT DO UPDATE SET sha256=excluded.sha256, size=excluded.size,
                         mtime_ns=excluded.mtime_ns, deleted=excluded.deleted,
                         storage_key=excluded.storage_key""",
                    (
                        (
                            self.user_id,
                            e.device,
                            e.root_id,
                            e.root_path,
                            e.relpath,
                            e.sha256,
                            e.size,
                            e.mtime_ns,
                            e.version,
                            int(e.deleted),
                            e.key,
                            e.content_type,
                            e.recorded_at or now,
                        )
                        for e in entries
                    ),
                )
                devices = {e.device for e in entries}
                self._db.executemany(
                    """INSERT INTO hubsync_devices(user_id, device_id, name, last_seen)
                       VALUES(?, ?, ?, ?)
                       ON CONFLICT DO UPDATE SET last_seen=excluded.last_seen,
                         name=excluded.name""",
                    ((self.user_id, d, self.device_name, now) for d in devices),
                )
            self._writes += 1
            with self._unflushed_lock:  # written: only now they leave the list
                del self._new_blobs[: len(new_blobs)]

        await self._run_db(write)

    def _insert_operations(self, operations: Sequence[Operation], now: str) -> None:
        self._db.executemany(
            """INSERT INTO file_operations(id, user_id, file_id, operation_type, status,
                 started_at, completed_at, duration_ms, bytes, error_message, metadata,
                 created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                (
                    _operation_id(),
                    self.user_id,
                    op.key,
                    op.operation,
                    op.status,
                    op.started_at or None,
                    op.finished_at or None,
                    op.duration_ms,
                    op.bytes,
                    op.error,
                    json.dumps(op.metadata),
                    now,
                )
                for op in operations
            ),
        )

    async def log_operations(self, operations: Sequence[Operation]) -> None:
        def write() -> None:
            with self._transaction():
                self._insert_operations(operations, _now_iso())

        await self._run_db(write)

    async def record_reads(self, reads: Sequence[Operation]) -> None:
        def write() -> None:
            now = _now_iso()
            with self._transaction():
                self._db.executemany(
                    "UPDATE file_metadata SET access_count = access_count + 1, last_accessed = ?"
                    " WHERE file_id = ? AND user_id = ?",
                    ((now, op.key, self.user_id) for op in reads if op.key),
                )
                self._insert_operations(reads, now)

        await self._run_db(write)

    async def record_errors(self, rows: Sequence[dict[str, Any]]) -> None:
        columns = ", ".join(_ERROR_COLUMNS)
        marks = ", ".join("?" * len(_ERROR_COLUMNS))
        updates = ", ".join(f"{c}=excluded.{c}" for c in _ERROR_COLUMNS[2:])

        def write() -> None:
            now = _now_iso()
            with self._transaction():
                self._db.executemany(
                    f"""INSERT INTO hubsync_errors(user_id, {columns}, updated_at)
                        VALUES(?, {marks}, ?) ON CONFLICT(user_id, device_id, fingerprint)
                        DO UPDATE SET {updates}, updated_at=excluded.updated_at""",
                    (
                        (
                            self.user_id,
                            *(json.dumps(r[c]) if c == "paths" else r[c] for c in _ERROR_COLUMNS),
                            now,
                        )
                        for r in rows
                    ),
                )

        await self._run_db(write)
