"""The local hub's ingest workers (sync/workers.py running writer.ingest_part): separate
processes write exactly what the hub's own threads would, errors come back intact,
a dead worker costs one retry, and no worker outlives its hub or its parent."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from sync.engine import SyncEngine
from sync.errors import (
    DiskFull,
    FileVanished,
    HubSwitched,
    SyncError,
    TransientError,
    UndecodableName,
)
from sync.journal import Journal
from sync.remotes.base import BUCKET_FILES, Ingested
from sync.remotes.local import LocalHub, writer
from sync.remotes.local.hub import IN_PROCESSES_FROM
from tests.fixtures.engine import assert_hub_mirrors, sha_of

MANY = IN_PROCESSES_FROM + 40


def _files(folder: Path, count: int, *, distinct: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"n{i:04d}.txt"
        n = i % (distinct or count)
        path.write_text(f"note {n}\n" * (1 + n % 7))
        paths.append(path)
    return paths


def _sources(paths: list[Path]) -> list[tuple[Path, str, str]]:
    return [(p, p.name, "text/plain") for p in paths]


def _children() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


async def test_a_big_first_sync_goes_through_the_workers_and_mirrors_every_file(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    _files(docs, MANY, distinct=MANY // 3)  # equal contents: one blob each
    journal = Journal(tmp_path / "journal.sqlite3")
    hub = LocalHub(tmp_path / "hub")
    engine = SyncEngine(journal, {"local": hub})
    before = _children()
    try:
        root = journal.add_root(docs, "local")
        report = await engine.sync_root(root)
        assert report.complete and report.recorded == MANY
        assert hub._processes is not None and hub._processes.running  # they did it
        assert_hub_mirrors(hub.root, root.id, docs)
        # Equal contents in parallel workers: each content counted as uploaded once.
        assert report.uploaded == MANY // 3 and report.deduplicated == MANY - MANY // 3
    finally:
        engine.close()
        await hub.close()
        journal.close()
    assert _children() <= before  # the workers ended with the hub


async def test_workers_give_the_answers_the_hub_threads_give(tmp_path: Path) -> None:
    """The same sources through both paths: same keys, hashes and errors, whatever the
    file is (missing, a folder, a symlink, a file that grew past the limit)."""
    folder = tmp_path / "in"
    paths = _files(folder, MANY)
    (folder / "a-folder").mkdir()
    (folder / "link").symlink_to(paths[0])
    (folder / "big").write_bytes(os.urandom(2 * 1024 * 1024))
    odd = [folder / "missing", folder / "a-folder", folder / "link", folder / "big"]
    sources = _sources([*paths[:100], *odd, *paths[100:]])
    answers = {}
    for processes in (0, 2):
        hub = LocalHub(tmp_path / f"hub-{processes}", ingest_processes=processes)
        try:
            answers[processes] = await hub.ingest(sources)
        finally:
            await hub.close()
    in_threads, in_workers = answers[0], answers[2]
    assert len(in_workers) == len(sources)
    for mine, theirs in zip(in_threads, in_workers, strict=True):
        if isinstance(mine, Ingested):
            assert isinstance(theirs, Ingested)
            assert (theirs.hashed, theirs.key, theirs.stored) == (
                mine.hashed,
                mine.key,
                mine.stored,
            )
        else:
            assert type(theirs) is type(mine) and str(theirs) == str(mine)
    assert isinstance(in_workers[100], FileVanished)
    hub = LocalHub(tmp_path / "hub-2")
    try:
        for ingested in in_workers:
            if isinstance(ingested, Ingested):
                blob = hub.blob_file(ingested.key).read_bytes()
                assert hashlib.sha256(blob).hexdigest() == ingested.hashed.sha256
    finally:
        await hub.close()


async def test_blobs_written_by_workers_are_made_durable_before_rows(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    paths = _files(folder, MANY)
    hub = LocalHub(tmp_path / "hub")
    try:
        await hub.ingest(_sources(paths))
        # Every stored blob waits for the batch's durability step and gets its row.
        assert len(hub._unflushed) == MANY and len(hub._new_blobs) == MANY
        assert {os.path.basename(p) for p in hub._unflushed} == {p.name for p in paths}
    finally:
        await hub.close()
    assert not hub._unflushed


async def test_a_killed_worker_fails_one_part_and_is_replaced(tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", MANY)
    hub = LocalHub(tmp_path / "hub", ingest_processes=1)
    try:
        await hub.ingest(_sources(paths))
        assert hub._processes is not None
        (pid,) = hub._processes.running
        os.kill(pid, signal.SIGKILL)
        psutil.Process(pid).wait(10)
        again = await hub.ingest(_sources(paths))
        failed = [o for o in again if isinstance(o, SyncError)]
        # Only the part the dead worker was given fails, transiently (retried next pass).
        assert failed == [] or all(isinstance(f, TransientError) for f in failed)
        third = await hub.ingest(_sources(paths))
        assert all(isinstance(o, Ingested) for o in third)
        assert pid not in hub._processes.running
    finally:
        await hub.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    _files(tmp_path / "in", MANY)
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from pathlib import Path
        from sync.remotes.local import LocalHub, writer

        async def main():
            hub = LocalHub(Path({str(tmp_path / "hub")!r}))
            paths = sorted(Path({str(tmp_path / "in")!r}).iterdir())
            await hub.ingest([(p, p.name, "text/plain") for p in paths])
            print(*hub._processes.running, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    pids = [int(p) for p in out.stdout.split()]
    assert out.returncode == -signal.SIGKILL and pids, out.stderr
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []


@pytest.mark.parametrize(
    "error",
    [
        DiskFull("/", 5 * 2**20, whose="hub"),
        UndecodableName(b"caf\xe9".decode("utf-8", "surrogateescape")),
        HubSwitched("supabase"),
        FileVanished(),
        TransientError("slow", retry_after=3.0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_sync_errors_cross_processes_intact(error: SyncError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert (back.kind, back.message, back.retry_after, back.args) == (
        error.kind,
        error.message,
        error.retry_after,
        error.args,
    )
    assert vars(back) == vars(error)


async def test_many_big_batches_leak_no_process_thread_or_descriptor(tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", MANY)
    me = psutil.Process()
    hub = LocalHub(tmp_path / "hub")
    try:
        await hub.ingest(_sources(paths))  # the workers start
        fds, threads = me.num_fds(), me.num_threads()
        for _ in range(10):  # ~3,000 files, 50 trips to the workers
            await hub.ingest(_sources(paths))
        deadline = time.monotonic() + 10  # a cancelled idle timer's thread ends on its own
        while me.num_threads() > threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert me.num_fds() <= fds and me.num_threads() <= threads
        assert sha_of(paths[0])  # the sources are untouched
    finally:
        await hub.close()


async def test_small_blobs_appear_only_complete_and_without_unnamed_files_get_temp_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unnamed files (O_TMPFILE) where the kernel makes them; a file system that
    refuses them (a network share, FAT) gets named temp files, and the same blobs."""
    paths = _files(tmp_path / "in", 40)
    refused: list[int] = []
    real_open = os.open

    def refusing_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            refused.append(flags)
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    hub = LocalHub(tmp_path / "hub", ingest_processes=0)
    try:
        first = await hub.ingest(_sources(paths[:20]))
        assert writer._unnamed == [True] and not refused
        monkeypatch.setattr(writer.os, "open", refusing_open)
        second = await hub.ingest(_sources(paths[20:]))
        assert len(refused) == 1 and writer._unnamed == [False]  # asked once, then named
        assert all(isinstance(o, Ingested) and o.stored for o in [*first, *second])
        assert list((tmp_path / "hub" / ".tmp").glob("*.part")) == []
    finally:
        monkeypatch.undo()
        writer._unnamed[0] = True
        await hub.close()
    for path, outcome in zip(paths, [*first, *second], strict=True):
        assert isinstance(outcome, Ingested)
        blob = tmp_path / "hub" / BUCKET_FILES / outcome.key
        assert blob.read_bytes() == path.read_bytes()
