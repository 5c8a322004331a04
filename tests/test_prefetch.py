"""Predictive caching: guesses are verified before they are served, never stale, within
their budget, and none is fetched when prefetch is off, the link metered or the
machine busy."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from agent.context import Context
from agent.daemon.prefetch import PrefetchTask
from agent.platform.paths import resolve_paths
from sync.access_log import to_access
from sync.cache import BlobCache
from sync.prefetch import DAY, Access, Budget, Predictor, plan
from sync.remotes.base import Operation
from sync.remotes.local import LocalHub

T0 = 1_780_000_000.0 - 1_780_000_000.0 % DAY


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def _put(hub: LocalHub, tmp: Path, data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    src = tmp / sha[:8]
    src.write_bytes(data)
    return await hub.put_blob(src, sha, len(data), "f.bin", "application/octet-stream"), sha


def _daily(item: str, key: str, sha: str, size: int, days: int) -> list[Access]:
    """``item`` read every day at 09:00 for ``days`` days."""
    return [Access(item, sha, key, size, T0 + d * DAY + 9 * 3600) for d in range(days)]


async def test_a_guess_is_hashed_again_before_it_is_served(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    cache = BlobCache(tmp_path / "cache", clock=Clock())
    data = os.urandom(50_000)
    key, sha = await _put(hub, tmp_path, data)
    assert await cache.prefetch(hub, key, sha, protect=3600)
    cached = cache.dir / sha[:2] / sha
    cached.write_bytes(b"x" + data[1:])  # damaged on disk after it was fetched
    assert cache.lookup(sha) is None  # not served: a miss, and the copy is gone
    assert not cached.exists()
    path = await cache.fetch(hub, key, sha)
    assert path.read_bytes() == data
    stats = cache.stats()
    assert (stats.prefetched, stats.prefetch_hits, stats.prefetch_wasted_bytes) == (1, 0, 50_000)
    cache.close()
    await hub.close()


async def test_a_read_after_the_file_changed_gets_the_new_version(tmp_path: Path) -> None:
    """Guesses are by content: a newer version is never answered with the old copy."""
    hub = LocalHub(tmp_path / "hub")
    clock = Clock()
    cache = BlobCache(tmp_path / "cache", clock=clock)
    old, new = os.urandom(10_000), os.urandom(10_000)
    (k1, s1), (k2, s2) = await _put(hub, tmp_path, old), await _put(hub, tmp_path, new)
    predictor = Predictor()
    predictor.learn(_daily("dev/home/report.txt", k1, s1, 10_000, 5))
    clock.now = T0 + 5 * DAY + 8 * 3600  # an hour before the usual read
    guesses = plan(predictor, cache, clock.now, Budget())
    assert [g.sha256 for g in guesses] == [s1]
    await cache.prefetch(hub, k1, s1, protect=3600)
    served = await cache.fetch(hub, k2, s2)  # meanwhile the file became ``new``
    assert served.read_bytes() == new
    assert cache.stats().prefetch_hits == 0
    assert (await cache.fetch(hub, k1, s1)).read_bytes() == old
    assert cache.stats().prefetch_hits == 1
    cache.close()
    await hub.close()


async def test_guesses_stay_within_the_daily_budget_and_the_cache_share(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    clock = Clock()
    cache = BlobCache(tmp_path / "cache", size_limit=1_000_000, clock=clock)
    predictor = Predictor()
    reads: list[Access] = []
    for i in range(10):
        key, sha = await _put(hub, tmp_path, os.urandom(100_000))
        reads += _daily(f"dev/home/f{i}", key, sha, 100_000, 6)
    predictor.learn(sorted(reads, key=lambda a: a.at))
    clock.now = T0 + 6 * DAY + 8 * 3600
    by_day = plan(predictor, cache, clock.now, Budget(bytes_per_day=250_000, cache_share=1.0))
    assert len(by_day) == 2
    by_share = plan(predictor, cache, clock.now, Budget(cache_share=0.3))
    assert len(by_share) == 3
    for g in by_share:
        await cache.prefetch(hub, g.key, g.sha256, protect=3600)
    assert plan(predictor, cache, clock.now, Budget(cache_share=0.3)) == []  # share is full
    clock.now += 3600  # a day's budget counts what was fetched in the last 24 h
    assert plan(predictor, cache, clock.now, Budget(bytes_per_day=350_000, cache_share=1.0)) == []
    cache.close()
    await hub.close()


async def test_a_guess_never_evicts_a_recent_read(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    clock = Clock()
    cache = BlobCache(tmp_path / "cache", size_limit=250_000, clock=clock)
    read = [await _put(hub, tmp_path, os.urandom(100_000)) for _ in range(2)]
    for key, sha in read:
        await cache.fetch(hub, key, sha)
    guess_key, guess_sha = await _put(hub, tmp_path, os.urandom(100_000))
    assert not cache.room_for_guess(100_000, protect=3600)
    assert not await cache.prefetch(hub, guess_key, guess_sha, protect=3600)
    assert all(cache.fresh_until(sha) is not None for _, sha in read)
    assert cache.fresh_until(guess_sha) is None
    clock.now += 7200  # the reads are no longer recent: now a guess may take their place
    assert await cache.prefetch(hub, guess_key, guess_sha, protect=3600)
    assert cache.fresh_until(guess_sha) is not None
    cache.close()
    await hub.close()


async def test_the_hub_read_log_teaches_the_predictor(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    key, sha = await _put(hub, tmp_path, b"notes")
    meta = {"device_id": "laptop", "root_path": "/home/me/docs", "rel_path": "notes.txt"}
    await hub.record_reads(
        [
            Operation(
                "download",
                "completed",
                key=key,
                bytes=5,
                started_at=f"2026-12-0{d}T09:00:00+00:00",
                metadata=meta,
            )
            for d in (1, 2)
        ]
    )
    accesses = [to_access(row) for row in await hub.read_log("2000-01-01")]
    assert [a.item if a else None for a in accesses] == ["laptop/home/me/docs/notes.txt"] * 2
    assert accesses[0] is not None and accesses[0].sha256 == sha
    await hub.close()


@pytest.fixture
async def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PrefetchTask:
    monkeypatch.setenv("HUBSYNC_METERED", "0")
    ctx = Context.open(resolve_paths({"HUBSYNC_HOME": str(tmp_path / "home")}).ensure())
    prefetch = PrefetchTask(ctx, asyncio.Lock())
    prefetch.max_load = 1e9
    yield prefetch
    await ctx.aclose()


async def test_prefetch_stops_when_off_metered_or_busy(
    task: PrefetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert task.why_not() is None
    task.ctx.config.cache.prefetch = False
    assert task.why_not() == "off"
    assert await task.round() == 0 and task.last_reason == "off"
    task.ctx.config.cache.prefetch = True
    monkeypatch.setenv("HUBSYNC_METERED", "1")
    assert task.why_not() == "metered link"
    task.ctx.config.cache.prefetch_metered = "no"  # the user says it is not
    assert task.why_not() is None
    async with task.pass_lock:
        assert task.why_not() == "a pass is running"
    task.max_load = -1.0  # any load is too much
    assert task.why_not() == "machine busy"
    assert await task.round() == 0
    assert task.ctx.cache.stats().prefetched == 0
