"""What every phase of one pass shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sync.journal import Journal, Root
from sync.passes.report import PassReport
from sync.progress import Progress, ProgressSink, ThreadedProgress
from sync.remotes.base import Remote
from sync.throttle import Bandwidth
from sync.transfer import RetryPolicy
from sync.workers import WorkerProcesses

T = TypeVar("T")


@dataclass
class PassContext:
    journal: Journal
    root: Root
    remote: Remote
    report: PassReport
    emit: ProgressSink
    progress: ThreadedProgress
    """The pass's :class:`Progress`, and its way in from transfer threads."""
    pool: ThreadPoolExecutor
    """Threads for the pass's blocking work on local files (walks, hashing, stats)."""
    processes: WorkerProcesses | None
    """Worker processes for hashing many files at once (None: all in ``pool``)."""
    retry: RetryPolicy
    upload_limit: Bandwidth
    workers: int
    clock: Callable[[], float]
    hub_at_start: str | None
    """The id of the root's hub when the pass began (see ``Recorder.record``)."""

    @property
    def state(self) -> Progress:
        return self.progress.state

    @property
    def path(self) -> Path:
        return self.root.path

    async def off_loop(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the pass's threads."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
