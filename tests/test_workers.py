"""HubSync's worker processes (sync/workers.py) and the engine's hashing in them:
the same answers as the hash threads, a dead worker costs one retry, only the sync
library's jobs run, the bundle's program serves as a worker, and nothing leaks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from sync.engine import SyncEngine
from sync.errors import SyncError, TransientError
from sync.hashing import Hashed, hash_many
from sync.journal import Journal
from sync.passes.transfer import HASH_IN_PROCESSES_FROM, hash_paths
from sync.remotes.local import LocalHub
from sync.worker_main import WORKER_ARG, read_message, resolve, write_message
from sync.workers import WorkerProcesses
from tests.fixtures.engine import assert_hub_mirrors

ROOT = Path(__file__).resolve().parent.parent
MANY = HASH_IN_PROCESSES_FROM + 44


def _files(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"f{i:04d}.bin"
        path.write_bytes(f"content {i}\n".encode() * (1 + i % 50))
        paths.append(str(path))
    return paths


def _children() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


def _answers(outcomes: list[Hashed | SyncError]) -> list[object]:
    return [
        (o.sha256, o.size, o.mtime_ns, o.inode)
        if isinstance(o, Hashed)
        else (type(o).__name__, o.message)
        for o in outcomes
    ]


async def test_hashing_in_workers_gives_the_answers_of_the_hash_threads(tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", MANY)
    (tmp_path / "in" / "a-folder").mkdir()
    os.symlink(paths[0], tmp_path / "in" / "a-link")
    odd = [str(tmp_path / "in" / n) for n in ("gone.bin", "a-folder", "a-link")]
    paths[10:10] = odd  # vanished, not a file, a symlink: each gets its own error
    processes = WorkerProcesses(2)
    try:
        with ThreadPoolExecutor(2) as pool:
            in_workers = await hash_paths(processes, pool, paths)
            in_threads = await hash_paths(None, pool, paths)
        assert processes.running  # the workers did it
    finally:
        processes.close()
    assert _answers(in_workers) == _answers(in_threads)
    assert [type(o).__name__ for o in in_workers[10:13]] == [
        "FileVanished",
        "LocalFileError",
        "LocalFileError",
    ]
    first = in_workers[0]
    assert isinstance(first, Hashed)
    assert first.sha256 == hashlib.sha256(Path(paths[0]).read_bytes()).hexdigest()


async def test_a_killed_worker_fails_its_part_transiently_and_is_replaced(tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", MANY)
    processes = WorkerProcesses(1)
    try:
        await processes.map_parts(hash_many, (), paths)
        (pid,) = processes.running
        os.kill(pid, signal.SIGKILL)
        psutil.Process(pid).wait(10)
        again = await processes.map_parts(hash_many, (), paths)
        failed = [o for o in again if not isinstance(o, Hashed)]
        assert all(isinstance(f, TransientError) for f in failed)  # retried next pass
        third = await processes.map_parts(hash_many, (), paths)
        assert all(isinstance(o, Hashed) for o in third)
        assert pid not in processes.running
    finally:
        processes.close()


def test_only_the_sync_library_runs_in_a_worker() -> None:
    assert resolve("sync.hashing", "hash_many") is hash_many
    for module, function in [("os", "system"), ("subprocess", "run"), ("syncx", "f")]:
        with pytest.raises(ValueError, match="not a job of HubSync"):
            resolve(module, function)


def test_the_bundles_program_serves_as_a_worker(tmp_path: Path) -> None:
    """The frozen bundle has no ``python -c``: its ``hubsync`` program is the worker."""
    (path,) = _files(tmp_path / "in", 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    launcher = ROOT / "packaging" / "launch" / "hubsync.py"
    worker = subprocess.Popen(
        [sys.executable, str(launcher), WORKER_ARG],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert worker.stdin is not None and worker.stdout is not None
    write_message(worker.stdin, ("sync.hashing", "hash_many", ([path],)))
    (answer,) = read_message(worker.stdout)
    worker.stdin.close()
    assert worker.wait(10) == 0
    worker.stdout.close()
    assert answer.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()


async def test_a_cancelled_batch_reports_what_was_done_and_leaks_nothing(tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", MANY * 4)
    heard: list[int] = []
    before = _children()
    processes = WorkerProcesses(2)
    batch = asyncio.ensure_future(
        processes.map_parts(hash_many, (), paths, lambda at, part, out: heard.append(len(out)))
    )
    while not heard:
        await asyncio.sleep(0.005)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    processes.close()  # waits for the parts already in the workers
    assert heard and sum(heard) <= len(paths)
    assert _children() <= before


async def test_a_first_sync_hashes_in_workers_and_they_end_with_the_engine(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    _files(docs, MANY)
    journal = Journal(tmp_path / "journal.sqlite3")
    hub = LocalHub(tmp_path / "hub", ingest_processes=0)
    hub.ingest_limit = 1  # every file is hashed by the engine, then copied
    engine = SyncEngine(journal, {"local": hub})
    before = _children()
    try:
        root = journal.add_root(docs, "local")
        report = await engine.sync_root(root)
        assert report.complete and report.recorded == MANY
        assert engine._hash_processes is not None and engine._hash_processes.running
        assert_hub_mirrors(hub.root, root.id, docs)
    finally:
        engine.close()
        await hub.close()
        journal.close()
    assert _children() <= before


async def test_thousands_of_files_leak_no_process_thread_or_descriptor(tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", MANY)
    me = psutil.Process()
    before = _children()
    processes = WorkerProcesses(2)
    try:
        with ThreadPoolExecutor(2) as pool:
            await hash_paths(processes, pool, paths)  # the workers start
            fds, threads = me.num_fds(), me.num_threads()
            for _ in range(12):  # ~3,600 files, 72 trips to the workers
                outcomes = await hash_paths(processes, pool, paths)
                assert all(isinstance(o, Hashed) for o in outcomes)
            deadline = time.monotonic() + 10  # a cancelled idle timer's thread ends on its own
            while me.num_threads() > threads and time.monotonic() < deadline:
                time.sleep(0.01)
            assert me.num_fds() <= fds and me.num_threads() <= threads
            assert len(processes.running) == 2
    finally:
        processes.close()
    assert _children() <= before
