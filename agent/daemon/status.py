"""The agent's ``status`` answer: every folder, what waits, hubs' health, cache, metrics.

Built on the loop from what the service holds (``StatusHost``), and published as
a ``status`` event whenever it changes. Counted in files, not events.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from typing import Protocol

from agent.context import Context
from agent.control.payloads import (
    HealthData,
    ProgressEvent,
    RootStatus,
    StatusSnapshot,
    WaitingFile,
)
from agent.control.settings_api import read_ignore
from agent.daemon.health import HealthMonitor, HealthState
from agent.daemon.held import HeldDeletions
from agent.daemon.history_compactor import HistoryCompactor
from agent.daemon.metrics import (
    BYTES_UPLOADED,
    DEDUP_BYTES_SAVED,
    DEDUP_HITS,
    FILES_UPLOADED,
    Metrics,
    MetricsStore,
)
from agent.daemon.prefetch import PrefetchTask
from agent.daemon.runtime import RootRuntime
from agent.daemon.watcher import Debouncer
from sync.errors import DiskFull
from sync.journal.states import GONE

WAITING_SHOWN = 50
"""Waiting files named per folder in ``status`` (all are counted)."""
WAITING_CHECKED = 10_000
"""Beyond this many changed paths in a folder, ``status`` counts paths unchecked."""
HELD_SHOWN = 10
"""Held deletions named in the status (the count is in ``counts``)."""
ALL_TIME = (DEDUP_HITS, DEDUP_BYTES_SAVED, FILES_UPLOADED, BYTES_UPLOADED)
"""Counters the status also gives over every run (``metrics.all_time``)."""


class StatusHost(Protocol):
    """What the status is made of (the service, read only)."""

    @property
    def ctx(self) -> Context: ...
    @property
    def runtimes(self) -> Mapping[str, RootRuntime]: ...
    @property
    def debouncer(self) -> Debouncer: ...
    @property
    def held(self) -> HeldDeletions: ...
    @property
    def paused(self) -> bool: ...
    @property
    def paused_until(self) -> float | None: ...
    @property
    def disk_full(self) -> DiskFull | None: ...
    @property
    def progress(self) -> ProgressEvent | None: ...
    @property
    def health(self) -> Mapping[str, HealthMonitor]: ...
    @property
    def exai_health(self) -> HealthMonitor | None: ...
    @property
    def compactor(self) -> HistoryCompactor: ...
    @property
    def prefetch(self) -> PrefetchTask: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def metrics_store(self) -> MetricsStore: ...
    @property
    def totals_before(self) -> dict[str, float]: ...


def waiting(agent: StatusHost) -> dict[str, tuple[int, list[WaitingFile]]]:
    """Files waiting for a pass, by root id: (how many, the first ``WAITING_SHOWN``).

    Counted in files, not events: each changed path once, and only if it is a file
    now or a file the journal knows (then its deletion waits); directories and
    temporary files that came and went are not files to sync."""
    pending = agent.debouncer.waiting()
    out: dict[str, tuple[int, list[WaitingFile]]] = {}
    for rid, rt in agent.runtimes.items():
        paths = pending.get(rid, set()) | rt.held_back
        if not paths or rt.missing:
            continue
        count, shown = 0, list[WaitingFile]()
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
                row = agent.ctx.journal.file(rid, rel)
                if row is None or row.state in GONE:
                    continue
                size = None  # gone: its deletion waits
            count += 1
            if len(shown) < WAITING_SHOWN:
                shown.append({"path": rel, "size": size})
        out[rid] = (count, shown)
    return out


def status_of(agent: StatusHost) -> StatusSnapshot:
    ctx = agent.ctx
    journal = ctx.journal
    roots: list[RootStatus] = []
    waits = waiting(agent)
    for rt in agent.runtimes.values():
        counts = journal.count_states(rt.root.id)
        root_waiting, waiting_shown = waits.get(rt.root.id, (0, []))
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
                "answering": agent.held.busy(rt.root.id),
                "pass_due": rt.needs_full_scan or bool(rt.deletions_due),
                "waiting": root_waiting,
                "waiting_sample": waiting_shown,
                "problems": [
                    {"path": rel, "kind": kind, "reason": reason}
                    for rel, (kind, reason) in list(rt.problems.items())[:50]
                ],
            }
        )
    stats = ctx.cache.stats()
    return {
        "state": overall_state(agent),
        "paused": agent.paused,
        "paused_until": agent.paused_until,
        "disk_full": None if agent.disk_full is None else agent.disk_full.message,
        "roots": roots,
        "queue": sum(n for n, _ in waits.values()),
        "progress": agent.progress,
        "health": {
            hub: _with_user(m.status.to_dict(), _hub_user(ctx, hub))
            for hub, m in agent.health.items()
        },
        "exai": None if agent.exai_health is None else agent.exai_health.status.to_dict(),
        "history": agent.compactor.status(),
        "hubs": {name: r.describe() for name, r in ctx.remotes.items()},
        "unavailable": ctx.unavailable,
        "cache": {
            "entries": stats.entries,
            "bytes": stats.size_bytes,
            "limit": stats.limit_bytes,
            "hits": stats.hits,
            "misses": stats.misses,
            "linked": stats.linked,
            "hit_rate": stats.hit_rate,
        },
        "prefetch": agent.prefetch.status(),
        "metrics": {
            **agent.metrics.snapshot(),
            "all_time": agent.metrics_store.all_time(agent.metrics, ALL_TIME, agent.totals_before),
        },
    }


def _with_user(health: HealthData, user: str | None) -> HealthData:
    health["user"] = user
    return health


def _hub_user(ctx: Context, hub: str) -> str | None:
    identity = getattr(getattr(ctx.remotes.get(hub), "session", None), "identity", None)
    return getattr(identity, "email", None) or getattr(identity, "user_id", None)


def overall_state(agent: StatusHost) -> str:
    if agent.paused:
        return "paused"
    if agent.disk_full is not None:
        return "disk_full"
    states = {m.status.state for m in agent.health.values()}
    for rt in agent.runtimes.values():  # a hub that is not open at all
        if rt.root.hub not in agent.ctx.remotes and not rt.root.paused:
            states.add(
                HealthState.SIGNIN_NEEDED if rt.root.hub == "supabase" else HealthState.OFFLINE
            )
    if HealthState.SIGNIN_NEEDED in states:
        return "signin_needed"
    if HealthState.OFFLINE in states:
        return "offline"
    if agent.progress is not None and agent.progress.get("phase") != "done":
        return "syncing"
    if agent.debouncer.queued:
        return "syncing"
    if any(rt.problems for rt in agent.runtimes.values()):
        return "error"
    return "idle"
