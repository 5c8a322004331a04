"""Keep the local hub open while its drive is there: let go when it goes, reopen on return.

A hub on an unplugged drive (or an unmounted share) can never be reached again
through the files the agent had open, so the agent lets go of it and opens the
hub afresh when its database is back. Every look at the drive runs on one thread
of its own with a deadline, and opening or closing runs in the background: a
hung network share stalls neither the agent's loop nor the threads others use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from agent.context import Context
from sync.remotes.local import HUB_DB, LocalHub

log = logging.getLogger("hubsync.agent")

LOOK_DEADLINE = 5.0
"""Seconds a look at the hub's drive may take before the drive counts as hung."""


class LocalHubKeeper:
    def __init__(
        self,
        ctx: Context,
        on_lost: Callable[[], Awaitable[None]],
        on_back: Callable[[], None],
        between_passes: asyncio.Lock,
    ) -> None:
        """``between_passes``: held by a pass; a hub is switched (rebased) only without one."""
        self.ctx = ctx
        self._between_passes = between_passes
        self._on_lost = on_lost
        self._on_back = on_back
        self._looker = ThreadPoolExecutor(1, thread_name_prefix="hubsync-hubwatch")
        self._last_look: Future[bool] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._opening = False

    async def check(self) -> None:
        """Look once: let go of a hub that went away, start reopening one that is back."""
        remote = self.ctx.remotes.get("local")
        if isinstance(remote, LocalHub):
            if not await self._look(remote.went_away, hung=True):
                return
            log.warning("the local hub %s went away; waiting for it to come back", remote.root)
            del self.ctx.remotes["local"]
            self.ctx.unavailable["local"] = (
                f"the local hub {remote.root} went away (was its drive unplugged?)"
            )
            self._spawn(self._let_go(remote))
            await self._on_lost()
        if "local" in self.ctx.remotes or self._opening:
            return
        hub_db = self.ctx.config.local_hub_path(self.ctx.paths) / HUB_DB
        if await self._look(hub_db.is_file, hung=False):
            self._opening = True
            self._spawn(self._reopen())

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._looker.shutdown(wait=False, cancel_futures=True)

    async def _look(self, check: Callable[[], bool], *, hung: bool) -> bool:
        """``check()`` on the look thread; ``hung`` when it does not answer in time (or
        the previous look still has not)."""
        if self._last_look is not None and not self._last_look.done():
            return hung
        self._last_look = self._looker.submit(check)
        try:
            async with asyncio.timeout(LOOK_DEADLINE):
                return await asyncio.wrap_future(self._last_look)
        except TimeoutError:
            return hung

    async def _let_go(self, remote: LocalHub) -> None:
        try:
            await remote.close()
        except Exception as exc:  # its drive is gone: there is nothing left to flush to
            log.info("closing the vanished local hub: %s", exc)

    async def _reopen(self) -> None:
        try:
            seen = len(self.ctx.notices)
            async with self._between_passes:
                if not await self.ctx.open_local(remake_own=False, executor=self._looker):
                    return
            log.info("the local hub is back")
            for notice in self.ctx.notices[seen:]:
                log.warning("%s", notice)
            self._on_back()
        except Exception:  # a bug here must not stop the next look
            log.exception("reopening the local hub failed")
        finally:
            self._opening = False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
