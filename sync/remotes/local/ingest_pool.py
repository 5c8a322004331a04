"""Worker processes that ingest small files for the local hub.

Putting a small file in the hub is a dozen system calls and a little Python
(open, read, hash, mkdir, write, rename); in the agent's process those threads
wait for the interpreter lock whenever the event loop records a batch, so a
first sync of many small files spent more time waiting than working (measured:
10k files took 1.8 s alone in one thread and 3 s beside the recording). Worker
processes have an interpreter each and write in parallel. They are started on
the first batch big enough to pay for them (a one-file save never starts one),
write exactly what the hub's own threads would write (:mod:`.writer`), and hand
back what they placed; the hub makes it durable and records it as always.

Each worker is a Python running :func:`.ingest_worker.serve` with a pipe each
way (not :mod:`multiprocessing`, whose start methods import the parent's main
script again, or fork a process full of threads). A thread of the hub drives one
worker at a time and reports what it placed even when the pass that asked was
cancelled meanwhile: what a worker stored is made durable before anything points
at it. A worker that dies (killed, out of memory) fails its part with a
transient error (the files are ingested again by the next pass) and is replaced;
the workers end with the hub, or with the parent process, when their pipe closes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sync.errors import TransientError
from sync.remotes.local.ingest_worker import Outcome, Source, read_message, write_message
from sync.remotes.local.writer import BlobWriter

IDLE_END = 30.0
"""Seconds without work after which the workers end (the next big batch starts new ones)."""
PART = 64
"""Files per trip to a worker: enough to make the trip cheap, few enough to keep
both workers busy to the end of a chunk."""

Placed = Callable[[int, Sequence[Source], Sequence[Outcome]], None]
"""Hears of a part's outcomes: (index of its first source, its sources, outcomes)."""

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
"""The folder that holds the ``sync`` package, for the workers' import path."""


_WORKER_MAIN = (
    "import sys; from sync.remotes.local.ingest_worker import serve; "
    "serve(sys.stdin.buffer, sys.stdout.buffer)"
)


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def call(self, request: object) -> list[Outcome]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        write_message(self.proc.stdin, request)
        answer = read_message(self.proc.stdout)
        if answer is None:
            raise EOFError("the worker ended")
        return answer  # type: ignore[no-any-return]

    def end(self, *, kill: bool = False) -> None:
        """Stop the worker: closing its input ends it; a hung one is killed."""
        if kill:
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class IngestProcesses:
    def __init__(self, workers: int, writer: BlobWriter) -> None:
        self.workers = workers
        self._writer = writer
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="hubsync-ingest")
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._idle_end: threading.Timer | None = None

    async def ingest(
        self, bucket: str, limit: int, sources: Sequence[Source], placed: Placed
    ) -> list[Outcome]:
        """Ingest ``sources`` in the workers, ``PART`` files per trip; ``placed``
        hears of every part's outcomes as soon as they are known (in a hub thread)."""
        loop = asyncio.get_running_loop()
        parts = [
            loop.run_in_executor(
                self._threads, self._run_part, bucket, limit, at, sources[at : at + PART], placed
            )
            for at in range(0, len(sources), PART)
        ]
        try:
            done = await asyncio.gather(*parts)
        finally:
            self._end_when_idle()
        return [outcome for part in done for outcome in part]

    def _end_when_idle(self) -> None:
        """End the workers ``IDLE_END`` seconds from now unless work comes first."""
        with self._lock:
            if self._idle_end is not None:
                self._idle_end.cancel()
            if self._closed:
                return
            self._idle_end = threading.Timer(IDLE_END, self._end_idle)
            self._idle_end.daemon = True
            self._idle_end.start()

    def _end_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.end()

    def _run_part(
        self, bucket: str, limit: int, at: int, part: Sequence[Source], placed: Placed
    ) -> list[Outcome]:
        worker = self._take()
        try:
            outcomes = worker.call((self._writer, bucket, limit, list(part)))
        except (OSError, EOFError, ValueError) as exc:
            # Each file of the part fails transiently (ingested again next pass).
            worker.end(kill=True)
            failed = TransientError(f"a worker of the hub failed while ingesting files: {exc}")
            return [failed] * len(part)
        except BaseException:
            worker.end(kill=True)
            raise
        self._give_back(worker)
        placed(at, part, outcomes)
        return outcomes

    @property
    def running(self) -> list[int]:
        """Process ids of the workers waiting for work."""
        with self._lock:
            return [w.proc.pid for w in self._idle]

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise TransientError("the hub is closing")
            if self._idle_end is not None:
                self._idle_end.cancel()
                self._idle_end = None
            if self._idle:
                return self._idle.pop()
        try:
            return _Worker()
        except OSError as exc:
            raise TransientError(f"could not start a worker of the hub: {exc}") from None

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.end()

    def close(self) -> None:
        """Stop the workers (blocks until the parts they are on are done)."""
        with self._lock:
            self._closed = True
            timer, self._idle_end = self._idle_end, None
        if timer is not None:
            timer.cancel()
            timer.join()
        self._threads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.end()
