"""What the agent has done: counters, gauges and the event-to-hub latency, kept over time.

``Metrics`` lives in memory and is cheap to update from the event loop.
``MetricsStore`` appends what changed since its last flush to the journal's
``metrics(ts, name, value)`` table: counter deltas (so a sum over any period is
that period's total, across agent restarts), gauges when they changed, and the
latency percentiles of the samples seen since the previous flush. An idle
agent writes nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

FILES_UPLOADED = "files_uploaded"
BYTES_UPLOADED = "bytes_uploaded"
FILES_DOWNLOADED = "files_downloaded"
BYTES_DOWNLOADED = "bytes_downloaded"
DEDUP_HITS = "dedup_hits"
DEDUP_BYTES_SAVED = "dedup_bytes_saved"
ERRORS_PREFIX = "errors."
QUEUE_LENGTH = "queue_length"
LATENCY_P50 = "latency_p50"
LATENCY_P95 = "latency_p95"
LATENCY_COUNT = "latency_count"

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the latency histogram; one more bucket holds the rest."""


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile ``q`` (0..1) of already sorted values."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class LatencyHistogram:
    """All-time bucket counts plus the last ``window`` samples for exact p50/p95."""

    def __init__(self, window: int = 1024) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=window)

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds
        self.recent.append(seconds)

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.recent)
        bounds: list[str] = [f"{b:g}" for b in LATENCY_BUCKETS] + ["inf"]
        return {
            "count": self.count,
            "mean": self.total / self.count if self.count else None,
            "p50": percentile(ordered, 0.50),
            "p95": percentile(ordered, 0.95),
            "buckets": dict(zip(bounds, self.buckets, strict=True)),
        }


class Metrics:
    """In-memory figures of this agent run. Not thread-safe: update from one thread."""

    def __init__(self, *, latency_window: int = 1024, clock: Callable[[], float] = time.time):
        self.counters: Counter[str] = Counter()
        self.gauges: dict[str, float] = {}
        self.latency = LatencyHistogram(latency_window)
        self.started_at = clock()
        self._clock = clock
        self._unflushed_latency: list[float] = []

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def file_uploaded(self, nbytes: int) -> None:
        self.counters[FILES_UPLOADED] += 1
        self.counters[BYTES_UPLOADED] += nbytes

    def file_downloaded(self, nbytes: int) -> None:
        self.counters[FILES_DOWNLOADED] += 1
        self.counters[BYTES_DOWNLOADED] += nbytes

    def dedup_hit(self, bytes_saved: int) -> None:
        """Content the hub already had: no upload needed."""
        self.counters[DEDUP_HITS] += 1
        self.counters[DEDUP_BYTES_SAVED] += bytes_saved

    def error(self, kind: str) -> None:
        """``kind`` is a ``sync.errors`` kind (transient, auth, permanent, ...)."""
        self.counters[ERRORS_PREFIX + kind] += 1

    def set_gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def set_queue_length(self, n: int) -> None:
        self.gauges[QUEUE_LENGTH] = n

    def observe_latency(self, seconds: float) -> None:
        """Time from the file-system event to the file being recorded in the hub."""
        self.latency.observe(seconds)
        self._unflushed_latency.append(seconds)
        if len(self._unflushed_latency) > 100_000:  # nobody flushes: keep memory bounded
            del self._unflushed_latency[:50_000]

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-ready (the ``metrics`` control method returns this)."""
        errors = {
            k.removeprefix(ERRORS_PREFIX): v
            for k, v in self.counters.items()
            if k.startswith(ERRORS_PREFIX)
        }
        counters = {k: v for k, v in self.counters.items() if not k.startswith(ERRORS_PREFIX)}
        for name in (
            FILES_UPLOADED,
            BYTES_UPLOADED,
            FILES_DOWNLOADED,
            BYTES_DOWNLOADED,
            DEDUP_HITS,
            DEDUP_BYTES_SAVED,
        ):
            counters.setdefault(name, 0)
        return {
            "since": self.started_at,
            "counters": counters,
            "errors": errors,
            "gauges": {QUEUE_LENGTH: 0, **self.gauges},
            "latency": self.latency.snapshot(),
        }

    def take_unflushed_latency(self) -> list[float]:
        samples, self._unflushed_latency = self._unflushed_latency, []
        return samples


METRICS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS metrics (ts REAL NOT NULL, name TEXT NOT NULL, value REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS metrics_name_ts ON metrics (name, ts)",
)


class MetricsStore:
    """Rows of ``metrics(ts, name, value)`` in the journal (or any SQLite file).

    Give it the journal's connection — rows then join the caller's open
    transaction when there is one (the caller commits), else are committed at
    once — or a path, for which it opens a short-lived connection per call.
    """

    def __init__(
        self, target: sqlite3.Connection | str | Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._conn = target if isinstance(target, sqlite3.Connection) else None
        self._path = None if isinstance(target, sqlite3.Connection) else Path(target)
        self._clock = clock
        self._flushed_counters: Counter[str] = Counter()
        self._flushed_gauges: dict[str, float] = {}
        for statement in METRICS_SCHEMA:
            self._write(statement, [()])

    def flush(self, metrics: Metrics) -> int:
        """Write what changed since the last flush; returns the number of rows written."""
        ts = self._clock()
        rows: list[tuple[float, str, float]] = []
        for name, value in metrics.counters.items():
            delta = value - self._flushed_counters[name]
            if delta:
                rows.append((ts, name, float(delta)))
        for name, gauge in metrics.gauges.items():
            if self._flushed_gauges.get(name) != gauge:
                rows.append((ts, name, float(gauge)))
        samples = sorted(metrics.take_unflushed_latency())
        if samples:
            rows += [
                (ts, LATENCY_P50, percentile(samples, 0.50) or 0.0),
                (ts, LATENCY_P95, percentile(samples, 0.95) or 0.0),
                (ts, LATENCY_COUNT, float(len(samples))),
            ]
        if rows:
            self._write("INSERT INTO metrics (ts, name, value) VALUES (?, ?, ?)", rows)
        self._flushed_counters = Counter(metrics.counters)
        self._flushed_gauges = dict(metrics.gauges)
        return len(rows)

    def all_time(
        self, metrics: Metrics, names: Iterable[str], before: dict[str, float]
    ) -> dict[str, int]:
        """Counters over every agent run: ``before`` (the stored totals when this run
        started) plus this run's counters."""
        return {name: int(before.get(name, 0.0)) + metrics.counters[name] for name in names}

    def totals(self, names: Iterable[str] | None = None, *, since: float = 0.0) -> dict[str, float]:
        """Sum of the rows per name since ``since`` (all time by default): counter totals."""
        query = "SELECT name, SUM(value) FROM metrics WHERE ts >= ?"
        args: list[Any] = [since]
        if names is not None:
            wanted = list(names)
            query += f" AND name IN ({','.join('?' * len(wanted))})"
            args += wanted
        with self._connection() as conn:
            return {name: total for name, total in conn.execute(query + " GROUP BY name", args)}

    def series(self, name: str, *, since: float = 0.0) -> list[tuple[float, float]]:
        """``(ts, value)`` rows of one metric, oldest first: what a chart plots."""
        with self._connection() as conn:
            cur = conn.execute(
                "SELECT ts, value FROM metrics WHERE name = ? AND ts >= ? ORDER BY ts",
                (name, since),
            )
            return [(ts, value) for ts, value in cur]

    def prune(self, older_than: float) -> int:
        """Delete rows older than ``older_than`` (a timestamp); returns how many."""
        return self._write("DELETE FROM metrics WHERE ts < ?", [(older_than,)])

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        with self._connection() as conn:
            joined = self._conn is not None and conn.in_transaction
            cur = conn.executemany(sql, rows) if len(rows) > 1 else conn.execute(sql, rows[0])
            if not joined:
                conn.commit()
            return cur.rowcount

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._conn is not None:
            yield self._conn
            return
        assert self._path is not None
        conn = sqlite3.connect(self._path, timeout=10)
        try:
            yield conn
        finally:
            conn.close()
