"""Analytics kept bounded in the journal: per-hour rollups, reads, and the hub's make-up.

``rollup_hourly(hour, name, value)`` holds, per hour, the transfers and bytes (summed
from the agent's ``metrics`` counter rows), the save-to-hub latency p50/p95 (the
median of the p50s and the highest p95 flushed in that hour), the cache's hits and
misses with the share prefetch served, and the reads of hub files (all devices,
from the hubs' read logs). ``rollup_files`` counts reads per file (the most read
are kept). Raw ``metrics`` rows older than RAW_DAYS are folded into one row per hour
and name, so every sum over hours (and the all-time totals) stays exact; hourly
rollups older than KEEP_DAYS go. Days are sums of hours, computed when asked.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from sync.cache import CacheStats
from sync.prefetch import Access

HOUR = 3600.0
DAY = 86400.0
RAW_DAYS = 7
KEEP_DAYS = 400
FILES_KEPT = 500

UPLOADS, UPLOAD_BYTES = "uploads", "upload_bytes"
DOWNLOADS, DOWNLOAD_BYTES = "downloads", "download_bytes"
P50, P95 = "latency_p50", "latency_p95"
HITS, MISSES, PREFETCH_HITS = "cache_hits", "cache_misses", "prefetch_hits"
READS = "reads"

_COUNTERS = {
    "files_uploaded": UPLOADS,
    "bytes_uploaded": UPLOAD_BYTES,
    "files_downloaded": DOWNLOADS,
    "bytes_downloaded": DOWNLOAD_BYTES,
}
_ADDITIVE = (UPLOADS, UPLOAD_BYTES, DOWNLOADS, DOWNLOAD_BYTES, HITS, MISSES, PREFETCH_HITS, READS)


def create_schema(db: Any) -> None:
    """The journal migration that adds the rollup tables (``db``: sqlite_utils.Database)."""
    db.execute(
        """CREATE TABLE rollup_hourly (
            hour REAL NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
            PRIMARY KEY (hour, name)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE rollup_files (
            path TEXT PRIMARY KEY, reads INTEGER NOT NULL, last REAL NOT NULL) WITHOUT ROWID"""
    )
    db.execute(
        "CREATE TABLE rollup_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
    )


def _hour(ts: float) -> float:
    return ts - ts % HOUR


class JournalRollups:
    """Over the journal's connection (made by :meth:`Journal.rollups`); every write is one
    transaction, or joins the journal's open one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        if self._conn.in_transaction:  # inside the journal's own transaction
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _state(self, key: str, default: str) -> str:
        row = self._conn.execute("SELECT value FROM rollup_state WHERE key=?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def _set_state(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO rollup_state(key, value) VALUES(?, ?)", (key, value)
        )

    def _add(self, hour: float, name: str, value: float) -> None:
        self._conn.execute(
            "INSERT INTO rollup_hourly(hour, name, value) VALUES(?, ?, ?)"
            " ON CONFLICT DO UPDATE SET value = value + excluded.value",
            (hour, name, value),
        )

    def _put(self, hour: float, name: str, value: float) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO rollup_hourly(hour, name, value) VALUES(?, ?, ?)",
            (hour, name, value),
        )

    def roll_up(self, now: float, cache: CacheStats | None = None) -> None:
        """Roll the metrics rows up to ``now`` into hours (the current hour again at the
        next call), add the cache's counts since the last call, fold and prune."""
        with self._tx():
            done = float(self._state("metrics_until", "0"))
            start = _hour(done)
            rows = self._conn.execute(
                "SELECT ts, name, value FROM metrics WHERE ts >= ? AND ts < ? ORDER BY ts",
                (start, now),
            ).fetchall()
            sums: Counter[tuple[float, str]] = Counter()
            p50s: dict[float, list[float]] = {}
            p95s: dict[float, float] = {}
            for ts, name, value in rows:
                h = _hour(ts)
                if name in _COUNTERS:
                    sums[(h, _COUNTERS[name])] += value
                elif name == P50:
                    p50s.setdefault(h, []).append(value)
                elif name == P95:
                    p95s[h] = max(p95s.get(h, 0.0), value)
            for (h, name), value in sums.items():
                self._put(h, name, value)
            for h, values in p50s.items():
                self._put(h, P50, statistics.median(values))
            for h, value in p95s.items():
                self._put(h, P95, value)
            self._set_state("metrics_until", repr(_hour(now)))
            if cache is not None:
                self._cache_delta(_hour(now), cache)
            self._fold(now - RAW_DAYS * DAY)
            self._conn.execute("DELETE FROM rollup_hourly WHERE hour < ?", (now - KEEP_DAYS * DAY,))

    def _cache_delta(self, hour: float, cache: CacheStats) -> None:
        seen = json.loads(self._state("cache_seen", "{}"))
        now = {HITS: cache.hits, MISSES: cache.misses, PREFETCH_HITS: cache.prefetch_hits}
        for name, value in now.items():
            delta = value - int(seen.get(name, 0))
            if delta > 0:
                self._add(hour, name, delta)
        self._set_state("cache_seen", json.dumps(now))

    def _fold(self, before: float) -> None:
        """Old raw metrics rows: one row per hour and counter; latency rows go (rolled up)."""
        cutoff = _hour(before)
        old = self._conn.execute(
            "SELECT ts - ts % 3600, name, sum(value), count(*) FROM metrics WHERE ts < ?"
            " AND name NOT LIKE 'latency%' AND name != 'queue_length' GROUP BY 1, 2",
            (cutoff,),
        ).fetchall()
        raw = self._conn.execute("SELECT count(*) FROM metrics WHERE ts < ?", (cutoff,)).fetchone()
        if raw[0] == len(old):
            return  # folded already
        self._conn.execute("DELETE FROM metrics WHERE ts < ?", (cutoff,))
        self._conn.executemany(
            "INSERT INTO metrics(ts, name, value) VALUES(?, ?, ?)",
            ((h, n, v) for h, n, v, _ in old),
        )

    def record_reads(self, accesses: Iterable[Access]) -> int:
        """Count reads newer than those counted before (a log read again counts once)."""
        with self._tx():
            after = float(self._state("reads_until", "0"))
            newest = after
            per_hour: Counter[float] = Counter()
            per_file: Counter[str] = Counter()
            last: dict[str, float] = {}
            for a in accesses:
                if a.at <= after:
                    continue
                newest = max(newest, a.at)
                per_hour[_hour(a.at)] += 1
                path = a.item.split("/", 1)[-1]
                per_file[path] += 1
                last[path] = max(last.get(path, 0.0), a.at)
            for h, n in per_hour.items():
                self._add(h, READS, n)
            self._conn.executemany(
                "INSERT INTO rollup_files(path, reads, last) VALUES(?, ?, ?) ON CONFLICT"
                " DO UPDATE SET reads = reads + excluded.reads, last = max(last, excluded.last)",
                ((p, n, last[p]) for p, n in per_file.items()),
            )
            self._conn.execute(
                "DELETE FROM rollup_files WHERE path NOT IN"
                " (SELECT path FROM rollup_files ORDER BY reads DESC, last DESC LIMIT ?)",
                (FILES_KEPT,),
            )
            self._set_state("reads_until", repr(newest))
        return sum(per_hour.values())

    # -- what the charts show --------------------------------------------------------

    def period(self, since: float, until: float, utc_offset: float = 0.0) -> dict[str, Any]:
        """The figures of ``[since, until)``: hours, days (local), totals, reads by hour
        of the day, cache hit rates with and without prefetch."""
        rows = self._conn.execute(
            "SELECT hour, name, value FROM rollup_hourly WHERE hour >= ? AND hour < ?"
            " ORDER BY hour",
            (_hour(since), until),
        ).fetchall()
        hours: dict[float, dict[str, float]] = {}
        for h, name, value in rows:
            hours.setdefault(h, {})[name] = value
        days: dict[float, dict[str, float]] = {}
        by_hour_of_day = [0] * 24
        totals: dict[str, float] = dict.fromkeys(_ADDITIVE, 0.0)
        for h, values in hours.items():
            local = h + utc_offset
            day = local - local % DAY - utc_offset
            for name in _ADDITIVE:
                if name in values:
                    daily = days.setdefault(day, dict.fromkeys(_ADDITIVE, 0.0))
                    daily[name] += values[name]
                    totals[name] += values[name]
            by_hour_of_day[int(local % DAY // HOUR)] += int(values.get(READS, 0))
        p50 = [v[P50] for v in hours.values() if P50 in v]
        p95 = [v[P95] for v in hours.values() if P95 in v]
        lookups = totals[HITS] + totals[MISSES]
        return {
            "since": since,
            "until": until,
            "hourly": [{"hour": h, **v} for h, v in hours.items()],
            "daily": [{"day": d, **v} for d, v in sorted(days.items())],
            "totals": totals,
            "latency": {
                "p50": statistics.median(p50) if p50 else None,
                "p95": max(p95) if p95 else None,
            },
            "cache": {
                "hits": int(totals[HITS]),
                "misses": int(totals[MISSES]),
                "prefetch_hits": int(totals[PREFETCH_HITS]),
                "hit_rate": totals[HITS] / lookups if lookups else None,
                "hit_rate_without_prefetch": (totals[HITS] - totals[PREFETCH_HITS]) / lookups
                if lookups
                else None,
            },
            "reads_by_hour_of_day": by_hour_of_day,
        }

    def top_files(self, limit: int = 15) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            "SELECT path, reads, last FROM rollup_files ORDER BY reads DESC, last DESC LIMIT ?",
            (limit,),
        )
        return [{"path": p, "reads": n, "last": t} for p, n, t in cur]

    def hub_makeup(self) -> dict[str, Any]:
        """Hub size by folder and by file type, and what dedup saves, from the versions
        this device recorded (every version the hub keeps of its folders)."""
        rows = self._conn.execute(
            "SELECT r.path, v.relpath, v.sha256, v.size FROM versions v"
            " JOIN roots r ON r.id = v.root_id WHERE v.deleted = 0"
        ).fetchall()
        by_folder: Counter[str] = Counter()
        by_type: Counter[str] = Counter()
        seen_folder: set[tuple[str, str]] = set()
        seen_type: set[tuple[str, str]] = set()
        stored: dict[str, int] = {}
        logical = 0
        for folder, rel, sha, size in rows:
            logical += size
            stored[sha] = size
            if (folder, sha) not in seen_folder:
                seen_folder.add((folder, sha))
                by_folder[folder] += size
            kind = PurePosixPath(rel).suffix.lower().lstrip(".") or "(none)"
            if (kind, sha) not in seen_type:
                seen_type.add((kind, sha))
                by_type[kind] += size
        stored_bytes = sum(stored.values())
        return {
            "by_folder": dict(by_folder.most_common()),
            "by_type": dict(by_type.most_common()),
            "versions": len(rows),
            "logical_bytes": logical,
            "stored_bytes": stored_bytes,
            "dedup_saved_bytes": logical - stored_bytes,
            "compression_saved_bytes": 0,
        }

    def report(self, since: float, until: float, utc_offset: float = 0.0) -> dict[str, Any]:
        """This period, the one of the same length before it, and what is not per period."""
        span = until - since
        return {
            "current": self.period(since, until, utc_offset),
            "previous": self.period(since - span, since, utc_offset),
            "top_files": self.top_files(),
            "hub": self.hub_makeup(),
        }
