"""Bytes counted in transfer threads reach the pass's Progress on the event loop."""

from __future__ import annotations

import asyncio
import threading

from sync.progress import Progress, ThreadedProgress


async def test_changes_from_threads_are_applied_on_the_loop_in_order() -> None:
    loop = asyncio.get_running_loop()
    progress = ThreadedProgress(Progress("syncing", "/docs"), loop)
    applied_on: set[int] = set()
    order: list[int] = []

    def counted(n: int) -> None:
        def show(state: Progress) -> None:
            applied_on.add(threading.get_ident())
            state.bytes_done += n
            order.append(n)

        progress.post(show)

    def transfer() -> None:  # a hub's upload thread
        for n in range(1, 2001):
            counted(n)

    await loop.run_in_executor(None, transfer)
    progress.flush()  # what the transfer's caller does before it shows the progress
    assert progress.state.bytes_done == sum(range(1, 2001))
    assert order == list(range(1, 2001))
    assert applied_on == {threading.get_ident()}


async def test_changes_left_waiting_are_applied_a_moment_later() -> None:
    loop = asyncio.get_running_loop()
    progress = ThreadedProgress(Progress("syncing", "/docs"), loop)

    def show(state: Progress) -> None:
        state.bytes_done += 7

    await loop.run_in_executor(None, progress.post, show)
    while progress.state.bytes_done == 0:  # no flush: the loop applies it by itself
        await asyncio.sleep(progress.EVERY / 2)
    assert progress.state.bytes_done == 7
