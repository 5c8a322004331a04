"""The download cache every read from a hub goes through.

Content-addressed by SHA-256, so one cached copy serves every path and every
version with that content. Entries expire after a TTL (checked on read and by
:meth:`BlobCache.sweep`) and the least recently used go first when the cache
is over its size limit. An entry may instead be a hard link to a local hub's blob
(``source``): it takes no space of the cache's, is never evicted for space and is
dropped as soon as the hub's file at ``source`` is no longer that blob. A download lands
in a temp file and enters the cache only after its hash was verified, so a partial
download is never served.

A *guess* (a prefetched blob, see sync.prefetch) is marked until it is first read:
that read hashes it again before serving it, the read counts as a prefetch hit, and
a guess that leaves the cache unread counts as bytes fetched for nothing. A guess
never evicts an entry read within ``protect`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: one process per cache is assumed there
    fcntl = None  # type: ignore[assignment]

from sync.cache_partial import download_resuming
from sync.hashing import hash_file
from sync.remotes.base import BUCKET_FILES, ProgressFn, Remote, ResumableGet
from sync.throttle import Bandwidth

REFRESH = 256
RESUME_FROM = 1024 * 1024
"""Downloads of blobs known to be smaller are not kept across restarts: fetching such a
blob again costs less than the lock, the note and the partial file of a resumable one."""


@dataclass(frozen=True)
class CacheStats:
    entries: int
    size_bytes: int
    limit_bytes: int
    hits: int
    misses: int
    bytes_served: int
    bytes_fetched: int
    linked: int = 0
    """Entries that are hard links to a local hub's blob (in ``entries``, not in
    ``size_bytes``: they take no space of the cache's)."""
    prefetched: int = 0
    """Guesses admitted (all time)."""
    prefetch_hits: int = 0
    """Reads served by a guess (each guess counts once, on its first read)."""
    prefetch_wasted_bytes: int = 0
    """Bytes of guesses that left the cache (or failed their check) unread."""
    prefetch_bytes: int = 0

    @property
    def hit_rate_without_prefetch(self) -> float:
        """The hit rate the reads would have had without the guesses."""
        total = self.hits + self.misses
        return (self.hits - self.prefetch_hits) / total if total else 0.0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class BlobCache:
    def __init__(
        self,
        directory: Path,
        *,
        size_limit: int = 1024**3,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.time,
        download_limit: Bandwidth | None = None,
    ) -> None:
        self.dir = directory
        self.download_limit = download_limit or Bandwidth()
        self.size_limit = size_limit
        self.ttl = ttl
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = directory / "tmp"
        self.tmp_dir.mkdir(exist_ok=True)
        for stale in self.tmp_dir.iterdir():
            stale.unlink(missing_ok=True)
        self.partial_dir = directory / "partial"
        """Resumable downloads in progress (sync.remotes.base.ResumableGet); kept on restart."""
        self.partial_dir.mkdir(exist_ok=True)
        self._db = sqlite3.connect(
            directory / "index.sqlite3", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL,"
            " created REAL NOT NULL, last_access REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS guesses (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS guess_log (at REAL NOT NULL, size INTEGER)")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(entries)")}
        if "source" not in columns:  # caches made before linked entries
            self._db.execute("ALTER TABLE entries ADD COLUMN source TEXT")
        self._lock = threading.Lock()
        self._total: int | None = None
        """Bytes in the cache as this process counts them; re-read from the index every
        REFRESH admissions (other processes share the cache), not summed per admission."""
        self._admitted = 0
        self._fetching: dict[str, asyncio.Future[Path]] = {}
        self._dir_str = os.fspath(directory)
        self._subdirs: set[str] = set()
        """Sub-folders known to exist (sync.cache.BlobCache.link_in)."""

    def _path(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / sha256

    def _bump(self, **counters: int) -> None:
        self._db.executemany(
            "INSERT INTO counters(name, value) VALUES(?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            counters.items(),
        )

    def lookup(self, sha256: str) -> Path | None:
        """The cached file for ``sha256`` if present and fresh; counts a hit or a miss."""
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT size, created, source FROM entries WHERE sha256=?", (sha256,)
            ).fetchone()
            path = self._path(sha256)
            if row is not None and (now - row[1] > self.ttl or not _still_linked(path, row[2])):
                self._drop(sha256)
                row = None
            if row is None or not path.exists():
                if row is not None:
                    self._db.execute("DELETE FROM entries WHERE sha256=?", (sha256,))
                self._bump(misses=1)
                return None
            guess = self._db.execute("SELECT 1 FROM guesses WHERE sha256=?", (sha256,)).fetchone()
            if guess is not None:
                if not _holds(path, sha256):  # changed on disk since it was fetched
                    self._drop(sha256)
                    self._bump(misses=1)
                    return None
                self._db.execute("DELETE FROM guesses WHERE sha256=?", (sha256,))
                self._bump(prefetch_hits=1)
            self._db.execute("UPDATE entries SET last_access=? WHERE sha256=?", (now, sha256))
            self._bump(hits=1, bytes_served=row[0])
            return path

    def fresh_until(self, sha256: str) -> float | None:
        """When the cached copy of ``sha256`` expires; None when not cached. Counts
        nothing, touches nothing."""
        with self._lock:
            row = self._db.execute(
                "SELECT created FROM entries WHERE sha256=?", (sha256,)
            ).fetchone()
        return None if row is None else float(row[0]) + self.ttl

    def guessed_bytes(self, since: float) -> tuple[int, int]:
        """(bytes of guesses not read yet, bytes prefetched since ``since``)."""
        with self._lock:
            self._db.execute("DELETE FROM guess_log WHERE at < ?", (self._clock() - 7 * 86400,))
            unread = self._db.execute("SELECT coalesce(sum(size), 0) FROM guesses").fetchone()[0]
            recent = self._db.execute(
                "SELECT coalesce(sum(size), 0) FROM guess_log WHERE at >= ?", (since,)
            ).fetchone()[0]
        return int(unread), int(recent)

    def room_for_guess(self, size: int, protect: float) -> bool:
        """Whether a guess of ``size`` bytes fits without evicting an entry read within
        the last ``protect`` seconds."""
        cutoff = self._clock() - protect
        with self._lock:
            total, evictable = self._db.execute(
                "SELECT coalesce(sum(e.size), 0), coalesce(sum(CASE WHEN e.last_access < ?"
                " OR g.sha256 IS NOT NULL THEN e.size ELSE 0 END), 0)"
                " FROM entries e LEFT JOIN guesses g ON g.sha256 = e.sha256 WHERE e.source IS NULL",
                (cutoff,),
            ).fetchone()
        return size <= self.size_limit and total + size - evictable <= self.size_limit

    def peek_many(self, shas: list[str]) -> dict[str, Path]:
        """The fresh cached files among ``shas`` (one transaction for all of them), without
        counting hits or misses: the caller counts what it served (:meth:`count`)."""
        now = self._clock()
        found: dict[str, Path] = {}
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for at in range(0, len(shas), 500):
                    part = shas[at : at + 500]
                    marks = ",".join("?" * len(part))
                    for sha, created, source in self._db.execute(
                        f"SELECT sha256, created, source FROM entries WHERE sha256 IN ({marks})",
                        part,
                    ).fetchall():
                        path = self._path(sha)
                        if now - created > self.ttl or not _still_linked(path, source):
                            self._drop(sha)
                        elif source is not None or path.exists():
                            found[sha] = path
                self._db.executemany(
                    "UPDATE entries SET last_access=? WHERE sha256=?", ((now, s) for s in found)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return found

    def count(self, *, hits: int = 0, misses: int = 0, bytes_served: int = 0) -> None:
        """Count reads served (or not) by the cache that :meth:`lookup` did not count:
        a pull that found the content already in place counts it as a hit."""
        with self._lock:
            self._bump(hits=hits, misses=misses, bytes_served=bytes_served)

    def link_in(self, source: str | Path, sha256: str) -> bool:
        """Make the cache entry for ``sha256`` a hard link to ``source``, a local hub's
        blob known to hold that content: it costs no space, and a later read of the
        same content is served from here. False when the cache already has a file for
        it; OSError when it cannot be linked (another file system, no hard links
        there). The entry counts only once :meth:`admit_linked` records it."""
        sub = sha256[:2]
        if sub not in self._subdirs:  # one mkdir per sub-folder, not per file
            (self.dir / sub).mkdir(exist_ok=True)
            self._subdirs.add(sub)
        try:
            os.link(source, f"{self._dir_str}/{sub}/{sha256}")
        except FileExistsError:
            return False
        return True

    def admit_linked(self, linked: list[tuple[str, int, str | Path]]) -> None:
        """Record the entries :meth:`link_in` made, (sha256, size, source) each, in one
        transaction. Linked entries are outside the size limit (the bytes are the hub's)
        and are dropped, never written into, when their source changes."""
        if not linked:
            return
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO entries(sha256, size, created, last_access, source)"
                " VALUES(?, ?, ?, ?, ?)",
                ((sha, size, now, now, os.fspath(src)) for sha, size, src in linked),
            )
            self._db.execute("COMMIT")

    def _drop(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)
        self._db.execute("DELETE FROM entries WHERE sha256=?", (sha256,))
        guess = self._db.execute(
            "DELETE FROM guesses WHERE sha256=? RETURNING size", (sha256,)
        ).fetchone()
        if guess is not None:
            self._bump(prefetch_wasted_bytes=guess[0])

    def admit(self, temp: Path, sha256: str) -> Path:
        """Move a verified download into the cache and evict what no longer fits."""
        self._admit(temp, sha256, None)
        return self._path(sha256)

    def admit_guess(self, temp: Path, sha256: str, protect: float) -> bool:
        """Admit a prefetched blob, evicting only guesses and entries not read within
        ``protect`` seconds; False when it does not fit that way (it is not kept)."""
        return self._admit(temp, sha256, protect)

    def _admit(self, temp: Path, sha256: str, guess: float | None) -> bool:
        size = temp.stat().st_size
        final = self._path(sha256)
        final.parent.mkdir(exist_ok=True)
        now = self._clock()
        with self._lock:
            if guess is not None:
                self._db.execute("INSERT INTO guess_log(at, size) VALUES(?, ?)", (now, size))
                self._bump(prefetched=1, prefetch_bytes=size)
            os.replace(temp, final)  # over a linked entry: replaces the link, not the hub's file
            self._db.execute(  # a guess renewing an entry keeps when it was last read
                "INSERT INTO entries(sha256, size, created, last_access, source)"
                " VALUES(?, ?, ?, ?, NULL)"
                " ON CONFLICT(sha256) DO UPDATE SET size=excluded.size, created=excluded.created,"
                " source=NULL"
                + ("" if guess is not None else ", last_access=excluded.last_access"),
                (sha256, size, now, now),
            )
            if guess is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO guesses(sha256, size) VALUES(?, ?)", (sha256, size)
                )
            self._bump(bytes_fetched=size)
            self._admitted += 1
            self._total = None if self._total is None else self._total + size
            fits = self._evict(keep=sha256, protect_after=None if guess is None else now - guess)
            if not fits and guess is not None:
                self._drop(sha256)
                return False
        return True

    def _evict(self, keep: str, protect_after: float | None = None) -> bool:
        """Evict least recently used entries until the cache fits; with
        ``protect_after`` only guesses and entries last read before it. False when
        the cache still does not fit."""
        if self._total is None or self._admitted % REFRESH == 0:
            self._total = self._db.execute(
                "SELECT coalesce(sum(size), 0) FROM entries WHERE source IS NULL"
            ).fetchone()[0]
        total = self._total
        if total > self.size_limit:
            query = "SELECT sha256, size FROM entries WHERE sha256 != ? AND source IS NULL"
            args: tuple[object, ...] = (keep,)
            if protect_after is not None:
                query += " AND (last_access < ? OR sha256 IN (SELECT sha256 FROM guesses))"
                args = (keep, protect_after)
            for sha, size in self._db.execute(query + " ORDER BY last_access", args).fetchall():
                self._drop(sha)
                total -= size
                if total <= self.size_limit:
                    break
        self._total = total
        return total <= self.size_limit

    def sweep(self) -> int:
        """Remove expired entries and files the index does not know; returns how many went."""
        cutoff = self._clock() - self.ttl
        with self._lock:
            expired = [
                sha
                for sha, created, source in self._db.execute(
                    "SELECT sha256, created, source FROM entries"
                ).fetchall()
                if created < cutoff or not _still_linked(self._path(sha), source)
            ]
            for sha in expired:
                self._drop(sha)
            self._total = None
            known = {r[0] for r in self._db.execute("SELECT sha256 FROM entries")}
        orphans = 0
        for partial in self.partial_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    orphans += 1
        for sub in self.dir.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for f in sub.iterdir():
                    if f.name not in known:
                        f.unlink(missing_ok=True)
                        orphans += 1
        return len(expired) + orphans

    def stats(self) -> CacheStats:
        with self._lock:
            entries, size, linked = self._db.execute(
                "SELECT count(*), coalesce(sum(CASE WHEN source IS NULL THEN size END), 0),"
                " count(source) FROM entries"
            ).fetchone()
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return CacheStats(
            entries=entries,
            size_bytes=size,
            limit_bytes=self.size_limit,
            hits=counters.get("hits", 0),
            misses=counters.get("misses", 0),
            bytes_served=counters.get("bytes_served", 0),
            bytes_fetched=counters.get("bytes_fetched", 0),
            prefetched=counters.get("prefetched", 0),
            prefetch_hits=counters.get("prefetch_hits", 0),
            prefetch_wasted_bytes=counters.get("prefetch_wasted_bytes", 0),
            prefetch_bytes=counters.get("prefetch_bytes", 0),
            linked=linked,
        )

    async def prefetch(
        self, remote: Remote, key: str, sha256: str, *, protect: float, bucket: str = BUCKET_FILES
    ) -> bool:
        """Download a guess into the cache (verified by the hub client as any download);
        False when it was not kept (no room without evicting a recent read)."""
        if sha256 in self._fetching:
            return False
        temp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            await remote.get_blob(key, sha256, temp, self.download_limit.wrap(None), bucket=bucket)
            return await asyncio.to_thread(self.admit_guess, temp, sha256, protect)
        finally:
            temp.unlink(missing_ok=True)

    async def fetch(
        self,
        remote: Remote,
        key: str,
        sha256: str,
        bucket: str = BUCKET_FILES,
        progress: ProgressFn | None = None,
    ) -> Path:
        """The verified local copy of a blob, downloading it only on a miss."""
        hit = self.lookup(sha256)
        if hit is not None:
            return hit
        return await self.download(remote, key, sha256, bucket, progress)

    async def download(
        self,
        remote: Remote,
        key: str,
        sha256: str,
        bucket: str = BUCKET_FILES,
        progress: ProgressFn | None = None,
        size: int = -1,
    ) -> Path:
        """Download a blob into the cache (after :meth:`lookup` missed).

        Concurrent downloads of the same content share one. ``size``, when known, lets
        a small blob skip what makes a download resumable (RESUME_FROM).
        """
        running = self._fetching.get(sha256)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._fetching[sha256] = future
        temp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        paying = self.download_limit.wrap(progress)
        try:
            if isinstance(remote, ResumableGet) and not 0 <= size < RESUME_FROM:
                path = await download_resuming(self, remote, key, sha256, bucket, paying)
            else:
                await remote.get_blob(key, sha256, temp, paying, bucket=bucket)  # verifies
                path = await asyncio.to_thread(self.admit, temp, sha256)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(path)
            return path
        finally:
            self._fetching.pop(sha256, None)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _holds(path: Path, sha256: str) -> bool:
    try:
        return hash_file(path).sha256 == sha256
    except OSError:
        return False


def _still_linked(path: Path, source: str | None) -> bool:
    """Whether a cache file linked to a hub's blob (``source``) is still that blob: the
    hub may have replaced or removed it. True for the cache's own copies (no source)."""
    if source is None:
        return True
    try:
        a, b = os.stat(path), os.stat(source)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
