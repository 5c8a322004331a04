"""Worker processes for per-file work on many small files (hash, ingest, pull).

Doing a small file is a dozen system calls and a little Python; in the agent's
process the threads that do it wait for the interpreter lock whenever another
thread (the event loop recording a batch, a second hash thread) runs Python, so
two threads hashed 10k small files no faster than one (measured: 0.45 s against
0.42 s; two processes 0.19 s). Worker processes have an interpreter each. They
start on the first batch big enough to pay for them (a one-file save never
starts one) and end ``IDLE_END`` seconds after the last batch, with their pool,
or with the parent process, when their pipe closes.

A job is a module-level function of the ``sync`` library that takes a part of a
batch (a list of picklable items, after fixed arguments) and returns one
outcome per item; the same function serves the in-process path, so there is one
copy of the per-file logic. Each worker is a Python running
:func:`sync.worker_main.serve` with a pipe each way (not :mod:`multiprocessing`,
whose start methods import the parent's main script again, or fork a process
full of threads). A thread of the pool drives one worker at a time. A worker
that dies (killed, out of memory) fails its part with a transient error (the
items are done again by the next pass) and is replaced.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from sync.errors import TransientError
from sync.worker_main import WORKER_ARG, frame, read_message

I = TypeVar("I")  # noqa: E741 (an item of a batch)
R = TypeVar("R")

IDLE_END = 30.0
"""Seconds without work after which the workers end (the next big batch starts new ones)."""
PART = 64
"""Items per trip to a worker: enough to make the trip cheap, few enough to keep
both workers busy to the end of a batch."""
AHEAD = 2
"""Parts in a worker's pipe at once: the one it works on and the next. Requests
are a few KiB (paths), far below a pipe's buffer, so the two sides never wait for
each other to read."""


class _Parts(Generic[I]):
    """The parts of a batch not yet given to a worker, shared by the pool's threads."""

    def __init__(self, parts: list[tuple[int, Sequence[I]]]) -> None:
        self.left = deque(parts)

    def take(self) -> tuple[int, Sequence[I]] | None:
        try:
            return self.left.popleft()  # (atomic: no lock needed)
        except IndexError:
            return None

    def stop(self) -> None:
        """No part starts after this (the caller was cancelled)."""
        self.left.clear()


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
"""The folder that holds the ``sync`` package, for the workers' import path."""

_WORKER_MAIN = (
    "import sys; from sync.worker_main import serve; serve(sys.stdin.buffer, sys.stdout.buffer)"
)


def worker_command() -> tuple[list[str], dict[str, str]]:
    """How to start a worker: the bundle's own program with :data:`WORKER_ARG` when
    frozen (it has no ``-c``); else this Python without ``site`` (a third of its
    start-up), given this process's import path instead."""
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        return [sys.executable, WORKER_ARG], env
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, sys.path)])
    return [sys.executable, "-S", "-c", _WORKER_MAIN], env


class _Worker:
    def __init__(self) -> None:
        command, env = worker_command()
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def send(self, request: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(request)
        self.proc.stdin.flush()

    def receive(self) -> Any:
        assert self.proc.stdout is not None
        answer = read_message(self.proc.stdout)
        if answer is None:
            raise EOFError("the worker ended")
        return answer

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


class WorkerProcesses:
    """A pool of ``workers`` worker processes (see the module's docstring)."""

    def __init__(self, workers: int, *, name: str = "hubsync-worker") -> None:
        self.workers = workers
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._idle_end: threading.Timer | None = None

    async def map_parts(
        self,
        job: Callable[..., list[R]],
        fixed: tuple[object, ...],
        items: Sequence[I],
        done: Callable[[int, Sequence[I], Sequence[R]], None] | None = None,
    ) -> list[R | TransientError]:
        """``job(*fixed, part)`` in the workers for each part of ``PART`` items, one
        outcome per item; ``done`` hears of every part's outcomes as soon as they are
        known (index of its first item, its items, outcomes; in a pool thread), even
        when the caller was cancelled meanwhile (no part starts after that)."""
        parts = _Parts([(at, items[at : at + PART]) for at in range(0, len(items), PART)])
        loop = asyncio.get_running_loop()
        drivers = [
            loop.run_in_executor(self._threads, self._drive, job, fixed, parts, done)
            for _ in range(min(self.workers, len(parts.left)))
        ]
        try:
            answers = await asyncio.gather(*drivers)
        except BaseException:
            parts.stop()
            raise
        finally:
            self._end_when_idle()
        by_start = {at: outcomes for answer in answers for at, outcomes in answer.items()}
        return [o for at in range(0, len(items), PART) for o in by_start[at]]

    def _drive(
        self,
        job: Callable[..., list[R]],
        fixed: tuple[object, ...],
        parts: _Parts[I],
        done: Callable[[int, Sequence[I], Sequence[R]], None] | None,
    ) -> dict[int, list[R | TransientError]]:
        """Feed one worker parts until none are left, the next part already in its
        pipe while it works on one: it never waits for this process (whose threads
        wait for the interpreter lock) between parts. A worker that dies fails the
        parts it had, transiently (done again next pass), and is replaced."""
        results: dict[int, list[R | TransientError]] = {}
        worker: _Worker | None = None
        queued: deque[tuple[int, Sequence[I]]] = deque()
        try:
            while queued or parts.left:
                if worker is None:
                    worker = self._take()
                try:
                    while len(queued) < AHEAD and (part := parts.take()) is not None:
                        queued.append(part)  # (before sending: a dead worker fails it too)
                        worker.send(frame((job.__module__, job.__name__, (*fixed, list(part[1])))))
                    if not queued:
                        break
                    outcomes: list[R] = worker.receive()
                except (OSError, EOFError, ValueError) as exc:
                    worker.end(kill=True)
                    worker = None
                    failed = TransientError(f"a worker process of HubSync failed: {exc}")
                    for at, part_items in queued:
                        results[at] = [failed] * len(part_items)
                    queued.clear()
                    continue
                at, part_items = queued.popleft()
                results[at] = list(outcomes)
                if done is not None:
                    done(at, part_items, outcomes)
        except BaseException:
            if worker is not None:
                worker.end(kill=True)
                worker = None
            raise
        finally:
            if worker is not None:
                self._give_back(worker)
        return results

    @property
    def running(self) -> list[int]:
        """Process ids of the workers waiting for work."""
        with self._lock:
            return [w.proc.pid for w in self._idle]

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

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise TransientError("HubSync's worker processes are closing")
            if self._idle_end is not None:
                self._idle_end.cancel()
                self._idle_end = None
            if self._idle:
                return self._idle.pop()
        try:
            return _Worker()
        except OSError as exc:
            raise TransientError(f"could not start a worker process: {exc}") from None

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
