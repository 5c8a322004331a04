"""Bounded concurrency and retries for hub calls.

Transient errors (network, 5xx, 429, timeouts) are retried with exponential
backoff and jitter, honouring a server's Retry-After; anything else surfaces
at once so the engine can record it for that one file. Concurrency is bounded
by how many coroutines run at a time, and every worker is awaited or
cancelled on every path (TaskGroup), so nothing is left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import stamina

from sync.errors import DiskFull, SyncError, TransientError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    wait_initial: float = 0.25
    wait_max: float = 15.0
    wait_jitter: float = 0.5
    timeout: float = 300.0


def _backoff(exc: Exception) -> bool | float:
    if isinstance(exc, DiskFull):
        return False  # every file would wait for the same disk: the pass ends and waits
    if isinstance(exc, TransientError):
        return exc.retry_after if exc.retry_after else True
    return False


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``call`` until it succeeds, a non-transient error, or the policy gives up."""
    async for attempt in stamina.retry_context(
        on=_backoff,
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: stamina re-raises the last error")


def retry_delay(attempts: int, kind: str) -> float:
    """When a file that failed ``attempts`` times is tried again on its own."""
    if kind == "changed":
        return 2.0
    if kind in ("permanent", "quota"):
        return 6 * 3600.0
    return float(min(3600, 15 * 2 ** min(attempts, 8)))


async def bounded_map(
    items: Iterable[T], worker: Callable[[T], Awaitable[R]], limit: int
) -> AsyncGenerator[tuple[T, R | SyncError], None]:
    """Yield ``(item, result or SyncError)`` as workers finish, at most ``limit`` at once.

    Other exceptions (bugs, cancellation) cancel the remaining workers and propagate.
    A consumer that stops early (``break``, an exception, ``aclose()``) cancels the
    workers still running; a TaskGroup here would turn that GeneratorExit into an
    exception group.
    """
    queue: asyncio.Queue[tuple[T, R | SyncError] | BaseException] = asyncio.Queue()
    iterator = iter(items)
    sem = asyncio.Semaphore(limit)
    running: set[asyncio.Task[None]] = set()
    pending = 0

    async def run(item: T) -> None:
        try:
            result: R | SyncError = await worker(item)
        except SyncError as exc:
            result = exc
        except Exception as exc:
            await queue.put(exc)
            return
        finally:
            sem.release()
        await queue.put((item, result))

    try:
        exhausted = False
        while True:
            while not exhausted and not sem.locked():
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                await sem.acquire()
                task = asyncio.create_task(run(item))
                running.add(task)
                task.add_done_callback(running.discard)
                pending += 1
            if pending == 0:
                break
            done = await queue.get()
            pending -= 1
            if isinstance(done, BaseException):
                raise done
            yield done
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
