"""The hub's rows, read: error groups, a file's history, devices, ``find`` (with a
cache that any write, here or by another process, makes stale)."""

from __future__ import annotations

import json
from typing import Any

from sync.devices import DeviceInfo, summarize
from sync.find import FindQuery
from sync.remotes.base import ManifestEntry
from sync.remotes.local.database import HubDatabase
from sync.remotes.local.schema import _ERROR_COLUMNS, _entry_of_row

_FIND_CACHE = 64
"""Answers of ``find`` kept (all dropped when full: they are cheap to make again)."""


class HubReads(HubDatabase):
    _writes: int
    _found: dict[FindQuery, tuple[tuple[int, int], list[ManifestEntry]]]
    find_cache_hits: int

    async def read_log(self, since: str, limit: int = 5000) -> list[dict[str, Any]]:
        """The ``download`` rows written after ``since`` (ISO time), oldest first."""

        def read() -> list[dict[str, Any]]:
            cur = self._db.execute(
                "SELECT file_id, bytes, started_at, metadata, created_at FROM file_operations"
                " WHERE user_id=? AND operation_type='download' AND created_at > ?"
                " ORDER BY created_at LIMIT ?",
                (self.user_id, since, limit),
            )
            return [
                {
                    "file_id": r[0],
                    "bytes": r[1],
                    "started_at": r[2],
                    "metadata": r[3],
                    "created_at": r[4],
                }
                for r in cur
            ]

        return await self._run_db(read)

    async def list_errors(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._db_lock:
                found = self._db.execute(
                    f"SELECT {', '.join(_ERROR_COLUMNS)} FROM hubsync_errors WHERE user_id=?"
                    " ORDER BY last_seen DESC",
                    (self.user_id,),
                ).fetchall()
            rows = [dict(zip(_ERROR_COLUMNS, r, strict=True)) for r in found]
            for row in rows:
                row["paths"] = json.loads(row["paths"])
            return rows

        return await self._run_db(read)

    async def history(self, device: str, root_id: str, relpath: str) -> list[ManifestEntry]:
        def read() -> list[ManifestEntry]:
            with self._db_lock:
                rows = self._db.execute(
                    """SELECT device_id, root_id, root_path, rel_path, sha256, size, mtime_ns,
                         version, storage_key, deleted, content_type, recorded_at
                       FROM hubsync_manifest WHERE user_id=? AND device_id=? AND root_id=?
                         AND rel_path=? ORDER BY version""",
                    (self.user_id, device, root_id, relpath),
                ).fetchall()
            return [_entry_of_row(r) for r in rows]

        return await self._run_db(read)

    async def devices(self) -> list[DeviceInfo]:
        def read() -> list[DeviceInfo]:
            with self._db_lock:
                devices = self._db.execute(
                    "SELECT device_id, name, last_seen FROM hubsync_devices WHERE user_id=?",
                    (self.user_id,),
                ).fetchall()
                current = self._db.execute(
                    """SELECT m.device_id, m.root_id, m.root_path, m.size
                       FROM hubsync_manifest m JOIN (
                         SELECT device_id, root_id, rel_path, MAX(version) AS version
                         FROM hubsync_manifest WHERE user_id=?
                         GROUP BY device_id, root_id, rel_path) last
                       USING (device_id, root_id, rel_path, version)
                       WHERE m.user_id=? AND m.deleted=0""",
                    (self.user_id, self.user_id),
                ).fetchall()
            return summarize(devices, current)

        return await self._run_db(read)

    async def find(self, query: FindQuery) -> list[ManifestEntry]:
        where = ["user_id=?"]
        args: list[object] = [self.user_id]
        paths: tuple[tuple[str, str | None], ...] = (
            ("device_id=?", query.device or None),
            ("root_path=?", query.folder or None),
            ("rel_path LIKE ?", query.like()),
            ("rel_path LIKE ?", f"%{query.suffix}" if query.suffix else None),
            ("recorded_at<=?", query.at or None),
        )
        for clause, text in paths:
            if text is not None:
                where.append(clause)
                args.append(text)
        last = f"""SELECT device_id, root_id, rel_path, MAX(version) AS version
                   FROM hubsync_manifest WHERE {" AND ".join(where)}
                   GROUP BY device_id, root_id, rel_path"""
        outer = ["m.user_id=?", "m.deleted=?"]
        outer_args: list[object] = [self.user_id, int(query.deleted)]
        filters: tuple[tuple[str, object], ...] = (
            ("m.sha256=?", query.sha256.lower() or None),
            ("m.size>?", query.larger),
            ("m.size<?", query.smaller),
            ("m.mtime_ns>=?", query.since_ns),
            ("m.mtime_ns<=?", query.until_ns),
        )
        for clause, value in filters:
            if value is not None:
                outer.append(clause)
                outer_args.append(value)
        sql = f"""SELECT m.device_id, m.root_id, m.root_path, m.rel_path, m.sha256, m.size,
                    m.mtime_ns, m.version, m.storage_key, m.deleted, m.content_type,
                    m.recorded_at
                  FROM hubsync_manifest m JOIN ({last}) last
                    USING (device_id, root_id, rel_path, version)
                  WHERE {" AND ".join(outer)}
                  ORDER BY m.device_id, m.root_path, m.rel_path"""

        def read() -> list[ManifestEntry]:
            with self._db_lock:
                # data_version moves when another connection commits; own writes
                # bump _writes: either one means the hub changed since the answer.
                stamp = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
                cached = self._found.get(query)
                if cached is not None and cached[0] == stamp:
                    self.find_cache_hits += 1
                    return list(cached[1])
                rows = self._db.execute(sql, (*args, *outer_args)).fetchall()
            found = [e for e in map(_entry_of_row, rows) if query.matches(e)]
            if len(self._found) >= _FIND_CACHE:
                self._found.clear()
            self._found[query] = (stamp, found)
            return list(found)

        return await self._run_db(read)

    async def folder_manifest(self, device: str, root_path: str) -> list[ManifestEntry]:
        """Every version this device recorded for the folder at ``root_path``, any root id."""

        def read() -> list[ManifestEntry]:
            with self._db_lock:
                rows = self._db.execute(
                    """SELECT device_id, root_id, root_path, rel_path, sha256, size, mtime_ns,
                         version, storage_key, deleted, content_type, recorded_at
                       FROM hubsync_manifest WHERE user_id=? AND device_id=? AND root_path=?
                       ORDER BY recorded_at""",
                    (self.user_id, device, root_path),
                ).fetchall()
            return [
                ManifestEntry(
                    device=r[0],
                    root_id=r[1],
                    root_path=r[2],
                    relpath=r[3],
                    sha256=r[4],
                    size=r[5],
                    mtime_ns=r[6],
                    version=r[7],
                    key=r[8],
                    deleted=bool(r[9]),
                    content_type=r[10] or "application/octet-stream",
                    recorded_at=r[11],
                )
                for r in rows
            ]

        return await self._run_db(read)
