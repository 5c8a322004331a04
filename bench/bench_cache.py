"""Predictive caching: the download cache's hit rate on a realistic read trace, with and
without prefetch.

    python bench/bench_cache.py [--days 28] [--seed 7] [--dir DIR]

The trace (seeded) looks like a person's use of a hub over weeks: projects (a folder
and a reference folder read with it) that come and go (the working set drifts over
days), sessions that read several files of a project, files re-read every day at
about the same hour, one-off reads anywhere, files that change (new versions), mixed
sizes (log-normal, 4 KB..60 MB). It is replayed against the real ``BlobCache``
(its LRU, TTL and eviction; size limit and TTL as the config defaults) fetching from
a real local hub, once with reads only and once with a prefetch round every 5
minutes (``sync.prefetch.plan`` + ``BlobCache.prefetch``, the defaults of the
config's ``[prefetch]`` budget). The first 3 days warm up and are not counted.

Blob contents are stored at 1/1024 of their nominal size, with the cache's limit and
the budgets scaled the same way, so every decision is the one at full size; bytes
are reported at nominal size.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import CacheConfig  # noqa: E402
from sync.cache import BlobCache  # noqa: E402
from sync.hashing import hash_bytes  # noqa: E402
from sync.prefetch import DAY, Access, Budget, Predictor, Resolve, plan  # noqa: E402
from sync.remotes.local import LocalHub  # noqa: E402

SCALE = 1024
START = 1_780_000_000.0 - 1_780_000_000.0 % DAY  # a midnight (UTC; the predictor's hours)
WARMUP_DAYS = 3
ROUND = 300.0


@dataclass
class File:
    item: str
    size: int
    version: int = 0
    sha256: str = ""
    key: str = ""


@dataclass
class Trace:
    files: dict[str, File]
    reads: list[tuple[float, str]] = field(default_factory=list)
    changes: list[tuple[float, str]] = field(default_factory=list)


def _size(rng: random.Random) -> int:
    return int(min(60 * 1024**2, max(4096, rng.lognormvariate(math.log(300_000), 1.6))))


def make_trace(days: int, seed: int) -> Trace:
    rng = random.Random(seed)
    files: dict[str, File] = {}
    folders: list[list[str]] = []
    for f in range(70):
        names = []
        for i in range(rng.randint(4, 30)):
            item = f"dev/home/proj{f:02d}/file{i:02d}"
            files[item] = File(item, _size(rng))
            names.append(item)
        folders.append(names)
    reference = {f: rng.randrange(len(folders)) for f in range(len(folders))}
    """A project's companion folder (specs, shared assets) read in its sessions."""
    popularity = {
        item: 1.0 / (rank + 1) ** 1.1 for names in folders for rank, item in enumerate(names)
    }
    daily = rng.sample(sorted(files), 12)
    daily_hour = {item: rng.choice([8, 9, 9, 10, 13, 17, 21]) for item in daily}
    active = rng.sample(range(len(folders)), 4)
    trace = Trace(files)
    for day in range(days):
        base = START + day * DAY
        weekend = day % 7 in (5, 6)
        if rng.random() < 0.3:  # the working set drifts
            active[rng.randrange(len(active))] = rng.randrange(len(folders))
        for item in daily:
            if rng.random() < (0.5 if weekend else 0.9):
                at = base + daily_hour[item] * 3600 + rng.gauss(0, 900)
                trace.reads.append((at, item))
        sessions = rng.randint(1, 3) if weekend else rng.randint(3, 7)
        for _ in range(sessions):
            start = base + rng.uniform(8.5, 22.0) * 3600
            project = rng.choice(active)
            names = folders[project]
            weights = [popularity[n] for n in names]
            t = start
            for _ in range(rng.randint(2, 10)):
                if rng.random() < 0.2:
                    ref = folders[reference[project]]
                    item = rng.choices(ref, [popularity[n] for n in ref])[0]
                else:
                    item = rng.choices(names, weights)[0]
                trace.reads.append((t, item))
                t += rng.expovariate(1 / 120)
            for item in rng.sample(names, k=max(1, len(names) // 10)):
                if rng.random() < 0.4:  # edited in the session: a new version
                    trace.changes.append((t + 60, item))
        for _ in range(rng.randint(1, 5)):  # one-off reads anywhere
            item = rng.choice(list(files))
            trace.reads.append((base + rng.uniform(7, 23) * 3600, item))
    trace.reads.sort()
    trace.changes.sort()
    return trace


def _content(f: File) -> bytes:
    head = f"{f.item}@{f.version}".encode()
    body = max(1, f.size // SCALE - len(head))
    return head + random.Random(head).randbytes(body)


async def _store(hub: LocalHub, f: File, tmp: Path) -> None:
    data = _content(f)
    f.sha256 = hash_bytes(data)
    source = tmp / "upload"
    source.write_bytes(data)
    f.key = await hub.put_blob(
        source, f.sha256, len(data), f.item.rsplit("/", 1)[1], "application/octet-stream"
    )


@dataclass
class Result:
    reads: int
    hits: int
    wasted: int
    prefetched: int
    prefetched_bytes: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.reads if self.reads else 0.0


async def replay(trace: Trace, work: Path, prefetch: bool) -> Result:
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    hub = LocalHub(work / "hub")
    files = {k: File(v.item, v.size) for k, v in trace.files.items()}
    for f in files.values():
        await _store(hub, f, tmp)
    now = [START]
    cfg = CacheConfig()
    cache = BlobCache(
        work / "cache",
        size_limit=cfg.size_limit_bytes // SCALE,
        ttl=cfg.ttl_seconds,
        clock=lambda: now[0],
    )
    budget = Budget(
        bytes_per_day=cfg.prefetch_bytes_per_day // SCALE, cache_share=cfg.prefetch_cache_share
    )
    predictor = Predictor("dev")
    reads = hits = 0
    changes = list(trace.changes)
    next_round = START
    try:
        for at, item in trace.reads:
            while prefetch and next_round <= at:
                now[0] = next_round
                for guess in plan(predictor, cache, next_round, budget, _current(files)):
                    await cache.prefetch(hub, guess.key, guess.sha256, protect=budget.protect)
                next_round += ROUND
            while changes and changes[0][0] <= at:
                f = files[changes.pop(0)[1]]
                f.version += 1
                await _store(hub, f, tmp)
            now[0] = at
            f = files[item]
            before = cache.stats().hits
            await cache.fetch(hub, f.key, f.sha256)
            hit = cache.stats().hits > before
            predictor.learn([Access(item, f.sha256, f.key, f.size, at, "dev")])
            if at < START + WARMUP_DAYS * DAY:
                continue
            reads += 1
            hits += hit
        stats = cache.stats()
        unread, _ = cache.guessed_bytes(now[0])
        return Result(
            reads,
            hits,
            (stats.prefetch_wasted_bytes + unread) * SCALE,
            stats.prefetched,
            stats.prefetch_bytes * SCALE,
        )
    finally:
        cache.close()
        await hub.close()


def _current(files: dict[str, File]) -> Resolve:
    def current(item: str) -> tuple[str, str, int] | None:
        f = files.get(item)
        return None if f is None else (f.sha256, f.key, len(_content(f)))

    return current


def mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    trace = make_trace(args.days, args.seed)
    counted = [r for r in trace.reads if r[0] >= START + WARMUP_DAYS * DAY]
    print(
        f"trace: {len(trace.files)} files in 70 folders "
        f"({mb(sum(f.size for f in trace.files.values()))}), {len(trace.reads)} reads over "
        f"{args.days} days ({len(counted)} counted), {len(trace.changes)} new versions"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        started = time.perf_counter()
        plain = await replay(trace, Path(d) / "plain", prefetch=False)
        with_prefetch = await replay(trace, Path(d) / "prefetch", prefetch=True)
        took = time.perf_counter() - started
    print(f"without prefetch: {plain.hits}/{plain.reads} reads from the cache")
    print(
        f"with prefetch:    {with_prefetch.hits}/{with_prefetch.reads} reads from the cache,"
        f" {with_prefetch.prefetched} guesses fetched ({mb(with_prefetch.prefetched_bytes)}),"
        f" {mb(with_prefetch.wasted)} of them never read"
    )
    print(f"(replayed in {took:.0f} s)")
    improvement = (with_prefetch.hit_rate / plain.hit_rate - 1) if plain.hit_rate else 0.0
    print(
        f"prefetch: hit rate {plain.hit_rate:.1%} -> {with_prefetch.hit_rate:.1%},"
        f" improvement {improvement:+.1%}, wasted {mb(with_prefetch.wasted)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
