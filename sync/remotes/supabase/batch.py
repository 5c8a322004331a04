"""Group commit for rows written one at a time by concurrent callers.

Each ``put_blob`` must have its ``file_metadata`` row written before it
returns, but with several uploads in flight one request per row doubles the
request count for small files. :class:`GroupWriter` sends the first row at once
and, while that request is in flight, collects the rows of other callers for
the next request: no added latency when idle, one request for many rows under
load. Each caller still waits for (and sees the error of) the request carrying
its row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Row = dict[str, Any]


class GroupWriter:
    def __init__(
        self, flush: Callable[[Sequence[Row]], Awaitable[None]], max_rows: int = 500
    ) -> None:
        self._flush = flush
        self._max_rows = max_rows
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def write(self, row: Row) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A caller cancelled meanwhile no longer reads the outcome; mark it as seen.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append((row, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_rows]
                del self._pending[: self._max_rows]
                try:
                    await self._flush([row for row, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._runner = None
            for _, future in self._pending:
                if not future.done():
                    future.cancel()
            self._pending.clear()

    async def close(self) -> None:
        """Let the request in flight finish (its callers are waiting for it)."""
        runner = self._runner
        if runner is not None:
            await asyncio.gather(runner, return_exceptions=True)
