"""The download cache and the transfer layer: eviction, expiry, verification, retries, no leaks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

import psutil
import pytest

from sync.cache import BlobCache
from sync.errors import IntegrityError, PermanentError, TransientError
from sync.journal import SCHEMA_VERSION, Journal
from sync.remotes.base import BUCKET_FILES, ManifestEntry, Operation, ProgressFn
from sync.remotes.local import LocalHub
from sync.transfer import RetryPolicy, bounded_map, with_retries
from tests.fixtures.engine import FAST_RETRY, Rig, assert_hub_mirrors


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _put(hub: LocalHub, tmp: Path, data: bytes) -> tuple[str, str]:
    src = tmp / hashlib.sha256(data).hexdigest()[:8]
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    key = await hub.put_blob(src, sha, len(data), "blob.bin", "application/octet-stream")
    return key, sha


async def test_cache_evicts_least_recently_used_over_its_limit(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    clock = Clock()
    cache = BlobCache(tmp_path / "cache", size_limit=250_000, clock=clock)
    blobs = [await _put(hub, tmp_path, os.urandom(100_000)) for _ in range(3)]
    a, b, c = blobs
    await cache.fetch(hub, *a)
    clock.now += 1
    await cache.fetch(hub, *b)
    clock.now += 1
    await cache.fetch(hub, *a)  # a is now more recently used than b
    clock.now += 1
    await cache.fetch(hub, *c)  # over the limit: b goes
    assert cache.lookup(b[1]) is None
    assert cache.lookup(a[1]) is not None and cache.lookup(c[1]) is not None
    assert cache.stats().size_bytes <= 250_000
    cache.close()
    await hub.close()


async def test_cache_entries_expire_after_ttl_on_read_and_by_sweep(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    clock = Clock()
    cache = BlobCache(tmp_path / "cache", ttl=3600, clock=clock)
    key, sha = await _put(hub, tmp_path, b"fresh bytes")
    key2, sha2 = await _put(hub, tmp_path, b"other bytes")
    await cache.fetch(hub, key, sha)
    await cache.fetch(hub, key2, sha2)
    clock.now += 3601
    assert cache.lookup(sha) is None  # expired on read
    assert cache.sweep() == 1  # the other one, by the sweep
    assert cache.stats().entries == 0
    (cache.dir / "ab").mkdir(exist_ok=True)
    (cache.dir / "ab" / "stray").write_bytes(b"x")
    assert cache.sweep() == 1  # files the index does not know are removed too
    cache.close()
    await hub.close()


async def test_partial_or_corrupt_download_is_never_served(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    cache = BlobCache(tmp_path / "cache")
    key, sha = await _put(hub, tmp_path, os.urandom(300_000))
    blob = hub.root / BUCKET_FILES / key
    blob.write_bytes(blob.read_bytes()[:1000])  # a torn copy in the hub
    with pytest.raises(IntegrityError):
        await cache.fetch(hub, key, sha)
    assert cache.lookup(sha) is None
    assert list((cache.dir / "tmp").iterdir()) == []
    cache.close()
    await hub.close()


async def test_concurrent_fetches_of_one_blob_download_once(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    cache = BlobCache(tmp_path / "cache")
    key, sha = await _put(hub, tmp_path, os.urandom(2_000_000))
    paths = await asyncio.gather(*(cache.fetch(hub, key, sha) for _ in range(8)))
    assert len(set(paths)) == 1
    stats = cache.stats()
    assert stats.bytes_fetched == 2_000_000
    cache.close()
    await hub.close()


class FlakyHub:
    """A real local hub behind an unreliable link: a share of calls fail transiently."""

    def __init__(self, hub: LocalHub, rate: float, seed: int = 1) -> None:
        self.hub = hub
        self.kind = hub.kind
        self.user_id = hub.user_id
        self.rate = rate
        self.rng = random.Random(seed)
        self.calls = 0
        self.failures = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.rng.random() < self.rate:
            self.failures += 1
            raise TransientError("connection reset by peer (injected)")

    def describe(self) -> str:
        return self.hub.describe()

    async def ping(self) -> float:
        self._maybe_fail()
        return await self.hub.ping()

    async def find_blobs(
        self, hashes: Collection[str], bucket: str = BUCKET_FILES
    ) -> dict[str, str]:
        self._maybe_fail()
        return await self.hub.find_blobs(hashes, bucket)

    async def put_blob(
        self,
        source: Path,
        sha256: str,
        size: int,
        filename: str,
        content_type: str,
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> str:
        self._maybe_fail()
        key = await self.hub.put_blob(
            source, sha256, size, filename, content_type, progress, bucket
        )
        self._maybe_fail()  # the answer is lost after the write happened
        return key

    async def get_blob(
        self,
        key: str,
        sha256: str,
        dest: Path,
        progress: ProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> None:
        self._maybe_fail()
        await self.hub.get_blob(key, sha256, dest, progress, bucket)

    async def record(self, entries: Sequence[ManifestEntry]) -> None:
        self._maybe_fail()
        await self.hub.record(entries)

    async def log_operations(self, operations: Sequence[Operation]) -> None:
        await self.hub.log_operations(operations)

    async def history(self, device: str, root_id: str, relpath: str) -> list[ManifestEntry]:
        return await self.hub.history(device, root_id, relpath)

    async def signed_url(self, key: str, expires_in: int, bucket: str = BUCKET_FILES) -> str:
        return await self.hub.signed_url(key, expires_in, bucket)

    async def close(self) -> None:
        await self.hub.close()


async def test_twenty_percent_failures_still_deliver_every_file(rig: Rig) -> None:
    from sync.engine import SyncEngine

    docs = rig.folder()
    for i in range(1000):
        (docs / f"d{i % 10}").mkdir(exist_ok=True)
        (docs / f"d{i % 10}" / f"f{i}.txt").write_bytes(os.urandom(64) + str(i).encode())
    flaky = FlakyHub(rig.hub, rate=0.2)
    engine = SyncEngine(rig.journal, {"local": flaky}, retry=FAST_RETRY, workers=8)
    root = rig.add_root(docs)
    me = psutil.Process()
    fds, tasks = me.num_fds(), len(asyncio.all_tasks())
    report = await engine.sync_root(root)
    for _ in range(3):  # a file unlucky through all its retries waits for the next pass
        if report.complete:
            break
        report = await engine.sync_root(root, retry_errors=True)
    assert report.complete, list(report.errors.items())[:3]
    assert flaky.failures > 100
    engine.close()
    assert me.num_fds() <= fds
    assert len(asyncio.all_tasks()) <= tasks
    assert not [t for t in threading.enumerate() if t.name.startswith("hubsync-hash")]
    # (checked before reading the hub's SQLite file ourselves: SQLite keeps that second
    # descriptor open while another connection of this process holds a lock on the file)
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_bounded_map_releases_every_permit_across_thousands_of_outcomes() -> None:
    running = 0
    peak = 0

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0)
            if n % 7 == 0:
                raise PermanentError(f"bad {n}")
            return n
        finally:
            running -= 1

    tasks_before = len(asyncio.all_tasks())
    results = [r async for r in bounded_map(range(5000), work, limit=16)]
    assert len(results) == 5000 and peak <= 16 and running == 0
    assert sum(isinstance(r, PermanentError) for _, r in results) == len(range(0, 5000, 7))
    assert len(asyncio.all_tasks()) == tasks_before


async def test_bounded_map_cancellation_leaves_no_task_behind() -> None:
    started = asyncio.Event()

    async def slow(n: int) -> int:
        started.set()
        await asyncio.sleep(3600)
        return n

    tasks_before = len(asyncio.all_tasks())

    async def consume() -> None:
        async for _ in bounded_map(range(100), slow, limit=8):
            pass

    consumer = asyncio.create_task(consume())
    await started.wait()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert len(asyncio.all_tasks()) == tasks_before


async def test_retries_honour_retry_after_and_give_up_on_permanent_errors() -> None:
    calls = 0

    async def throttled() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError("429 Too Many Requests", retry_after=0.05)
        return "ok"

    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await with_retries(throttled, RetryPolicy(wait_initial=0.001, wait_max=0.001)) == "ok"
    assert loop.time() - start >= 0.1  # two waits of Retry-After, not the tiny backoff

    async def rejected() -> str:
        nonlocal calls
        calls += 1
        raise PermanentError("InvalidKey")

    calls = 0
    with pytest.raises(PermanentError):
        await with_retries(rejected, FAST_RETRY)
    assert calls == 1


def test_journal_reopens_at_the_same_schema_and_refuses_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    device = journal.device_id
    journal.close()
    again = Journal(path)
    assert again.device_id == device and again.get_meta("schema_version") == str(SCHEMA_VERSION)
    again.set_meta("schema_version", "99")
    again.close()
    with pytest.raises(RuntimeError, match="newer than this HubSync"):
        Journal(path)


@pytest.mark.parametrize("files", [1, 48], ids=["one-big-file", "small-files-read-once"])
async def test_upload_limit_slows_transfers_to_the_set_rate(rig: Rig, files: int) -> None:
    from sync.engine import SyncEngine
    from sync.throttle import Bandwidth

    docs = rig.folder()
    for i in range(files):  # 3 MiB in all
        (docs / f"f{i}.bin").write_bytes(os.urandom(3 * 1024 * 1024 // files))
    limit = Bandwidth(2 * 1024 * 1024)  # 2 MiB/s
    engine = SyncEngine(rig.journal, {"local": rig.hub}, retry=FAST_RETRY, upload_limit=limit)
    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await engine.sync_root(rig.add_root(docs))
    elapsed = loop.time() - start
    engine.close()
    assert report.complete
    assert elapsed >= 1.0  # 3 MiB at 2 MiB/s, less the initial burst
    limit.set_rate(0)
    limit.consume(10**9)  # unlimited again: returns at once


def test_a_folder_mirrored_already_is_not_silently_kept_on_another_hub(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    docs = tmp_path / "docs"
    docs.mkdir()
    root = journal.add_root(docs, "local")
    assert journal.add_root(docs, "supabase") == root  # the default hub changed: kept as is
    with pytest.raises(ValueError, match="mirrored to the local hub already"):
        journal.add_root(docs, "supabase", hub_asked=True)  # `hubsync add --hub supabase`
    journal.close()
