"""The local hub's side of compressed history (see :mod:`sync.compaction`).

Compressed objects lie at ``<hub>/user-files/<user>/history/<sha[:2]>/<sha>.zst``
(or ``.gz``); the manifest's ``encoding`` and ``stored_size`` columns say which
rows were switched. Whether a blob is current is decided in the same SQLite
transaction that switches its rows or deletes its raw object, and a recording
device takes the same write lock: a blob that becomes current meanwhile is
never compressed, nor its raw object deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sync.compaction import Candidate, HistoryStats, packed_key
from sync.compression import SUFFIX, decode_file
from sync.errors import IntegrityError
from sync.remotes.base import BUCKET_FILES, ProgressFn

if TYPE_CHECKING:
    from sync.remotes.local.hub import LocalHub

_CURRENT = """SELECT DISTINCT m.sha256 FROM hubsync_manifest m JOIN (
    SELECT device_id, root_id, rel_path, MAX(version) AS version FROM hubsync_manifest
    WHERE user_id=:user GROUP BY device_id, root_id, rel_path) newest
  USING (device_id, root_id, rel_path, version)
  WHERE m.user_id=:user AND m.deleted=0"""
_USED_ELSEWHERE = """SELECT file_id FROM file_operations WHERE user_id=:user
  AND file_id IS NOT NULL AND (operation_type IN ('process', 'generate')
    OR json_extract(metadata, '$.source') = 'drop')"""
"""Objects that something other than a mirrored folder uses (a dropped file, a file
sent to EXAI): their raw object stays, whatever the manifest says."""
_SUPERSEDED = f"""SELECT m.sha256, m.storage_key, MAX(m.size), MAX(m.content_type),
    CASE WHEN SUM(m.encoding='') > 0 THEN '' ELSE MAX(m.encoding) END AS enc
  FROM hubsync_manifest m
  WHERE m.user_id=:user AND m.storage_key != '' AND m.sha256 NOT IN ({_CURRENT})
    AND m.storage_key NOT IN ({_USED_ELSEWHERE})
  GROUP BY m.sha256, m.storage_key
  HAVING enc = '' OR (enc IN ('zstd', 'gzip') AND EXISTS (
    SELECT 1 FROM file_metadata f WHERE f.file_id=m.storage_key AND f.user_id=:user))
  ORDER BY m.sha256 LIMIT :limit"""
_REVIVED = f"""SELECT c.sha256, c.storage_key, c.size, c.content_type, p.encoding
  FROM (SELECT sha256, MAX(encoding) AS encoding FROM hubsync_manifest
        WHERE user_id=:user AND encoding IN ('zstd', 'gzip') GROUP BY sha256) p
  JOIN (SELECT m.sha256, MAX(m.storage_key) AS storage_key, MAX(m.size) AS size,
          MAX(m.content_type) AS content_type
        FROM hubsync_manifest m JOIN (
          SELECT device_id, root_id, rel_path, MAX(version) AS version FROM hubsync_manifest
          WHERE user_id=:user GROUP BY device_id, root_id, rel_path) newest
        USING (device_id, root_id, rel_path, version)
        WHERE m.user_id=:user AND m.deleted=0 GROUP BY m.sha256) c USING (sha256)
  WHERE p.sha256 IN ({_CURRENT}) ORDER BY c.sha256 LIMIT :limit"""


def add_columns(db: sqlite3.Connection) -> None:
    """The manifest columns of compressed history, added to a hub made before them."""
    have = {row[1] for row in db.execute("PRAGMA table_info(hubsync_manifest)")}
    if "encoding" not in have:
        db.execute("ALTER TABLE hubsync_manifest ADD COLUMN encoding TEXT NOT NULL DEFAULT ''")
    if "stored_size" not in have:
        db.execute("ALTER TABLE hubsync_manifest ADD COLUMN stored_size INTEGER")


def packed_path(hub: LocalHub, sha256: str, encoding: str) -> Path:
    return hub.blob_file(packed_key(hub.user_id, sha256, encoding))


def read_packed_copy(hub: LocalHub, sha256: str, dest: Path, progress: ProgressFn | None) -> bool:
    """Decode the compressed object of ``sha256`` into ``dest`` (hash-checked); False
    when there is none (runs in a thread: the read path of ``get_blob``)."""
    for encoding in SUFFIX:
        source = packed_path(hub, sha256, encoding)
        if source.is_file():
            size = decode_file(source, dest, encoding, sha256)
            if progress is not None and size:
                progress(size)
            return True
    return False


class LocalHistory:
    """:class:`sync.compaction.PackedHistory` on a :class:`LocalHub`."""

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub

    async def superseded(self, limit: int) -> list[Candidate]:
        return await self._candidates(_SUPERSEDED, limit)

    async def revived(self, limit: int) -> list[Candidate]:
        return await self._candidates(_REVIVED, limit)

    async def _candidates(self, sql: str, limit: int) -> list[Candidate]:
        hub = self.hub

        def read() -> list[Candidate]:
            with hub._db_lock:
                rows = hub._db.execute(sql, {"user": hub.user_id, "limit": limit}).fetchall()
            return [
                Candidate(r[0], r[1], int(r[2]), r[3] or "application/octet-stream", r[4])
                for r in rows
            ]

        return await hub._run_db(read)

    async def read_raw(self, key: str, sha256: str, dest: Path) -> bool:
        raw = self.hub.blob_file(key)
        if not await asyncio.to_thread(raw.is_file):
            return False
        try:
            await self.hub.get_blob(key, sha256, dest)
        except IntegrityError:
            if await asyncio.to_thread(raw.is_file):
                raise
            return False  # deleted meanwhile (the get fell back to the compressed one)
        return True

    async def read_packed(self, sha256: str, encoding: str, dest: Path) -> bool:
        source = packed_path(self.hub, sha256, encoding)

        def copy() -> bool:
            try:
                shutil.copyfile(source, dest)
            except FileNotFoundError:
                return False
            return True

        return await self.hub._run(copy)

    async def put_packed(self, sha256: str, encoding: str, source: Path) -> None:
        hub = self.hub
        final = packed_path(hub, sha256, encoding)

        def place() -> None:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = hub._temps.new_path()
            shutil.copyfile(source, tmp)
            _fsync(tmp)
            os.replace(tmp, final)
            _fsync(final.parent)  # (one file: cheaper than a syncfs of the whole hub)

        await hub._run(place)

    async def switch(self, sha256: str, key: str, encoding: str, stored_size: int) -> bool:
        hub = self.hub

        def write() -> bool:
            with hub._transaction():
                if _is_current(hub, sha256):
                    return False
                hub._db.execute(
                    "UPDATE hubsync_manifest SET encoding=?, stored_size=?"
                    " WHERE user_id=? AND sha256=? AND storage_key=?",
                    (encoding, stored_size, hub.user_id, sha256, key),
                )
            hub._writes += 1
            return True

        return await hub._run_db(write)

    async def drop_raw(self, key: str, sha256: str) -> None:
        hub = self.hub
        raw = hub.blob_file(key)

        def delete() -> None:
            with hub._transaction():  # a device recording the blob waits for this
                if _is_current(hub, sha256):
                    return
                with contextlib.suppress(FileNotFoundError):
                    raw.unlink()
                with contextlib.suppress(OSError):  # (not empty: another name of the blob)
                    raw.parent.rmdir()
                hub._db.execute(
                    "DELETE FROM file_metadata WHERE file_id=? AND user_id=?", (key, hub.user_id)
                )
            hub._writes += 1

        await hub._run_db(delete)

    async def put_raw(self, candidate: Candidate, source: Path) -> None:
        await self.hub.put_blob(
            source,
            candidate.sha256,
            candidate.size,
            candidate.filename,
            candidate.content_type,
            bucket=BUCKET_FILES,
        )

    async def unpack(self, sha256: str) -> None:
        hub = self.hub
        paths = [packed_path(hub, sha256, e) for e in SUFFIX]

        def write() -> None:
            with hub._transaction():
                hub._db.execute(
                    "UPDATE hubsync_manifest SET encoding='', stored_size=NULL"
                    " WHERE user_id=? AND sha256=?",
                    (hub.user_id, sha256),
                )
            hub._writes += 1
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        await hub._run_db(write)

    async def stats(self) -> HistoryStats:
        hub = self.hub

        def read() -> HistoryStats:
            with hub._db_lock:
                row = hub._db.execute(
                    """SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored), 0) FROM (
                         SELECT MAX(size) AS size, MAX(stored_size) AS stored
                         FROM hubsync_manifest WHERE user_id=? AND encoding IN ('zstd', 'gzip')
                         GROUP BY sha256)""",
                    (hub.user_id,),
                ).fetchone()
            return HistoryStats(int(row[0]), int(row[1]), int(row[2]))

        return await hub._run_db(read)


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_current(hub: LocalHub, sha256: str) -> bool:
    """Whether some path has ``sha256`` as its newest, live version (by the sha index)."""
    row = hub._db.execute(
        """SELECT 1 FROM hubsync_manifest m WHERE m.user_id=:user AND m.sha256=:sha
             AND m.deleted=0 AND m.version=(SELECT MAX(n.version) FROM hubsync_manifest n
               WHERE n.user_id=m.user_id AND n.device_id=m.device_id
                 AND n.root_id=m.root_id AND n.rel_path=m.rel_path)
           LIMIT 1""",
        {"user": hub.user_id, "sha": sha256},
    ).fetchone()
    return row is not None
