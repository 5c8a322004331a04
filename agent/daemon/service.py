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
import logging
import os
import sqlite3
import time
from collections import deque
from dataclasses import replace
from importlib.metadata import version as dist_version
from pathlib import Path

from watchdog.observers import Observer

from agent.context import Context
from agent.control.analytics_api import register_analytics
from agent.control.handlers import register_handlers
from agent.control.hub_handlers import register_hub_handlers
from agent.control.hub_link import register_hub_link
from agent.control.payloads import ActivityItem, ProgressEvent, StatusSnapshot, UploadEvent
from agent.control.server import ControlServer
from agent.control.settings_api import register_settings
from agent.daemon.accounting import account_pass
from agent.daemon.disk_watch import DiskWatch
from agent.daemon.health import HealthMonitor, HealthState, HealthStatus
from agent.daemon.held import HeldDeletions
from agent.daemon.history_compactor import HistoryCompactor
from agent.daemon.hub_keeper import LocalHubKeeper
from agent.daemon.hub_switch import HubSwitches
from agent.daemon.metrics import Metrics, MetricsStore
from agent.daemon.monitors import EXAI, HubMonitors
from agent.daemon.oneoff import upload_paths
from agent.daemon.passes import after_pass, failed_pass, unsyncable
from agent.daemon.prefetch import PrefetchTask
from agent.daemon.progress import ProgressFeed
from agent.daemon.roots import Roots
from agent.daemon.runtime import RootRuntime, Timings
from agent.daemon.status import ALL_TIME, status_of
from agent.daemon.watcher import Debouncer, ObserverFactory, coverage_shortfall
from agent.exai.jobs import ExaiJobs
from sync.engine import PassReport
from sync.errors import AuthError, DiskFull
from sync.journal import Root

log = logging.getLogger("hubsync.agent")

MISSING_ROOT_CHECK = 5.0


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
        self.totals_before = self.metrics_store.totals(ALL_TIME)
        """Stored counter totals of earlier runs (this run's rows are added as it goes)."""
        self.roots = Roots(
            ctx.journal,
            self.debouncer,
            observer_factory,
            publish=self.server.publish,
            publish_status=self.publish_status,
            wake=self.wake,
        )
        self.runtimes = self.roots.runtimes
        self.monitors = HubMonitors(ctx, self.timings.health_interval, self._health_changed)
        self.paused = False
        self.paused_until: float | None = None
        """Wall time a pause "for a while" ends (the agent resumes by itself), or None."""
        self._pause_timer: asyncio.TimerHandle | None = None
        self.activity: deque[ActivityItem] = deque(maxlen=200)
        self.progress_feed = ProgressFeed(self.server.publish)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._last_root_check = 0.0
        self._last_hub_check = time.monotonic()
        self._last_pass_end = time.monotonic()
        self.pass_lock = asyncio.Lock()
        """Held by a pass; answers to held deletions and hub switches wait for it."""
        self.hub_keeper = LocalHubKeeper(
            ctx, self._local_hub_lost, lambda: self._hub_opened("local"), self.pass_lock
        )
        self.held = HeldDeletions(self)
        self.switches = HubSwitches(ctx, self.pass_lock, self.monitors, self._hub_opened)
        self.passes = 0
        self.disk = DiskWatch(
            ctx.paths.journal,
            retry=self.timings.disk_retry,
            retry_max=self.timings.disk_retry_max,
            on_full=lambda full: self.server.publish(
                "error", {"kind": "disk_full", "reason": full.message}
            ),
        )
        self.exai: ExaiJobs | None = None
        self.compactor = HistoryCompactor(
            cfg.compaction_interval_seconds, ctx.paths.cache_dir, cfg.compress_history
        )
        self.prefetch = PrefetchTask(ctx, self.pass_lock)

    @property
    def progress(self) -> ProgressEvent | None:
        return self.progress_feed.current

    @property
    def health(self) -> dict[str, HealthMonitor]:
        return self.monitors.hubs

    @property
    def exai_health(self) -> HealthMonitor | None:
        return self.monitors.exai

    @property
    def disk_full(self) -> DiskFull | None:
        """The journal's disk is full: no pass until it has space again."""
        return self.disk.full

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT through the CLI)."""
        register_handlers(self)
        register_hub_handlers(self)
        register_hub_link(self)
        register_settings(self)
        register_analytics(self)
        self.exai = ExaiJobs.from_config(
            self.ctx.config, self.ctx.paths, self.ctx.remotes, self.server.publish
        )
        self.exai.register(self.server)
        await self.server.start()
        for name in self.ctx.remotes:
            self.monitors.watch(name)
        self.monitors.watch_exai()
        for root in self.ctx.journal.roots():
            self.roots.start(root)
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

    async def reopen_supabase(self, wait: float = 5.0) -> bool:
        """After a sign-in or sign-out: the Supabase hub opened again, between passes."""
        return await self.switches.reopen_supabase(wait)

    def _hub_opened(self, hub: str) -> None:
        """A hub was (re)opened, or could not be: watch its health, rescan its folders."""
        if hub in self.ctx.remotes:
            self.monitors.watch(hub)
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
        self.roots.stop_watching()
        await self.hub_keeper.aclose()
        await self.held.aclose()
        await self.compactor.aclose()
        await self.switches.aclose()
        await self.monitors.aclose()
        if self.exai is not None:
            await self.exai.aclose()
        try:
            self.metrics_store.flush(self.metrics)
        except (sqlite3.Error, OSError) as exc:
            if self.disk.error_of(exc) is None:
                raise
        await self.server.close()
        log.info("agent stopped")

    # -- roots ----------------------------------------------------------------------------

    def add_root(self, root: Root) -> None:
        self.roots.add(root)

    def remove_root(self, root_id: str) -> None:
        self.roots.remove(root_id)

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
                rt.set_paused(paused)
        if not paused:
            for rt in self.runtimes.values():
                if root_id in (None, rt.root.id):
                    rt.needs_full_scan = True
        self._wake.set()
        self.publish_status()

    # -- scheduling -------------------------------------------------------------------------

    async def _local_hub_lost(self) -> None:
        await self.monitors.stop("local")
        self.publish_status()

    def _due(self) -> list[tuple[RootRuntime, list[str] | None]]:
        now = time.monotonic()
        disk_waits = self.disk.blocks(now)
        work: list[tuple[RootRuntime, list[str] | None]] = []
        batches = self.debouncer.ready()
        check_roots = now - self._last_root_check >= MISSING_ROOT_CHECK
        if check_roots:
            self._last_root_check = now
        for rid, known in list(self.runtimes.items()):
            rt = self.roots.present(known, look=check_roots)
            if rt is None:
                batches.pop(rid, None)
                continue
            rt.look_at_clock(now, self.timings.scan_interval(rt))
            blocked = (
                self.paused
                or rt.root.paused
                or not self.monitors.ready(rt.root.hub)
                or now < rt.blocked_until
                or disk_waits
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
        disk_look = self.disk.next_look(time.monotonic())
        if disk_look is not None:
            delays.append(disk_look)
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
            if self.paused or rt.root.paused or not self.monitors.ready(rt.root.hub):
                continue
            if rt.deletions_due:
                delays.append(max(0.05, rt.deletions_due - now))
            if not rt.needs_full_scan:
                delays.append(max(0.05, rt.last_full_scan + self.timings.scan_interval(rt) - now))
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
                    full = self.disk.error_of(exc)
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
        ticker = asyncio.create_task(self.progress_feed.tick())
        try:
            async with self.pass_lock:
                report = await self.ctx.engine.sync_root(
                    root,
                    paths=paths,
                    progress=self.progress_feed.update,
                    retry_errors=asked,
                    settle=not asked,
                )
        except Exception as exc:  # never let one pass kill the agent
            full = self.disk.error_of(exc)
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
            self.progress_feed.pass_ended()
        self.passes += 1
        self._last_pass_end = time.monotonic()
        if self.disk.space_again():
            for other in self.runtimes.values():
                other.needs_full_scan = True  # what waited is found by a full scan
            self._wake.set()
        if paths is None and rt.watcher is not None and not rt.degraded:
            self.roots.set_degraded(rt, coverage_shortfall(report.folders, rt.watcher.watches))
        if report.failure is not None and report.failure.kind == "local":
            self.roots.lose(rt)
        if after_pass(rt, report, self.timings.deletion_settle):
            self.monitors.poke(root.hub)
        account_pass(
            rt,
            report,
            paths,
            started,
            metrics=self.metrics,
            first_seen=self.debouncer.first_seen,
            journal=self.ctx.journal,
            activity=self.activity,
            publish=self.server.publish,
        )
        if report.recorded or report.deleted:  # new history to compress, maybe
            self.compactor.changed()
        if report.recorded > report.uploaded:  # some content the hub had: raw again if packed
            self.compactor.revive_soon(self.ctx.remotes)
        self.progress_feed.current = None
        self.publish_status()
        return report

    async def sync_now(self) -> list[PassReport]:
        """A full pass of every folder, now (``sync --once`` while the agent runs): the
        agent's own engine, so no second one writes the journal."""
        reports = []
        for rt in list(self.runtimes.values()):
            if rt.root.paused:
                continue
            report = unsyncable(rt, self.ctx)
            if report is None:
                done = await self._sync(rt, None, asked=True)
                report = failed_pass(rt, self.disk_full) if done is None else done
            reports.append(report)
        return reports

    def _health_changed(self, hub: str, status: HealthStatus) -> None:
        self.server.publish("health", {"hub": hub, **status.to_dict()})
        if hub == EXAI:
            return
        if status.state in (HealthState.ONLINE, HealthState.DEGRADED):
            self._wake.set()
        self.publish_status()

    def _out_of_space(self, full: DiskFull) -> None:
        self.disk.out_of_space(full)
        self.publish_status()

    def status(self) -> StatusSnapshot:
        return status_of(self)

    def publish_status(self) -> None:
        self.server.publish("status", self.status())

    async def upload(self, paths: list[Path], hub: str | None, link_ttl: int) -> list[UploadEvent]:
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
