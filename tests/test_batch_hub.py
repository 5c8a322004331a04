"""Batch puts and read-once ingest on the local hub, and how the engine uses them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

import sync.passes.items
import sync.remotes.local.copying
from sync.engine import SyncEngine
from sync.errors import (
    AuthError,
    FileChangedError,
    LocalFileError,
    PermanentError,
    SyncError,
    TransientError,
)
from sync.hashing import CHUNK
from sync.remotes.base import (
    BUCKET_FILES,
    BatchProgressFn,
    BlobUpload,
    Ingested,
    Operation,
    ProgressFn,
)
from sync.remotes.local import LocalHub
from tests.fixtures.engine import FAST_RETRY, Rig, assert_hub_mirrors, sha_of


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def upload_of(path: Path, sha256: str | None = None) -> BlobUpload:
    return BlobUpload(
        path, sha256 or sha_of(path), path.stat().st_size, path.name, "application/octet-stream"
    )


async def test_batch_put_gives_each_upload_its_own_outcome(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    good = write(tmp_path / "good.txt", b"good bytes")
    changed = write(tmp_path / "changed.txt", b"old")
    changed_upload = upload_of(changed)
    changed.write_bytes(b"new")
    gone = write(tmp_path / "gone.txt", b"short-lived")
    gone_upload = upload_of(gone)
    gone.unlink()
    bad_hash = BlobUpload(good, "not-a-hash", 10, "good.txt", "text/plain")
    moved: dict[int, int] = {}

    def progress(index: int, n: int) -> None:
        moved[index] = moved.get(index, 0) + n

    results = await hub.put_blobs(
        [upload_of(good), bad_hash, gone_upload, changed_upload], progress
    )
    key = results[0]
    assert isinstance(key, str)
    assert (hub.root / BUCKET_FILES / key).read_bytes() == b"good bytes"
    assert key == await hub.put_blob(good, sha_of(good), 10, "good.txt", "text/plain")
    assert isinstance(results[1], PermanentError)
    assert isinstance(results[2], LocalFileError) and "vanished" in results[2].message
    assert isinstance(results[3], FileChangedError)
    assert moved[0] == 10
    assert not list((hub.root / ".tmp").glob("*.part"))  # nothing half-written is left
    await hub.close()


async def test_ingest_reads_once_stores_new_content_and_finds_known_content(
    tmp_path: Path,
) -> None:
    hub = LocalHub(tmp_path / "hub")
    first = write(tmp_path / "a" / "report.pdf", b"%PDF same bytes")
    twin = write(tmp_path / "b" / "copy.pdf", b"%PDF same bytes")
    big = write(tmp_path / "big.bin", os.urandom(CHUNK))
    results = await hub.ingest([(p, p.name, "application/pdf") for p in (first, twin, big)])
    one, two, three = results
    assert isinstance(one, Ingested) and isinstance(two, Ingested)
    assert one.stored and not two.stored  # the second copy adds no blob
    assert one.key == two.key
    assert one.hashed.sha256 == hashlib.sha256(b"%PDF same bytes").hexdigest()
    assert one.hashed.inode == first.stat().st_ino
    assert (hub.root / BUCKET_FILES / one.key).read_bytes() == b"%PDF same bytes"
    # Too big to hold in memory: the engine hashes such files first instead.
    assert isinstance(three, FileChangedError)
    await hub.close()


class ShakyBatchHub(LocalHub):
    """A local hub whose batch puts fail transiently for every other file, once each."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ingest_limit = 0  # every file takes the hash-then-put path
        self.failed: set[str] = set()
        self.single_puts = 0

    async def put_blobs(
        self,
        uploads: Sequence[BlobUpload],
        progress: BatchProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> list[str | SyncError]:
        kept = [u for i, u in enumerate(uploads) if i % 2 or u.sha256 in self.failed]
        done = iter(await super().put_blobs(kept, progress, bucket))
        out: list[str | SyncError] = []
        for i, upload in enumerate(uploads):
            if i % 2 or upload.sha256 in self.failed:
                out.append(next(done))
            else:
                self.failed.add(upload.sha256)
                out.append(TransientError("connection reset (injected)"))
        return out

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
        self.single_puts += 1
        return await super().put_blob(
            source, sha256, size, filename, content_type, progress, bucket
        )


async def test_transient_batch_failures_are_retried_file_by_file(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(40):
        write(docs / f"f{i:02d}.txt", f"file {i}".encode())
    hub = ShakyBatchHub(rig.tmp / "shaky-hub")
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY)
    root = rig.add_root(docs)
    report = await engine.sync_root(root)
    engine.close()
    await hub.close()
    assert report.complete, report.errors
    assert report.uploaded == 40
    assert hub.single_puts == 20  # exactly the ones the batch lost
    assert_hub_mirrors(hub.root, root.id, docs)


class HubLosingItsSession(LocalHub):
    """Signs the user out on its second batch of uploads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ingest_limit = 0
        self.batches = 0

    async def put_blobs(
        self,
        uploads: Sequence[BlobUpload],
        progress: BatchProgressFn | None = None,
        bucket: str = BUCKET_FILES,
    ) -> list[str | SyncError]:
        self.batches += 1
        if self.batches == 2:
            raise AuthError("session expired (injected)")
        return await super().put_blobs(uploads, progress, bucket)


async def test_a_failed_upload_still_lets_the_chunk_before_it_be_recorded(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync.passes.items, "CHUNK_FILES", 4)
    docs = rig.folder()
    for i in range(8):
        write(docs / f"f{i}.txt", f"content {i}".encode())
    hub = HubLosingItsSession(rig.tmp / "hub-2")
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY)
    root = rig.add_root(docs)
    report = await engine.sync_root(root)
    assert report.auth_needed
    assert report.recorded == 4  # chunk one was recorded while chunk two was uploading
    assert rig.journal.count_states(root.id).get("synced") == 4
    report = await engine.sync_root(root)  # signed in again
    engine.close()
    await hub.close()
    assert report.complete
    assert report.uploaded == 4  # only the second chunk: nothing went up twice
    assert_hub_mirrors(hub.root, root.id, docs)


@pytest.mark.parametrize("ingest", [True, False], ids=["read-once", "batch-put"])
async def test_thousands_of_files_leave_no_thread_task_or_descriptor_behind(
    tmp_path: Path, rig: Rig, ingest: bool
) -> None:
    docs = rig.folder()
    for i in range(3000):
        write(docs / f"d{i % 30}" / f"f{i}.txt", os.urandom(32) + str(i).encode())
    me = psutil.Process()
    fds, tasks = me.num_fds(), len(asyncio.all_tasks())
    threads = {t.name for t in threading.enumerate()}
    hub = LocalHub(tmp_path / "own-hub")
    if not ingest:
        hub.ingest_limit = 0
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY)
    root = rig.add_root(docs)
    report = await engine.sync_root(root)
    engine.close()
    await hub.close()
    assert report.complete and report.uploaded == 3000
    assert me.num_fds() <= fds
    assert len(asyncio.all_tasks()) <= tasks
    assert {t.name for t in threading.enumerate()} <= threads
    assert_hub_mirrors(hub.root, root.id, docs)


async def test_a_batch_of_operations_is_logged_whole_or_not_at_all(tmp_path: Path) -> None:
    """Regression: log_operations ran its rows in autocommit mode, one commit per row
    (10,000 WAL commits for a 10k-file sync), and a failure part-way left half a batch."""
    hub = LocalHub(tmp_path / "hub")
    ops = [Operation("upload", "success", key=f"k{i}") for i in range(5)]
    unloggable = Operation("upload", "success", key="bad", metadata={"x": object()})  # type: ignore[dict-item]
    try:
        with pytest.raises(TypeError):
            await hub.log_operations([*ops[:3], unloggable, *ops[3:]])
        await hub.log_operations(ops)
    finally:
        await hub.close()
    with sqlite3.connect(tmp_path / "hub" / "hub.sqlite3") as db:
        logged = [r[0] for r in db.execute("SELECT file_id FROM file_operations ORDER BY file_id")]
    assert logged == [f"k{i}" for i in range(5)]


async def test_operations_log_in_the_order_it_was_written(tmp_path: Path) -> None:
    """Operation ids are time-ordered UUIDs (v7): sorting by id gives the log's order,
    and new rows append to the index instead of rewriting random pages of it."""
    import uuid

    hub = LocalHub(tmp_path / "hub")
    try:
        for batch in range(3):
            await hub.log_operations(
                [Operation("upload", "success", key=f"b{batch}-{i}") for i in range(400)]
            )
    finally:
        await hub.close()
    with sqlite3.connect(tmp_path / "hub" / "hub.sqlite3") as db:
        rows = db.execute("SELECT id, file_id FROM file_operations ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [f"b{b}-{i}" for b in range(3) for i in range(400)]
    assert len({r[0] for r in rows}) == 1200
    assert all(uuid.UUID(r[0]).version == 7 for r in rows)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_process_makes_its_own_operation_ids() -> None:
    from sync.remotes.local.schema import _operation_id

    def process_bits(op_id: str) -> int:
        return (int(op_id, 16) >> 24) & ((1 << 38) - 1)

    read, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only reports its id
        os.write(write_end, _operation_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(child, 0)
    assert process_bits(child_id) != process_bits(_operation_id())


async def test_a_read_error_on_the_local_file_is_not_blamed_on_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an I/O error reading the source came back as "cannot write to the hub"
    (transient), retried as if the hub were down."""
    import errno
    import io

    class FailingDisk(io.FileIO):
        def readinto(self, buffer: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

    big = write(tmp_path / "big.bin", os.urandom(CHUNK + 10))  # copied in blocks
    upload = upload_of(big)
    hub = LocalHub(tmp_path / "hub")
    monkeypatch.setattr(sync.remotes.local.copying.io, "FileIO", FailingDisk)
    try:
        [result] = await hub.put_blobs([upload])
    finally:
        monkeypatch.undo()
        await hub.close()
    assert isinstance(result, LocalFileError)
    assert result.message == "cannot read: Input/output error"
    assert not list((tmp_path / "hub" / ".tmp").glob("*.part"))
