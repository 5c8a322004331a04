"""The agent's prefetch loop: learn from the hubs' read logs, fetch guesses when idle.

Every ``interval`` the new ``download`` rows of each hub are learnt; when prefetch is
on, the link is not metered, no pass runs and the load is low, the guesses
:func:`sync.prefetch.plan` picks are fetched into the cache from that hub.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from agent.context import Context
from agent.control.payloads import PrefetchStatus
from agent.platform.link_state import machine_busy, metered
from sync.access_log import ReadLogSource, to_access
from sync.errors import SyncError
from sync.prefetch import DAY, Access, Budget, Predictor, plan
from sync.remotes.base import LocalBlobs

log = logging.getLogger(__name__)

INTERVAL = 300.0
HISTORY = 14 * DAY
"""How far back the read log is read when the agent starts."""


class PrefetchTask:
    def __init__(
        self, ctx: Context, pass_lock: asyncio.Lock, *, interval: float = INTERVAL
    ) -> None:
        self.ctx = ctx
        self.pass_lock = pass_lock
        """Held by a pass: no guess is fetched meanwhile (the journal's writer is the pass's)."""
        self.interval = interval
        offset = datetime.now().astimezone().utcoffset()
        self.predictor = Predictor(utc_offset=offset.total_seconds() if offset else 0.0)
        self._since: dict[str, str] = {}
        self._hub_of: dict[str, str] = {}
        self.last_reason = "not run yet"
        self.max_load = 0.5
        """Load average per core above which the machine counts as busy."""

    def _budget(self) -> Budget:
        cfg = self.ctx.config.cache
        return Budget(
            bytes_per_day=cfg.prefetch_bytes_per_day, cache_share=cfg.prefetch_cache_share
        )

    def why_not(self) -> str | None:
        """Why no guess may be fetched now; None when it may."""
        cfg = self.ctx.config.cache
        if not cfg.prefetch:
            return "off"
        if metered(cfg.prefetch_metered):
            return "metered link"
        if self.pass_lock.locked():
            return "a pass is running"
        if machine_busy(self.max_load):
            return "machine busy"
        return None

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except SyncError as exc:
                log.info("prefetch round skipped: %s", exc.message)
            await asyncio.sleep(self.interval)

    async def learn(self) -> None:
        """Read what each hub's log gained since the last look (in time order)."""
        new: list[tuple[Access, str]] = []
        for name, remote in list(self.ctx.remotes.items()):
            if not isinstance(remote, ReadLogSource):
                continue
            since = (
                self._since.get(name)
                or datetime.fromtimestamp(time.time() - HISTORY, UTC).isoformat()
            )
            rows = await remote.read_log(since)
            if rows:
                self._since[name] = str(rows[-1].get("created_at") or since)
            new += ((a, name) for a in map(to_access, rows) if a is not None)
        new.sort(key=lambda pair: pair[0].at)
        self.predictor.learn(a for a, _ in new)
        rollups = self.ctx.journal.rollups()
        if not self.pass_lock.locked():  # the journal's writer is the pass's
            rollups.record_reads(a for a, _ in new)
            rollups.roll_up(time.time(), self.ctx.cache.stats())
        self._hub_of.update((a.item, name) for a, name in new)

    async def round(self) -> int:
        """Learn, then fetch the guesses allowed now; how many were kept."""
        await self.learn()
        reason = self.why_not()
        self.last_reason = reason or "ready"
        if reason is not None:
            return 0
        cache = self.ctx.cache
        budget = self._budget()
        kept = 0
        for guess in plan(self.predictor, cache, time.time(), budget):
            if self.why_not() is not None:
                break  # a pass started, or the link or the machine changed
            remote = self.ctx.remotes.get(self._hub_of.get(guess.item, ""))
            if remote is None or isinstance(remote, LocalBlobs):
                continue  # gone, or a hub on this machine: its reads bypass the cache
            try:
                kept += await cache.prefetch(
                    remote, guess.key, guess.sha256, protect=budget.protect
                )
            except SyncError as exc:
                log.info("prefetch of %s failed: %s", guess.item, exc.message)
        return kept

    def status(self) -> PrefetchStatus:
        stats = self.ctx.cache.stats()
        return {
            "enabled": self.ctx.config.cache.prefetch,
            "state": self.last_reason,
            "prefetched": stats.prefetched,
            "hits": stats.prefetch_hits,
            "wasted_bytes": stats.prefetch_wasted_bytes,
            "bytes": stats.prefetch_bytes,
            "hit_rate_without": stats.hit_rate_without_prefetch,
        }
