"""The tray's picture of the agent: the latest snapshot merged with pushed events.

Payloads are the agent's, as documented in docs/control-api.md; this module is the
one place that reads them, so the windows only see a few normalised views. Events
can arrive by the thousand per second; merging one is a few dict operations, and
the windows are told at most every ``THROTTLE_MS`` via ``changed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from agent.control.payloads import (
    ActivityAnswer,
    ErrorEvent,
    HealthData,
    HealthEvent,
    ProgressEvent,
    RootStatus,
    StatusSnapshot,
    UploadEvent,
)
from gui import fmt

THROTTLE_MS = 150
ACTIVITY_KEEP = 1000
SPEED_SMOOTHING = 0.3
"""Weight of the newest sample in the exponentially smoothed transfer speed."""

Json = dict[str, Any]

OPERATION_KINDS = {
    "upload": "uploaded",
    "delete": "deleted",
    "restore": "restored",
    "download": "downloaded",
    "process": "processed",
}


@dataclass(frozen=True)
class RootView:
    path: str
    state: str
    """ok, paused, degraded, missing or held."""
    reason: str
    files: int
    paused: bool
    held: int = 0
    """Deletions held for the user to apply or undo."""
    held_sample: tuple[str, ...] = ()
    answering: bool = False


@dataclass(frozen=True)
class HubView:
    name: str
    location: str
    state: str
    latency_ms: float | None
    last_check: float | None
    reason: str
    user: str
    """Who is signed in to this hub, when the agent says."""


def error_key(item: ErrorEvent) -> str:
    return f"{item.get('root', '')}|{item.get('path', '')}"


class AgentState(QObject):
    changed = Signal()
    """Something changed since the last emission (throttled)."""
    upload_changed = Signal(str)
    """Path of a one-off upload item whose progress or state moved."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connected = False
        self.connection_note = "Connecting to the HubSync agent…"
        self.methods: frozenset[str] = frozenset()
        self.status: StatusSnapshot | None = None
        """The latest snapshot; None until the agent sent one."""
        self.progress: ProgressEvent | None = None
        self.speed_bps: float | None = None
        self.health: dict[str, HealthData] = {}
        self._last_checks: dict[str, float] = {}
        """The latest check of each hub, kept when the agent lets go of a hub."""
        self.activity: list[Json] = []
        self.activity_version = 0
        self.errors: dict[str, ErrorEvent] = {}
        self.uploads: dict[str, UploadEvent] = {}
        self.events_seen = 0
        self._last_sample: tuple[float, str, int] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(THROTTLE_MS)
        self._timer.timeout.connect(self.changed)

    def close(self) -> None:
        """No more notifications: the windows are going away."""
        self._timer.stop()
        self.blockSignals(True)

    # -- feeding -------------------------------------------------------------------------

    def _touch(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def set_connected(self, connected: bool, note: str) -> None:
        self.connected = connected
        self.connection_note = note
        self._touch()

    def set_methods(self, methods: list[str]) -> None:
        self.methods = frozenset(methods)

    def apply_status(self, status: StatusSnapshot) -> None:
        self.status = status
        self.health = {
            str(k): v for k, v in (status.get("health") or {}).items() if isinstance(v, dict)
        }
        self._remember_checks()
        self.errors = {}
        for root in status.get("roots") or []:
            for problem in root.get("problems") or []:
                item: ErrorEvent = {
                    "root": root.get("path"),
                    "path": problem.get("path"),
                    "kind": problem.get("kind"),
                    "reason": problem.get("reason"),
                }
                self.errors[error_key(item)] = item
        progress = status.get("progress")
        if isinstance(progress, dict):
            self.apply_progress(progress)
        elif self.progress is not None and self.progress.get("phase") != "done":
            self.progress = {**self.progress, "phase": "done"}
        self._touch()

    def _roots(self) -> list[RootStatus]:
        return (self.status.get("roots") or []) if self.status else []

    def apply_progress(self, data: ProgressEvent) -> None:
        self.events_seen += 1
        self._sample_speed(data)
        self.progress = data
        self._touch()

    def _sample_speed(self, data: ProgressEvent) -> None:
        now = time.monotonic()
        key = f"{data.get('root')}|{data.get('phase')}"
        done = int(data.get("bytes_done") or 0)
        last = self._last_sample
        if last is None or last[1] != key or done < last[2]:
            self._last_sample = (now, key, done)  # a new pass: measure afresh
            self.speed_bps = None
            return
        if now - last[0] < 0.05:
            return  # too close to the last sample to measure a rate
        self._last_sample = (now, key, done)
        rate = (done - last[2]) / (now - last[0])
        self.speed_bps = (
            rate
            if self.speed_bps is None
            else (SPEED_SMOOTHING * rate + (1 - SPEED_SMOOTHING) * self.speed_bps)
        )

    def apply_health(self, data: HealthEvent) -> None:
        hub = str(data.get("hub") or "local")
        self.health[hub] = {
            "state": data.get("state"),
            "latency": data.get("latency"),
            "last_check": data.get("last_check"),
            "consecutive_failures": data.get("consecutive_failures"),
            "reason": data.get("reason"),
        }
        self._remember_checks()
        self._touch()

    def _remember_checks(self) -> None:
        for name, h in self.health.items():
            last = h.get("last_check")
            if last:
                self._last_checks[name] = float(last)

    def apply_activity(self, result: ActivityAnswer) -> None:
        """The ``activity`` method's result: recent hub operations, newest first."""
        roots = {r.get("id"): str(r.get("path")) for r in self._roots()}
        items = []
        for op in (result.get("operations") or [])[:ACTIVITY_KEEP]:
            root = roots.get(str(op.get("root_id")), "")
            rel = str(op.get("relpath") or "")
            items.append(
                {
                    "time": op.get("ts"),
                    "kind": OPERATION_KINDS.get(str(op.get("kind")), str(op.get("kind"))),
                    "path": str(Path(root) / rel) if root else rel,
                    "shown": str(Path(Path(root).name) / rel) if root else rel,
                    "detail": op.get("detail"),
                }
            )
        self.activity = items
        self.activity_version += 1
        self._touch()

    def apply_error(self, item: ErrorEvent) -> None:
        """A file that failed (folder-level problems arrive with the next status)."""
        if item.get("kind") != "degraded" and item.get("path"):
            self.errors[error_key(item)] = item
            self._touch()

    def apply_upload(self, data: UploadEvent) -> None:
        path = str(data.get("path"))
        merged = self.uploads.get(path, data).copy()
        merged.update(data)
        self.uploads[path] = merged
        self.upload_changed.emit(path)
        self._touch()

    # -- reading -------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return bool(self.status and self.status.get("paused"))

    @property
    def exai_available(self) -> bool:
        return "exai.process" in self.methods

    def busy(self) -> bool:
        return self.progress is not None and self.progress.get("phase") != "done"

    def first_run(self) -> bool:
        """Connected, and no folder is mirrored yet: the windows say how to start."""
        return self.connected and self.status is not None and not self.status.get("roots")

    def hubs_down(self) -> set[str]:
        """Hubs in use that cannot be reached now (offline, or gone away)."""
        down = {n for n, h in self.health.items() if h.get("state") == "offline"}
        down |= set((self.status.get("unavailable") or {}) if self.status else {})
        used = {str(r.get("hub")) for r in self._roots()}
        return down & used

    def file_errors(self) -> list[ErrorEvent]:
        """The errors worth a row: a write that failed because the folder's hub is down is
        the hub's state (shown once, as offline), not a problem of that file."""
        down = self.hubs_down()
        if not down:
            return list(self.errors.values())
        hub_of = {str(r.get("path")): str(r.get("hub")) for r in self._roots()}
        return [
            e
            for e in self.errors.values()
            if not (e.get("kind") == "transient" and hub_of.get(str(e.get("root"))) in down)
        ]

    def waiting_files(self) -> int:
        """Files waiting for a pass (the agent counts files, not events)."""
        return int((self.status.get("queue") or 0) if self.status else 0)

    def waiting_sample(self) -> list[tuple[str, int | None]]:
        """Some of the waiting files: (full path, size or None when its deletion waits)."""
        out = []
        for r in self._roots():
            for w in r.get("waiting_sample") or []:
                size = w.get("size")
                out.append((str(Path(str(r.get("path"))) / str(w.get("path"))), size))
        return out

    def missing_roots(self) -> list[RootView]:
        return [r for r in self.roots() if r.state == "missing"]

    def tray_state(self) -> str:
        """One of gui.icons.STATES."""
        if not self.connected:
            return "offline"
        states = {str(h.get("state")) for h in self.health.values()}
        overall = str((self.status.get("state") if self.status else None) or "idle")
        if overall == "signin_needed" or "signin_needed" in states:
            return "signin"
        if self.paused:
            return "paused"
        if overall == "offline" or self.hubs_down():
            return "offline"
        if self.first_run():
            return "paused"  # nothing is synced yet: not the green "up to date"
        if overall == "disk_full":
            return "error"  # nothing syncs until the user frees space
        if overall == "syncing" or self.busy():
            return "syncing"
        if self.file_errors():
            return "error"  # needs the user's attention
        if self.held_roots() or self.missing_roots():
            return "warning"  # nothing failed: HubSync waits for the user or the drive
        return "idle"

    def overall_fraction(self) -> float | None:
        p = self.progress
        total = int(p.get("bytes_total") or 0) if p else 0
        if p is None or total <= 0 or not self.busy():
            return None
        return min(1.0, int(p.get("bytes_done") or 0) / total)

    def eta_seconds(self) -> float | None:
        p = self.progress
        if p is None or not self.busy() or not self.speed_bps:
            return None
        left = int(p.get("bytes_total") or 0) - int(p.get("bytes_done") or 0)
        if left <= 0:
            return None
        return left / self.speed_bps

    def roots(self) -> list[RootView]:
        views = []
        for r in self._roots():
            if r.get("missing"):
                state, reason = "missing", "the folder is gone (unplugged or moved); waiting for it"
            elif r.get("paused"):
                state, reason = "paused", "paused by you"
            elif held := int((r.get("counts") or {}).get("held") or 0):
                state, reason = "held", f"{fmt.count(held)} deletions held for you to choose"
            elif r.get("degraded"):
                state, reason = "degraded", str(r["degraded"])
            else:
                state, reason = "ok", ""
            counts = r.get("counts") or {}
            views.append(
                RootView(
                    str(r.get("path")),
                    state,
                    reason,
                    sum(int(v) for v in counts.values()),
                    bool(r.get("paused")),
                    int(counts.get("held") or 0),
                    tuple(str(p) for p in r.get("held") or ()),
                    bool(r.get("answering")),
                )
            )
        return views

    def held_roots(self) -> list[RootView]:
        """Folders with deletions held for the user to apply or undo."""
        return [r for r in self.roots() if r.held]

    def hubs(self) -> list[HubView]:
        """Every hub the agent knows: usable ones with their health, then unavailable ones."""
        views = []
        hubs = (self.status.get("hubs") or {}) if self.status else {}
        unavailable = (self.status.get("unavailable") or {}) if self.status else {}
        for name, location in hubs.items():
            h = self.health.get(name)
            latency = h.get("latency") if h else None
            views.append(
                HubView(
                    name,
                    str(location),
                    str((h.get("state") if h else None) or "unknown"),
                    None if latency is None else float(latency) * 1000,
                    (h.get("last_check") if h else None) or self._last_checks.get(name),
                    str((h.get("reason") if h else None) or ""),
                    str((h.get("user") if h else None) or ""),
                )
            )
        for name, why in unavailable.items():
            last = self._last_checks.get(name)
            views.append(HubView(name, "", "unavailable", None, last, str(why), ""))
        return views

    def summary(self) -> str:
        """The one-line status used for the tooltip and the first menu line."""
        if not self.connected:
            return self.connection_note
        state = self.tray_state()
        if state == "signin":
            return "Sign-in needed: syncing to the hub is on hold"
        if state == "paused" and self.paused:
            until = self.status.get("paused_until") if self.status else None
            return f"Paused until {fmt.clock(until)[:5]}" if until else "Paused"
        if self.first_run():
            return "No folder yet: add one to start syncing"
        if state == "offline":
            down = self.hubs_down()
            reasons = [h.reason for h in self.hubs() if h.name in down and h.reason]
            return f"Offline: {reasons[0] if reasons else 'the hub cannot be reached'}"
        if state == "syncing":
            p = self.progress
            if p is None or not self.busy() or not p.get("files_total"):
                waiting = self.waiting_files()
                return (
                    f"Syncing · {fmt.count(waiting)} file{'s' if waiting != 1 else ''} waiting"
                    if waiting
                    else "Looking for changes…"
                )
            line = f"Syncing {fmt.count(p.get('files_done'))} of {fmt.count(p.get('files_total'))} files"
            if self.speed_bps:
                line += f" · {fmt.speed(self.speed_bps)}"
            eta = self.eta_seconds()
            if eta is not None:
                line += f" · {fmt.duration(eta)} left"
            return line
        held = self.held_roots()
        if held:
            n = sum(r.held for r in held)
            return f"{fmt.count(n)} deletions held: choose in the status window"
        missing = self.missing_roots()
        if missing:
            return (
                f"Folder missing: {missing[0].path} (is its drive plugged in?)"
                if len(missing) == 1
                else f"{len(missing)} folders are missing (is their drive plugged in?)"
            )
        if state in ("error", "warning"):
            n = len(self.file_errors())
            return f"{n} file{'s' if n != 1 else ''} need{'s' if n == 1 else ''} attention"
        return "Up to date"
