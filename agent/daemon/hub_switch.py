"""Replacing the Supabase hub after a sign-in or sign-out, between passes.

A pass must not write into the journal for one account while the hub is
switched to another, so the switch waits for the pass lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.context import Context
from agent.daemon.monitors import HubMonitors

log = logging.getLogger("hubsync.agent")

SUPABASE = "supabase"


class HubSwitches:
    def __init__(
        self,
        ctx: Context,
        pass_lock: asyncio.Lock,
        monitors: HubMonitors,
        opened: Callable[[str], None],
    ) -> None:
        self._ctx = ctx
        self._pass_lock = pass_lock
        self._monitors = monitors
        self._opened = opened
        """Called with the hub's name once it was opened again (or could not be)."""
        self._switches: set[asyncio.Task[None]] = set()
        """Supabase remotes being replaced once the pass under way ends."""

    async def reopen_supabase(self, wait: float = 5.0) -> bool:
        """Replace the Supabase remote and its health monitor between passes. Waits up
        to ``wait`` s; False when the switch is left to happen after the pass under way."""
        task = asyncio.create_task(self._between_passes())
        self._switches.add(task)
        task.add_done_callback(self._switches.discard)
        try:
            async with asyncio.timeout(wait):
                await asyncio.shield(task)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        for switch in self._switches:
            switch.cancel()
        await asyncio.gather(*self._switches, return_exceptions=True)

    async def _between_passes(self) -> None:
        async with self._pass_lock:
            await self._reopen()

    async def _reopen(self) -> None:
        ctx = self._ctx
        await self._monitors.stop(SUPABASE)
        old = ctx.remotes.pop(SUPABASE, None)
        if old is not None:
            await old.close()
        ctx.unavailable.pop(SUPABASE, None)
        seen = len(ctx.notices)
        await ctx.open_supabase()
        for notice in ctx.notices[seen:]:
            log.warning("%s", notice)
        self._opened(SUPABASE)
