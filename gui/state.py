"""The tray's picture of the agent: the latest snapshot merged with pushed events.

Events can arrive by the thousand per second while a large tree syncs. Merging one
is a few dict operations; the windows are told at most every ``THROTTLE_MS`` via the
``changed`` signal, so painting never competes with the event stream.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from gui import fmt

THROTTLE_MS = 150
ACTIVITY_KEEP = 200

Json = dict[str, Any]


class AgentState(QObject):
    changed = Signal()
    """Something changed since the last emission (throttled)."""
    activity_added = Signal(dict)
    upload_changed = Signal(str, str)
    """(upload_id, path) of a one-off upload item whose progress or state moved."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connected = False
        self.connection_note = "Connecting to the HubSync agent…"
        self.status: Json = {}
        self.progress: Json = {}
        self.health: Json = {}
        self.metrics: Json = {}
        self.activity: deque[Json] = deque(maxlen=ACTIVITY_KEEP)
        self.errors: dict[str, Json] = {}
        self.uploads: dict[str, dict[str, Json]] = {}
        self.events_seen = 0
        self.activity_version = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(THROTTLE_MS)
        self._timer.timeout.connect(self.changed)

    # -- feeding -------------------------------------------------------------------------

    def _touch(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def set_connected(self, connected: bool, note: str) -> None:
        self.connected = connected
        self.connection_note = note
        self._touch()

    def apply_status(self, status: Json) -> None:
        self.status = status
        if "errors" in status:
            self.errors = {str(e.get("id")): e for e in status.get("errors") or []}
        self._touch()

    def apply_progress(self, data: Json) -> None:
        self.events_seen += 1
        if data.get("kind") == "upload":
            upload_id, path = str(data.get("upload_id")), str(data.get("path"))
            items = self.uploads.setdefault(upload_id, {})
            items[path] = {**items.get(path, {}), **data}
            self.upload_changed.emit(upload_id, path)
        else:
            self.progress = data
        self._touch()

    def apply_health(self, health: Json) -> None:
        self.health = health
        self._touch()

    def apply_metrics(self, metrics: Json) -> None:
        self.metrics = metrics
        self._touch()

    def apply_activity(self, items: list[Json]) -> None:
        """A snapshot, newest first (as the ``activity`` method returns it)."""
        self.activity.clear()
        self.activity.extend(items)
        self.activity_version += 1
        self._touch()

    def add_activity(self, item: Json) -> None:
        self.activity.appendleft(item)
        self.activity_version += 1
        self.activity_added.emit(item)
        self._touch()

    def apply_error(self, item: Json) -> None:
        key = str(item.get("id"))
        if item.get("resolved"):
            self.errors.pop(key, None)
        else:
            self.errors[key] = item
        self._touch()

    def add_upload(self, upload_id: str, accepted: list[Json]) -> None:
        items = self.uploads.setdefault(upload_id, {})
        for entry in accepted:
            path = str(entry.get("path"))
            items.setdefault(path, {"state": "queued", "bytes_done": 0, **entry})
        self._touch()

    # -- reading -------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return bool(self.status.get("paused"))

    @property
    def exai_available(self) -> bool:
        return "exai" in (self.status.get("features") or [])

    def tray_state(self) -> str:
        """One of gui.icons.STATES."""
        if not self.connected:
            return "offline"
        if self.health.get("state") == "signin" or self.status.get("state") == "signin":
            return "signin"
        if self.paused:
            return "paused"
        if self.health.get("state") == "offline":
            return "offline"
        state = str(self.status.get("state") or "idle")
        if state == "syncing" or self._busy():
            return "syncing"
        if self.errors or state == "error":
            return "error"
        return state if state in ("idle", "offline") else "idle"

    def _busy(self) -> bool:
        p = self.progress
        return bool(p.get("active")) or int(p.get("files_done") or 0) < int(p.get("files_total") or 0)

    def overall_fraction(self) -> float | None:
        total = int(self.progress.get("bytes_total") or 0)
        if total <= 0:
            return None
        return min(1.0, int(self.progress.get("bytes_done") or 0) / total)

    def summary(self) -> str:
        """The one-line status used for the tooltip and the first menu line."""
        if not self.connected:
            return self.connection_note
        state = self.tray_state()
        if state == "signin":
            return "Sign-in needed: syncing to the hub is on hold"
        if state == "paused":
            return "Paused"
        if state == "offline":
            reason = self.health.get("message") or "the hub cannot be reached"
            return f"Offline: {reason}"
        if state == "syncing":
            p = self.progress
            done, total = int(p.get("files_done") or 0), int(p.get("files_total") or 0)
            eta = p.get("eta_seconds")
            line = f"Syncing {fmt.count(done)} of {fmt.count(total)} files"
            if p.get("speed_bps"):
                line += f" · {fmt.speed(p.get('speed_bps'))}"
            if eta is not None:
                line += f" · {fmt.duration(eta)} left"
            return line
        if state == "error":
            n = len(self.errors)
            return f"{n} file{'s' if n != 1 else ''} need{'s' if n == 1 else ''} attention"
        last = self.status.get("last_sync")
        return f"Up to date · last sync {fmt.ago(last)}" if last else "Up to date"
