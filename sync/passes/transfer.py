"""The transfer phase: hash a chunk's files (the next chunk's while this one uploads),
find the hashes the hub has already, and upload the others."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Iterable, Sequence
from concurrent.futures import Executor
from pathlib import Path

from sync.errors import AuthError, DiskFull, SyncError, TransientError
from sync.hashing import Hashed, hash_file, hash_many
from sync.journal import Blob
from sync.passes.context import PassContext
from sync.passes.items import Chunk, Item, Sent, names, operation
from sync.progress import Progress
from sync.remotes.base import (
    BatchProgressFn,
    BatchPut,
    BlobUpload,
    Ingest,
    Ingested,
    Operation,
)
from sync.renames import is_rename
from sync.transfer import bounded_map, with_retries
from sync.workers import WorkerProcesses

FIND_BATCH = 1000
HASH_BATCH = 32
HASH_IN_PROCESSES_FROM = 256
"""Files in one chunk from which hashing goes to worker processes (a save never starts one)."""
WATCHED_SIZE = 4 * 1024 * 1024
"""Files from this size on get a live meter while a batch upload moves them."""


def count_done(state: Progress, items: Iterable[Item]) -> None:
    for item in items:
        if not item.counted:
            item.counted = True
            state.files_done += 1


class Transfer:
    def __init__(self, ctx: PassContext) -> None:
        self.ctx = ctx

    async def hashed_ahead(self, chunks: Iterable[Chunk]) -> AsyncGenerator[Chunk, None]:
        """Yield chunks whose files are hashed, hashing the next one meanwhile.

        Hashing (reads, CPU) and uploading (writes, network) then overlap instead of
        taking turns; at most two chunks are in memory at once.
        """
        iterator = iter(chunks)
        current = next(iterator, None)
        pending = asyncio.ensure_future(self.hash(current)) if current is not None else None
        try:
            while current is not None and pending is not None:
                await pending
                upcoming = next(iterator, None)
                pending = (
                    asyncio.ensure_future(self.hash(upcoming)) if upcoming is not None else None
                )
                yield current
                current = upcoming
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def hash(self, chunk: Chunk) -> None:
        """Hash the files of a chunk; those that cannot be read are lost to the chunk.

        Files go to the hash threads in small batches, not one future each: with
        thousands of small files the hops would cost more than the hashing. A hub
        that can :class:`Ingest` takes the small files itself, hashing and storing
        each in one read.
        """
        ctx, remote, state = self.ctx, self.ctx.remote, self.ctx.state
        to_hash = [i for i in chunk.items if i.hashed is None]
        if not to_hash:
            return
        state.current, state.current_size = to_hash[0].relpath, to_hash[0].size
        ingesting: list[Item] = []
        if isinstance(remote, Ingest):
            ingesting = [i for i in to_hash if i.size < remote.ingest_limit]
            to_hash = [i for i in to_hash if i.size >= remote.ingest_limit]
        base = str(ctx.path)  # (paths as text: a Path per file would cost more than its write)
        hashing = asyncio.ensure_future(
            hash_paths(ctx.processes, ctx.pool, [f"{base}/{i.relpath}" for i in to_hash])
        )
        ingested: Sequence[Ingested | SyncError] = []
        if ingesting:
            assert isinstance(remote, Ingest)
            try:
                ingested = await remote.ingest(
                    [(f"{base}/{i.relpath}", *names(i.relpath)) for i in ingesting],
                    self._batch_meter(ingesting),
                )
            except BaseException:
                hashing.cancel()
                await asyncio.gather(hashing, return_exceptions=True)
                raise
        outcomes: list[Hashed | Ingested | SyncError] = [
            *await hashing,
            *ingested,
        ]
        for item, outcome in zip([*to_hash, *ingesting], outcomes, strict=True):
            if isinstance(outcome, DiskFull):
                raise outcome  # the hub's disk, not this file: the pass waits for space
            if isinstance(outcome, Ingested):
                item.hashed, item.key, item.stored = outcome.hashed, outcome.key, outcome.stored
                item.ingested = True
                ctx.report.hashed += 1
            elif isinstance(outcome, Hashed):
                item.hashed = outcome
                ctx.report.hashed += 1
            else:
                chunk.lose(item, outcome)

    async def upload(self, chunk: Chunk) -> Sent:
        """Dedup and upload one hashed chunk."""
        ctx, report, state = self.ctx, self.ctx.report, self.ctx.state
        hashed = chunk.hashed
        hub_keys = await self._dedup([i for i in hashed if not i.ingested])
        uploads: dict[str, Item] = {}
        operations: list[Operation] = []
        new_blobs: list[Blob] = []
        # Content this chunk's ingest stored, counted as uploaded once: files of equal
        # content ingested side by side may each have stored it, or found the other's.
        stored = {i.hashed.sha256 for i in hashed if i.stored and i.hashed is not None}
        for item in hashed:
            assert item.hashed is not None
            sha = item.hashed.sha256
            moved = is_rename(sha, item.moved_from)
            report.renamed += moved
            if item.ingested:
                assert item.key is not None
                hub_keys.setdefault(sha, item.key)
                if sha in stored:
                    stored.discard(sha)
                    new_blobs.append(Blob(sha, item.hashed.size, item.key))
                    operations.append(
                        operation(
                            "upload", None, sha, item.hashed.size, item.relpath, item.key, None
                        )
                    )
                    report.uploaded += 1
                    report.uploaded_bytes += item.hashed.size
                elif not moved:
                    report.deduplicated += 1
                    report.dedup_bytes += item.hashed.size
            elif sha in hub_keys:
                if item.key is None and not moved:
                    report.deduplicated += 1
                    report.dedup_bytes += item.hashed.size
                item.key = hub_keys[sha]
            elif sha not in uploads:
                uploads[sha] = item
            else:
                report.deduplicated += 1
                report.dedup_bytes += item.hashed.size

        state.waiting = {i.relpath: i.hashed.size for i in uploads.values() if i.hashed is not None}
        # Files count as done one by one, as their content is in the hub (or failed):
        # all but the uploads now, then each upload as it finishes.
        uploading = {id(i) for i in uploads.values()}
        count_done(state, [i for i in chunk.items if id(i) not in uploading])
        started: dict[str, float] = {}
        each = self._upload_each(list(uploads.values()), started)
        async with contextlib.aclosing(each) as uploaded:
            async for owner, result in uploaded:
                assert owner.hashed is not None
                count_done(state, [owner])
                sha = owner.hashed.sha256
                operations.append(
                    operation(
                        "upload",
                        started.get(sha),
                        sha,
                        owner.hashed.size,
                        owner.relpath,
                        result if isinstance(result, str) else None,
                        None if isinstance(result, str) else result,
                    )
                )
                if isinstance(result, str):
                    hub_keys[sha] = result
                    new_blobs.append(Blob(sha, owner.hashed.size, result))
                    report.uploaded += 1
                    report.uploaded_bytes += owner.hashed.size
                elif isinstance(result, (AuthError, DiskFull)):
                    raise result
                else:
                    chunk.lose(owner, result)
        if new_blobs:
            with ctx.journal.transaction():
                ctx.journal.add_blobs(ctx.root.hub, new_blobs)
        return Sent(chunk, hashed, hub_keys, uploads, operations)

    async def _dedup(self, items: Sequence[Item]) -> dict[str, str]:
        """sha → key for every hash of ``items`` the hub already has (journal first, then hub)."""
        ctx = self.ctx
        hashes = {i.hashed.sha256 for i in items if i.hashed is not None}
        known = ctx.journal.known_blobs(ctx.root.hub, hashes)
        unknown = sorted(hashes - known.keys())
        found: dict[str, str] = {}
        for start in range(0, len(unknown), FIND_BATCH):
            batch = unknown[start : start + FIND_BATCH]
            found.update(
                await with_retries(lambda b=batch: ctx.remote.find_blobs(b), ctx.retry)  # type: ignore[misc]
            )
        if found:
            sizes = {i.hashed.sha256: i.hashed.size for i in items if i.hashed is not None}
            with ctx.journal.transaction():
                ctx.journal.add_blobs(
                    ctx.root.hub, (Blob(s, sizes[s], k) for s, k in found.items())
                )
        return {**known, **found}

    async def _upload_each(
        self, items: list[Item], started: dict[str, float]
    ) -> AsyncGenerator[tuple[Item, str | SyncError], None]:
        """Upload ``items``, yielding each with its key or error as it finishes.

        A hub that takes batches (:class:`BatchPut`) gets the chunk in one call;
        what failed for a transient reason then gets the per-file path, with retries.
        """
        remote = self.ctx.remote
        if items and isinstance(remote, BatchPut):
            now = time.time()
            for item in items:
                assert item.hashed is not None
                started[item.hashed.sha256] = now
            results = await remote.put_blobs(
                [self._blob_upload(item) for item in items], self._batch_meter(items)
            )
            self.ctx.state.waiting.clear()
            again = []
            for item, result in zip(items, results, strict=True):
                if isinstance(result, TransientError) and not isinstance(result, DiskFull):
                    again.append(item)
                else:
                    yield item, result
            items = again
        # A hub may take more calls in flight than it has connections or threads:
        # it says so with ``parallel_uploads``.
        limit = getattr(remote, "parallel_uploads", self.ctx.workers)

        def upload(item: Item) -> Awaitable[str]:
            return self._upload_one(item, started)

        async with contextlib.aclosing(bounded_map(items, upload, limit)) as uploaded:
            async for pair in uploaded:
                yield pair

    def _blob_upload(self, item: Item) -> BlobUpload:
        assert item.hashed is not None
        return BlobUpload(
            self.ctx.path / item.relpath, item.hashed.sha256, item.hashed.size, *names(item.relpath)
        )

    def _batch_meter(self, items: Sequence[Item]) -> BatchProgressFn:
        """Progress of a batch upload, called from hub threads: there it pays the
        bandwidth limit, and hands the loop the bytes, the current file and a meter for
        files big enough to be watched."""
        limit, progress = self.ctx.upload_limit, self.ctx.progress
        item_done = [0] * len(items)

        def show(state: Progress, index: int, n: int) -> None:
            item = items[index]
            state.bytes_done += n
            size = item.size
            state.current, state.current_size = item.relpath, size
            item_done[index] += n
            if item_done[index] >= size:
                count_done(state, [item])
            if size >= WATCHED_SIZE:
                meter = state.active.setdefault(item.relpath, [0, size])
                meter[0] += n
                if meter[0] >= size:
                    state.active.pop(item.relpath, None)

        def moved(index: int, n: int) -> None:
            if limit.rate > 0:
                limit.consume(n)
            progress.post(lambda state: show(state, index, n))

        return moved

    async def _upload_one(self, item: Item, started: dict[str, float]) -> str:
        """One file through ``put_blob``, retried on transient errors, with a live meter."""
        ctx, state = self.ctx, self.ctx.state
        up = self._blob_upload(item)
        state.current, state.current_size = item.relpath, up.size
        state.waiting.pop(item.relpath, None)
        meter = state.active[item.relpath] = [0, up.size]

        def show(state: Progress, n: int) -> None:
            state.bytes_done += n
            meter[0] += n

        def counted(n: int) -> None:  # called from transfer threads
            ctx.progress.post(lambda state: show(state, n))

        moved = ctx.upload_limit.wrap(counted)
        started[up.sha256] = time.time()
        try:
            return await with_retries(
                lambda: ctx.remote.put_blob(
                    up.source, up.sha256, up.size, up.filename, up.content_type, moved
                ),
                ctx.retry,
            )
        finally:
            state.active.pop(item.relpath, None)


async def hash_paths(
    processes: WorkerProcesses | None, pool: Executor, paths: Sequence[str]
) -> list[Hashed | SyncError]:
    """Each file's hash or error: many files go to the worker processes (which the
    interpreter lock of the agent does not slow down), a few to the pass's threads
    in small batches (not one future each: the hops would cost more than the hashing)."""
    if processes is not None and len(paths) >= HASH_IN_PROCESSES_FROM:
        return await processes.map_parts(hash_many, (), paths)
    loop = asyncio.get_running_loop()
    few = [Path(p) for p in paths]  # (the hash function's own type; cheap for a few)
    batches = [few[at : at + HASH_BATCH] for at in range(0, len(few), HASH_BATCH)]
    done = await asyncio.gather(
        *(loop.run_in_executor(pool, hash_many, b, hash_file) for b in batches)
    )
    return [outcome for batch in done for outcome in batch]
