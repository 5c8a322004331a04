"""The agent: keeps every root mirrored while the user works.

One scheduler task decides what to sync next — debounced batches from the
watchers, failed files whose retry time has come, periodic reconciliation
scans, full scans of degraded roots — and runs one pass at a time (uploads
inside a pass are concurrent). It sleeps until the next thing is due or a
watcher wakes it: no polling loop, ~0% CPU when idle. While a hub is offline
or needs sign-in, its roots' work waits and is picked up when the health
monitor sees the hub again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import stat
import time
from collections import deque
from dataclasses import dataclass, field, replace
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from watchdog.observers import Observer

from agent.analytics_api import register_analytics
from agent.context import Context
from agent.control.server import ControlServer
from agent.exai.client import ExaiClient
from agent.exai.health import check_health
from agent.exai.jobs import ExaiJobs
from agent.exai.results import default_results_dir
from agent.exai.settings import ExaiSettings
from agent.health import HealthMonitor, HealthState, HealthStatus
from agent.held import HeldDeletions
from agent.history_compactor import HistoryCompactor
from agent.hub_keeper import LocalHubKeeper
from agent.metrics import (
    BYTES_UPLOADED,
    DEDUP_BYTES_SAVED,
    DEDUP_HITS,
    FILES_UPLOADED,
    Metrics,
    MetricsStore,
)
from agent.oneoff import upload_paths
from agent.prefetch_task import PrefetchTask
from agent.settings_api import read_ignore, register_settings
from agent.watcher import Debouncer, ObserverFactory, RootWatcher, coverage_shortfall
from sync.disk_space import disk_full, free_bytes
from sync.engine import PassFailure, PassReport, Progress
from sync.errors import AuthError, DiskFull, TransientError
from sync.journal import FileState, Root
from sync.journal.states import GONE, WAITING

log = logging.getLogger("hubsync.agent")

PROGRESS_INTERVAL = 0.2
MISSING_ROOT_CHECK = 5.0
WAITING_SHOWN = 50
"""Waiting files named per folder in ``status`` (all are counted)."""
ALL_TIME = (DEDUP_HITS, DEDUP_BYTES_SAVED, FILES_UPLOADED, BYTES_UPLOADED)
"""Counters the status also gives over every run (``metrics.all_time``)."""
WAITING_CHECKED = 10_000
"""Beyond this many changed paths in a folder, ``status`` counts paths unchecked."""
HELD_SHOWN = 10
DISK_LOOK = 2.0
"""While the journal's disk is full, free space is looked at this often (a statvfs)."""
SPACE_FREED = 1 << 20
"""This much more free space than when the disk was found full: try again at once."""
"""Held deletions named in the status (the count is in ``counts``)."""


@dataclass
class RootRuntime:
    root: Root
    watcher: RootWatcher | None = None
    degraded: str | None = None
    missing: bool = False
    inode: int = 0
    failures: int = 0
    """Passes in a row that the hub cut short (transient or sign-in)."""
    blocked_until: float = 0.0
    """No pass before this (monotonic) time: backoff after a cut-short pass."""
    needs_full_scan: bool = True
    last_full_scan: float = 0.0
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    deletions_due: float = 0.0
    """When (monotonic) deletions waiting for the folder to be quiet are judged; 0: none."""
    held_back: set[str] = field(default_factory=set)
    """Changed paths that came while the folder could not sync (paused, hub offline):
    its next full scan syncs them; until then they are shown as waiting."""


@dataclass(frozen=True)
class Timings:
    debounce: float = 0.6
    max_delay: float = 8.0
    rescan_interval: float = 4 * 3600.0
    degraded_scan_interval: float = 60.0
    health_interval: float = 30.0
    deletion_settle: float = 10.0
    """Deletions wait until none new were seen this long (more than ``max_delay``: the
    watcher's batches of one ``rm -rf`` all arrive by then), then are judged together."""
    housekeeping: float = 60.0
    """Metrics go to the journal this often; after this long without a pass, the stat
    snapshot is refreshed (so a crash does not cost the next start a slow first rescan)."""
    disk_retry: float = 2.0
    """After the journal's disk was found full, the first wait before trying again
    (doubled each time it is still full, up to ``disk_retry_max``)."""
    disk_retry_max: float = 60.0


class AgentService:
    def __init__(
        self,
        ctx: Context,
        *,
        timings: Timings | None = None,
        observer_factory: ObserverFactory = Observer,
    ) -> None:
        self.ctx = ctx
        cfg = ctx.config.agent
        self.timings = timings or Timings(
            debounce=cfg.debounce_seconds,
            rescan_interval=cfg.rescan_interval_seconds,
            health_interval=cfg.health_interval_seconds,
        )
        self._observer_factory = observer_factory
        ctx.engine.mass_delete = replace(
            ctx.engine.mass_delete, settle=self.timings.deletion_settle
        )
        self.debouncer = Debouncer(self.timings.debounce, self.timings.max_delay)
        self.server = ControlServer(
            ctx.paths.control_socket,
            server_info={"version": dist_version("hubsync"), "pid": os.getpid()},
        )
        self.metrics = Metrics()
        self.metrics_store = MetricsStore(ctx.journal.metrics_connection())
        self._totals_before = self.metrics_store.totals(ALL_TIME)
        """Stored counter totals of earlier runs (this run's rows are added as it goes)."""
        self.runtimes: dict[str, RootRuntime] = {}
        self.health: dict[str, HealthMonitor] = {}
        self.paused = False
        self.paused_until: float | None = None
        """Wall time a pause "for a while" ends (the agent resumes by itself), or None."""
        self._pause_timer: asyncio.TimerHandle | None = None
        self.activity: deque[dict[str, Any]] = deque(maxlen=200)
        self.progress: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_progress = 0.0
        self._live: Progress | None = None
        self._last_root_check = 0.0
        self._last_hub_check = time.monotonic()
        self._last_pass_end = time.monotonic()
        self.pass_lock = asyncio.Lock()
        """Held by a pass; answers to held deletions and hub switches wait for it."""
        self.hub_keeper = LocalHubKeeper(
            ctx, self._local_hub_lost, lambda: self._hub_opened("local"), self.pass_lock
        )
        self.held = HeldDeletions(self)
        self._switches: set[asyncio.Task[None]] = set()
        """Supabase remotes being replaced once the pass under way ends."""
        self.passes = 0
        self.disk_full: DiskFull | None = None
        """The journal's disk is full: no pass until ``_disk_retry_at`` (monotonic)."""
        self._disk_retry_at = 0.0
        self._disk_waits = 0
        self._last_space_look = 0.0
        self.exai: ExaiJobs | None = None
        self.exai_health: HealthMonitor | None = None
        """Kept apart from ``health``: EXAI being down never holds back syncing."""
        self.compactor = HistoryCompactor(
            cfg.compaction_interval_seconds, ctx.paths.cache_dir, cfg.compress_history
        )
        self.prefetch = PrefetchTask(self)

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT through the CLI)."""
        self._loop = asyncio.get_running_loop()
        from agent.handlers import register_handlers
        from agent.hub_handlers import register_hub_handlers
        from agent.hub_link import register_hub_link

        register_handlers(self)
        register_hub_handlers(self)
        register_hub_link(self)
        register_settings(self)
        register_analytics(self)
        self.exai = self._exai_jobs()
        self.exai.register(self.server)
        await self.server.start()
        for name in self.ctx.remotes:
            self._monitor(name)
        self._monitor_exai()
        for root in self.ctx.journal.roots():
            self._start_root(root)
        log.info("agent started with %d folders", len(self.runtimes))
        for notice in self.ctx.notices:
            log.warning("%s", notice)
        for hub, why in self.ctx.unavailable.items():
            log.info("%s hub not available: %s", hub, why)
        prefetching = asyncio.create_task(self.prefetch.run())
        try:
            await self._schedule()
        finally:
            prefetching.cancel()
            await self._shutdown()

    def _exai_jobs(self) -> ExaiJobs:
        cfg = self.ctx.config
        return ExaiJobs(
            ExaiClient(ExaiSettings.from_config(cfg.exai)),
            self.ctx.remotes,
            default_hub=cfg.default_hub(),
            results_dir=default_results_dir(cfg, self.ctx.paths),
            publish=self.server.publish,
            path_map=cfg.exai.path_map,
            download_dir=cfg.exai.download_dir,
        )

    def _monitor(self, hub: str) -> None:
        monitor = HealthMonitor(
            self.ctx.remotes[hub].ping,
            interval=self.timings.health_interval,
            on_change=functools.partial(self._health_changed, hub),
        )
        self.health[hub] = monitor
        monitor.start()

    def _monitor_exai(self) -> None:
        """EXAI's health beside the hubs', once a token is set (no token: not in use)."""
        settings = ExaiSettings.from_config(self.ctx.config.exai)
        if not settings.token:
            return

        async def probe() -> float:
            health = await check_health(settings, http=False)
            if health.state == "auth":
                raise AuthError(health.error or "EXAI rejected the token")
            if health.state == "down":
                raise TransientError(health.error or f"EXAI at {settings.url} does not answer")
            return (health.round_trip_ms or 0.0) / 1000

        monitor = HealthMonitor(
            probe,
            interval=self.timings.health_interval,
            on_change=functools.partial(self._health_changed, "exai"),
        )
        self.exai_health = monitor
        monitor.start()

    async def reopen_supabase(self, wait: float = 5.0) -> bool:
        """After a sign-in or sign-out: replace the Supabase remote and its health monitor,
        between passes (a pass must not write into the journal for one account while
        it is switched to another). Waits up to ``wait`` s; False when the switch is
        left to happen after the pass under way."""
        task = asyncio.create_task(self._reopen_supabase_between_passes())
        self._switches.add(task)
        task.add_done_callback(self._switches.discard)
        try:
            async with asyncio.timeout(wait):
                await asyncio.shield(task)
        except TimeoutError:
            return False
        return True

    async def _reopen_supabase_between_passes(self) -> None:
        async with self.pass_lock:
            await self._reopen_supabase()

    async def _reopen_supabase(self) -> None:
        await self._stop_monitor("supabase")
        old = self.ctx.remotes.pop("supabase", None)
        if old is not None:
            await old.close()
        self.ctx.unavailable.pop("supabase", None)
        seen = len(self.ctx.notices)
        await self.ctx.open_supabase()
        for notice in self.ctx.notices[seen:]:
            log.warning("%s", notice)
        self._hub_opened("supabase")

    async def _stop_monitor(self, hub: str) -> None:
        monitor = self.health.pop(hub, None)
        if monitor is not None:
            await monitor.stop()

    def _hub_opened(self, hub: str) -> None:
        """A hub was (re)opened, or could not be: watch its health, rescan its folders."""
        if hub in self.ctx.remotes:
            self._monitor(hub)
        for rt in self.runtimes.values():
            if rt.root.hub == hub:
                rt.needs_full_scan = True
        self._wake.set()
        self.publish_status()

    def apply_settings(self) -> None:
        """Take the settings that can change while running (limits) from the config."""
        agent_cfg = self.ctx.config.agent
        self.ctx.engine.upload_limit.set_rate(agent_cfg.upload_limit_kbps * 1024)
        self.ctx.cache.download_limit.set_rate(agent_cfg.download_limit_kbps * 1024)

    def rescan(self, root_id: str) -> None:
        rt = self.runtimes.get(root_id)
        if rt is not None:
            rt.needs_full_scan = True
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _shutdown(self) -> None:
        for rt in self.runtimes.values():
            if rt.watcher is not None:
                rt.watcher.stop()
        await self.hub_keeper.aclose()
        await self.held.aclose()
        await self.compactor.aclose()
        for switch in self._switches:
            switch.cancel()
        await asyncio.gather(*self._switches, return_exceptions=True)
        for monitor in self.health.values():
            await monitor.stop()
        if self.exai_health is not None:
            await self.exai_health.stop()
        if self.exai is not None:
            await self.exai.aclose()
        try:
            self.metrics_store.flush(self.metrics)
        except (sqlite3.Error, OSError) as exc:
            if self._space_error(exc) is None:
                raise
        await self.server.close()
        log.info("agent stopped")

    # -- roots ----------------------------------------------------------------------------

    def _start_root(self, root: Root) -> RootRuntime:
        rt = RootRuntime(root)
        self.runtimes[root.id] = rt
        try:
            rt.inode = root.path.stat().st_ino
        except OSError:
            rt.missing = True
            return rt
        loop = self._loop
        assert loop is not None

        def on_path(rel: str, structural: bool, rid: str = root.id) -> None:
            loop.call_soon_threadsafe(self._changed, rid, rel, structural)

        def on_trouble(reason: str, rid: str = root.id) -> None:
            loop.call_soon_threadsafe(self._trouble, rid, reason)

        rt.watcher = RootWatcher(root.path, on_path, on_trouble, self._observer_factory)
        reason = rt.watcher.start()
        if reason is not None:
            rt.watcher = None
            self._set_degraded(rt, reason)
        return rt

    def add_root(self, root: Root) -> None:
        if root.id not in self.runtimes:
            self._start_root(root)
            self._wake.set()

    def remove_root(self, root_id: str) -> None:
        rt = self.runtimes.pop(root_id, None)
        if rt is not None and rt.watcher is not None:
            rt.watcher.stop()
        self.debouncer.drop(root_id)

    def _lose_root(self, rt: RootRuntime) -> None:
        """The folder is gone: stop watching, keep everything, look again every few seconds."""
        rt.missing = True
        if rt.watcher is not None:
            rt.watcher.stop()
            rt.watcher = None
        self.debouncer.drop(rt.root.id)
        self.publish_status()

    def _changed(self, root_id: str, rel: str, structural: bool) -> None:
        if root_id in self.runtimes:
            self.debouncer.add(root_id, rel, structural=structural)
            self._wake.set()

    def _trouble(self, root_id: str, reason: str) -> None:
        rt = self.runtimes.get(root_id)
        if rt is not None:
            log.warning("%s: %s", rt.root.path, reason)
            rt.needs_full_scan = True
            self._wake.set()

    def _set_degraded(self, rt: RootRuntime, reason: str | None) -> None:
        if rt.degraded == reason:
            return
        rt.degraded = reason
        self.ctx.journal.set_root_flags(rt.root.id, degraded=reason)
        if reason:
            log.warning("%s is degraded: %s", rt.root.path, reason)
            self.server.publish(
                "error", {"root": str(rt.root.path), "kind": "degraded", "reason": reason}
            )
        self.publish_status()

    def wake(self) -> None:
        """Look for due work now (after a retry request, a resume, a new root...)."""
        self._wake.set()

    def set_paused(
        self, paused: bool, root_id: str | None = None, for_seconds: float | None = None
    ) -> None:
        """``for_seconds``: a pause of everything that ends by itself (the agent resumes)."""
        if root_id is None:
            self.paused = paused
            if self._pause_timer is not None:
                self._pause_timer.cancel()
                self._pause_timer = None
            self.paused_until = None
            if paused and for_seconds is not None:
                self.paused_until = time.time() + for_seconds
                self._pause_timer = asyncio.get_running_loop().call_later(
                    for_seconds, self.set_paused, False
                )
        else:
            self.ctx.journal.set_root_flags(root_id, paused=paused)
            rt = self.runtimes.get(root_id)
            if rt is not None:
                rt.root = _with_paused(rt.root, paused)
        if not paused:
            for rt in self.runtimes.values():
                if root_id in (None, rt.root.id):
                    rt.needs_full_scan = True
        self._wake.set()
        self.publish_status()

    # -- scheduling -------------------------------------------------------------------------

    async def _local_hub_lost(self) -> None:
        await self._stop_monitor("local")
        self.publish_status()

    def _hub_ready(self, hub: str) -> bool:
        monitor = self.health.get(hub)
        if monitor is None:
            return False
        return monitor.status.state not in (HealthState.OFFLINE, HealthState.SIGNIN_NEEDED)

    def _due(self) -> list[tuple[RootRuntime, list[str] | None]]:
        now = time.monotonic()
        if now < self._disk_retry_at and now - self._last_space_look >= DISK_LOOK:
            self._last_space_look = now
            if self._space_freed():
                self._disk_retry_at = now  # try at once, not at the end of the wait
        work: list[tuple[RootRuntime, list[str] | None]] = []
        batches = self.debouncer.ready()
        check_roots = now - self._last_root_check >= MISSING_ROOT_CHECK
        if check_roots:
            self._last_root_check = now
        for rid, rt in list(self.runtimes.items()):
            if check_roots and not rt.missing and not _same_folder(rt):
                log.warning("%s is gone (unplugged or moved); pausing it", rt.root.path)
                self._lose_root(rt)
            if rt.missing:
                if rt.root.path.is_dir():
                    self.remove_root(rid)
                    rt = self._start_root(rt.root)
                    log.info("%s is back", rt.root.path)
                else:
                    batches.pop(rid, None)
                    continue
            interval = (
                self.timings.degraded_scan_interval if rt.degraded else self.timings.rescan_interval
            )
            if now - rt.last_full_scan >= interval:
                rt.needs_full_scan = True
            if rt.deletions_due and now >= rt.deletions_due:
                rt.deletions_due = 0.0
                rt.needs_full_scan = True  # sees every deletion, also those not reported
            blocked = (
                self.paused
                or rt.root.paused
                or not self._hub_ready(rt.root.hub)
                or now < rt.blocked_until
                or now < self._disk_retry_at
            )
            if blocked:
                if rid in batches:
                    rt.needs_full_scan = True  # events are not lost: rescan when unblocked
                    rt.held_back.update(batches.pop(rid))
                continue
            if rt.needs_full_scan:
                batches.pop(rid, None)
                work.append((rt, None))
            elif rid in batches:
                work.append((rt, sorted(batches.pop(rid))))
            else:
                retry = self._retries_due(rt)
                if retry:
                    work.append((rt, retry))
        return work

    def _retries_due(self, rt: RootRuntime) -> list[str]:
        return self.ctx.journal.retries_due(rt.root.id, time.time())

    def _next_wake(self) -> float:
        """Seconds until something may be due. Roots that cannot run now (paused, hub
        offline) add nothing: a resume or a health change wakes the scheduler."""
        delays = [self.timings.housekeeping]
        if self._disk_retry_at > time.monotonic():
            delays.append(min(DISK_LOOK, self._disk_retry_at - time.monotonic()))
        due = self.debouncer.next_due()
        if due is not None:
            delays.append(due)
        now_wall, now = time.time(), time.monotonic()
        if self.runtimes:
            delays.append(max(0.05, self._last_root_check + MISSING_ROOT_CHECK - now))
        for rt in self.runtimes.values():
            if rt.missing:
                continue
            if rt.blocked_until > now:
                delays.append(rt.blocked_until - now)
                continue
            if self.paused or rt.root.paused or not self._hub_ready(rt.root.hub):
                continue
            if rt.deletions_due:
                delays.append(max(0.05, rt.deletions_due - now))
            if not rt.needs_full_scan:
                interval = (
                    self.timings.degraded_scan_interval
                    if rt.degraded
                    else self.timings.rescan_interval
                )
                delays.append(max(0.05, rt.last_full_scan + interval - now))
            retry_at = self.ctx.journal.next_retry(rt.root.id)
            if retry_at is not None:
                delays.append(max(0.05, retry_at - now_wall))
        return max(0.01, min(delays))

    async def _schedule(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()
            if time.monotonic() - self._last_hub_check >= MISSING_ROOT_CHECK:
                self._last_hub_check = time.monotonic()
                await self.hub_keeper.check()
            for rt, paths in self._due():
                if self._stop.is_set():
                    break
                await self._sync(rt, paths)
            self.metrics.set_queue_length(  # cheap: changed paths, not checked one by one
                self.debouncer.queued + sum(len(rt.held_back) for rt in self.runtimes.values())
            )
            now = time.monotonic()
            if now - last_flush >= self.timings.housekeeping:
                try:
                    self.metrics_store.flush(self.metrics)
                except (sqlite3.Error, OSError) as exc:  # kept for the next flush
                    full = self._space_error(exc)
                    if full is None:
                        raise
                    self._out_of_space(full)
                if now - self._last_pass_end >= self.timings.housekeeping:
                    self.ctx.journal.save_snapshot()
                last_flush = now
                self.compactor.poke(self.ctx.remotes)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wake()):
                    await self._wake.wait()

    async def _sync(
        self, rt: RootRuntime, paths: list[str] | None, *, asked: bool = False
    ) -> PassReport | None:
        """One pass; ``asked``: the user asked for it (``sync --once``), so failed files
        are tried again at once and deletions are judged at once."""
        root = rt.root
        if paths is None:
            rt.needs_full_scan = False
            rt.last_full_scan = time.monotonic()
            rt.held_back.clear()
        else:
            rt.held_back.difference_update(paths)
        started = time.time()
        ticker = asyncio.create_task(self._tick_progress())
        try:
            async with self.pass_lock:
                report = await self.ctx.engine.sync_root(
                    root,
                    paths=paths,
                    progress=self._on_progress,
                    retry_errors=asked,
                    settle=not asked,
                )
        except Exception as exc:  # never let one pass kill the agent
            full = self._space_error(exc)
            rt.needs_full_scan = True
            if full is not None:
                self._out_of_space(full)
                return None
            log.exception("sync of %s failed", root.path)
            self.server.publish(
                "error", {"root": str(root.path), "kind": "internal", "reason": str(exc)}
            )
            return None
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            self._live = None
        self.passes += 1
        self._last_pass_end = time.monotonic()
        if self.disk_full is not None:
            self._space_again()
        if paths is None and rt.watcher is not None and not rt.degraded:
            self._set_degraded(rt, coverage_shortfall(report.folders, rt.watcher.watches))
        failure = report.failure or PassFailure("", "")
        if failure.kind == "local":
            self._lose_root(rt)
        root_error, root_reason = failure.kind, failure.reason
        if report.auth_needed or root_error == "transient":
            rt.needs_full_scan = True  # what the pass could not finish is picked up again
            rt.failures += 1
            wait = min(300.0, 2.0 * 2 ** min(rt.failures, 8))
            rt.blocked_until = time.monotonic() + wait
            log.warning("%s: %s; trying again in %.0f s", root.path, root_reason, wait)
            monitor = self.health.get(root.hub)
            if monitor is not None:
                monitor.poke()
        else:
            rt.failures = 0
            rt.blocked_until = 0.0
        if report.deferred:
            rt.deletions_due = time.monotonic() + self.timings.deletion_settle
        self._account(rt, report, paths, started)
        return report

    async def sync_now(self) -> list[PassReport]:
        """A full pass of every folder, now (``sync --once`` while the agent runs): the
        agent's own engine, so no second one writes the journal."""
        reports = []
        for rt in list(self.runtimes.values()):
            if rt.root.paused:
                continue
            root = rt.root
            if rt.missing or not root.path.is_dir():
                report = PassReport(root)
                report.fail("local", f"folder {root.path} is not reachable")
            elif root.hub not in self.ctx.remotes:
                report = PassReport(root)
                why = self.ctx.unavailable.get(root.hub) or f"the {root.hub} hub is not available"
                report.fail("transient" if root.hub == "local" else "auth", why)
                report.auth_needed = root.hub != "local"
            else:
                done = await self._sync(rt, None, asked=True)
                if done is None:
                    report = PassReport(root)
                    if self.disk_full is not None:
                        report.fail("transient", self.disk_full.message)
                    else:
                        report.fail("internal", "the pass failed; see `hubsync logs`")
                else:
                    report = done
            reports.append(report)
        return reports

    def _account(
        self, rt: RootRuntime, report: PassReport, paths: list[str] | None, started: float
    ) -> None:
        m = self.metrics
        if report.uploaded:
            m.count("files_uploaded", report.uploaded)
            m.count("bytes_uploaded", report.uploaded_bytes)
        if report.deduplicated:
            m.count("dedup_hits", report.deduplicated)
            m.count("dedup_bytes_saved", report.dedup_bytes)
        for kind, _ in report.shown_errors().values():
            m.error(kind)
        now = time.time()
        batch = None if paths is None else set(paths)
        for key in [k for k in self.debouncer.first_seen if k[0] == rt.root.id]:
            if batch is not None and key[1] not in batch:
                continue
            row = self.ctx.journal.file(rt.root.id, key[1])
            if row is not None and row.state in (*WAITING, FileState.ERROR):
                continue  # not in the hub yet: measured when it gets there
            first = self.debouncer.first_seen.pop(key)
            if row is not None:
                m.observe_latency(max(0.0, now - first))
        if report.recorded > report.uploaded:  # some content the hub had: raw again if packed
            self.compactor.revive_soon(self.ctx.remotes)
        changes = report.recorded + report.deleted
        errors = report.shown_errors()
        if changes or errors or report.held_deletes:
            item = {
                "ts": now,
                "root": str(rt.root.path),
                "kind": "sync",
                "recorded": report.recorded,
                "uploaded": report.uploaded,
                "uploaded_bytes": report.uploaded_bytes,
                "deduplicated": report.deduplicated,
                "deleted": report.deleted,
                "held_deletes": len(report.held_deletes),
                "errors": len(errors),
                "duration": round(now - started, 3),
            }
            self.activity.appendleft(item)
            self.server.publish("activity", item)
        new_problems = {
            k: v
            for k, v in errors.items()
            if rt.problems.get(k) != v and (k, v[0]) != (".", "transient")  # logged with its wait
        }
        rt.problems = errors
        for rel, (kind, reason) in list(new_problems.items())[:20]:
            log.warning("%s: %s: %s (%s)", rt.root.path, rel, reason, kind)
            self.server.publish(
                "error", {"root": str(rt.root.path), "path": rel, "kind": kind, "reason": reason}
            )
        self.progress = None
        self.publish_status()

    def _on_progress(self, p: Progress) -> None:
        self._live = p
        self.progress = _progress_dict(p)
        now = time.monotonic()
        if p.phase == "done" or now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            self.server.publish("progress", self.progress)

    async def _tick_progress(self) -> None:
        """While a pass runs, publish its byte progress (uploads report from threads)."""
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            live = self._live
            if live is not None and live.phase != "done":
                self.progress = _progress_dict(live)
                self.server.publish("progress", self.progress)

    def _health_changed(self, hub: str, status: HealthStatus) -> None:
        self.server.publish("health", {"hub": hub, **status.to_dict()})
        if hub == "exai":
            return
        if status.state in (HealthState.ONLINE, HealthState.DEGRADED):
            self._wake.set()
        self.publish_status()

    # -- a full disk ------------------------------------------------------------------------

    def _space_error(self, exc: BaseException) -> DiskFull | None:
        """``exc`` (from a journal write, or the engine's own files) as a full disk."""
        return disk_full(exc, self.ctx.paths.journal)

    def _out_of_space(self, full: DiskFull) -> None:
        """The journal's disk is full: nothing was written half (SQLite rolled back);
        passes wait, longer each time, and the first one that gets through goes on."""
        self._disk_waits += 1
        wait = min(
            self.timings.disk_retry_max, self.timings.disk_retry * 2 ** (self._disk_waits - 1)
        )
        self._disk_retry_at = time.monotonic() + wait
        if self.disk_full is None:
            self.server.publish("error", {"kind": "disk_full", "reason": full.message})
        self.disk_full = full
        log.warning(
            "%s: HubSync cannot write its journal; syncing waits (trying again in %.0f s)",
            full.message,
            wait,
        )
        self.publish_status()

    def _space_freed(self) -> bool:
        """Whether space was freed since the journal's disk was found full."""
        assert self.disk_full is not None
        free = free_bytes(self.ctx.paths.journal)
        return free is not None and free >= self.disk_full.free + SPACE_FREED

    def _space_again(self) -> None:
        assert self.disk_full is not None
        log.info("space again on %s: syncing goes on", self.disk_full.where)
        self.disk_full = None
        self._disk_waits = 0
        self._disk_retry_at = 0.0
        for rt in self.runtimes.values():
            rt.needs_full_scan = True  # what waited is found by a full scan
        self._wake.set()

    # -- status -----------------------------------------------------------------------------

    def waiting(self) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        """Files waiting for a pass, by root id: (how many, the first ``WAITING_SHOWN``).

        Counted in files, not events: each changed path once, and only if it is a file
        now or a file the journal knows (then its deletion waits); directories and
        temporary files that came and went are not files to sync."""
        pending = self.debouncer.waiting()
        out: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        for rid, rt in self.runtimes.items():
            paths = pending.get(rid, set()) | rt.held_back
            if not paths or rt.missing:
                continue
            count, shown = 0, list[dict[str, Any]]()
            if len(paths) > WAITING_CHECKED:  # a burst: not a stat per path on the loop
                out[rid] = (len(paths), [])
                continue
            for rel in sorted(paths):
                try:
                    st = (rt.root.path / rel).lstat()
                    size: int | None = st.st_size if stat.S_ISREG(st.st_mode) else None
                    if size is None:
                        continue
                except OSError:
                    row = self.ctx.journal.file(rid, rel)
                    if row is None or row.state in GONE:
                        continue
                    size = None  # gone: its deletion waits
                count += 1
                if len(shown) < WAITING_SHOWN:
                    shown.append({"path": rel, "size": size})
            out[rid] = (count, shown)
        return out

    def status(self) -> dict[str, Any]:
        journal = self.ctx.journal
        roots = []
        waiting = self.waiting()
        for rt in self.runtimes.values():
            counts = journal.count_states(rt.root.id)
            root_waiting, waiting_shown = waiting.get(rt.root.id, (0, []))
            roots.append(
                {
                    "id": rt.root.id,
                    "path": str(rt.root.path),
                    "hub": rt.root.hub,
                    "paused": rt.root.paused,
                    "degraded": rt.degraded,
                    "missing": rt.missing,
                    "watching": rt.watcher is not None,
                    "ignore": read_ignore(rt.root.path) if not rt.missing else [],
                    "counts": counts,
                    "held": journal.held(rt.root.id, HELD_SHOWN) if counts.get("held") else [],
                    "answering": self.held.busy(rt.root.id),
                    "pass_due": rt.needs_full_scan or bool(rt.deletions_due),
                    "waiting": root_waiting,
                    "waiting_sample": waiting_shown,
                    "problems": [
                        {"path": rel, "kind": kind, "reason": reason}
                        for rel, (kind, reason) in list(rt.problems.items())[:50]
                    ],
                }
            )
        stats = self.ctx.cache.stats()
        return {
            "state": self._overall_state(),
            "paused": self.paused,
            "paused_until": self.paused_until,
            "disk_full": None if self.disk_full is None else self.disk_full.message,
            "roots": roots,
            "queue": sum(n for n, _ in waiting.values()),
            "progress": self.progress,
            "health": {
                hub: {**m.status.to_dict(), "user": self._hub_user(hub)}
                for hub, m in self.health.items()
            },
            "exai": None if self.exai_health is None else self.exai_health.status.to_dict(),
            "history": self.compactor.status(),
            "hubs": {name: r.describe() for name, r in self.ctx.remotes.items()},
            "unavailable": self.ctx.unavailable,
            "cache": {
                "entries": stats.entries,
                "bytes": stats.size_bytes,
                "limit": stats.limit_bytes,
                "hits": stats.hits,
                "misses": stats.misses,
                "hit_rate": stats.hit_rate,
            },
            "prefetch": self.prefetch.status(),
            "metrics": {
                **self.metrics.snapshot(),
                "all_time": self.metrics_store.all_time(
                    self.metrics, ALL_TIME, self._totals_before
                ),
            },
        }

    def _hub_user(self, hub: str) -> str | None:
        identity = getattr(getattr(self.ctx.remotes.get(hub), "session", None), "identity", None)
        return getattr(identity, "email", None) or getattr(identity, "user_id", None)

    def _overall_state(self) -> str:
        if self.paused:
            return "paused"
        if self.disk_full is not None:
            return "disk_full"
        states = {m.status.state for m in self.health.values()}
        for rt in self.runtimes.values():  # a hub that is not open at all
            if rt.root.hub not in self.ctx.remotes and not rt.root.paused:
                states.add(
                    HealthState.SIGNIN_NEEDED if rt.root.hub == "supabase" else HealthState.OFFLINE
                )
        if HealthState.SIGNIN_NEEDED in states:
            return "signin_needed"
        if HealthState.OFFLINE in states:
            return "offline"
        if self.progress is not None and self.progress.get("phase") != "done":
            return "syncing"
        if self.debouncer.queued:
            return "syncing"
        if any(rt.problems for rt in self.runtimes.values()):
            return "error"
        return "idle"

    def publish_status(self) -> None:
        self.server.publish("status", self.status())

    async def upload(
        self, paths: list[Path], hub: str | None, link_ttl: int
    ) -> list[dict[str, Any]]:
        chosen = hub or self.ctx.config.default_hub()
        remote = self.ctx.remotes.get(chosen)
        if remote is None:
            raise AuthError(self.ctx.unavailable.get(chosen, f"the {chosen} hub is not available"))
        results = await upload_paths(
            remote,
            paths,
            publish=lambda data: self.server.publish("upload", data),
            link_ttl=link_ttl,
        )
        for r in results:
            if r.get("ok"):
                self.metrics.count("oneoff_uploads")
        return results


def _same_folder(rt: RootRuntime) -> bool:
    try:
        return rt.root.path.stat().st_ino == rt.inode
    except OSError:
        return False


def _with_paused(root: Root, paused: bool) -> Root:
    return Root(root.id, root.path, root.hub, paused, root.degraded)


def _progress_dict(p: Progress) -> dict[str, Any]:
    return {
        "phase": p.phase,
        "root": p.root,
        "files_done": p.files_done,
        "files_total": p.files_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "current": p.current,
        "current_size": p.current_size,
        "active": [
            {"path": rel, "bytes_done": done, "bytes_total": total}
            for rel, (done, total) in list(p.active.items())[:10]
        ],
        "queue": [{"path": rel, "size": size} for rel, size in list(p.waiting.items())[:20]],
    }
