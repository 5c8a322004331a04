"""Notifications, only for what needs the user or what they asked for.

Errors that need action (quota, a file that cannot be read, a folder the watcher
cannot cover), a sign-in request, and the EXAI jobs the user started. Errors that
retry by themselves stay silent, and a burst of errors becomes one message ("12
files need attention"), never one per file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from agent.control.payloads import ErrorEvent
from gui.prefs import TrayPrefs
from gui.state import error_key

ACTIONABLE_KINDS = frozenset({"quota", "permanent", "local", "integrity", "degraded"})
COALESCE_MS = 1500
LARGE_SYNC = 500
"""A pass that recorded or deleted at least this many files is told when it ends."""

Show = Callable[[str, str], None]
"""(title, message) → shows it (tray balloon, or the fallback window's banner)."""


class Notifier(QObject):
    shown = Signal(str, str)

    def __init__(self, prefs: TrayPrefs, show: Show, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self._show = show
        self._seen_errors: set[str] = set()
        self._pending: list[ErrorEvent] = []
        self._signin_hubs: set[str] = set()
        self._held_roots: set[str] = set()
        self._last_pass: float | None = None
        """Time of the newest pass seen; None before the first ``activity`` result."""
        self._hubs_down: dict[str, str] | None = None
        """Hubs in use that cannot be reached, with why; None before the first status."""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._flush_errors)

    def close(self) -> None:
        """Forget what is pending; nothing is shown after this."""
        self._timer.stop()
        self._pending.clear()
        self.blockSignals(True)
        self._show = lambda title, message: None

    def _emit(self, title: str, message: str) -> None:
        self._show(title, message)
        self.shown.emit(title, message)

    def on_error(self, item: ErrorEvent) -> None:
        """An ``error`` event: ``{"root", "path"?, "kind", "reason"}``."""
        if item.get("kind") == "auth":
            self.on_signin_needed("auth")
            return
        key = error_key(item)
        if item.get("kind") not in ACTIONABLE_KINDS or key in self._seen_errors:
            return
        self._seen_errors.add(key)
        if self.prefs.notify("notify_errors"):
            self._pending.append(item)
            if not self._timer.isActive():
                self._timer.start()

    def _flush_errors(self) -> None:
        items, self._pending = self._pending, []
        if len(items) == 1:
            item = items[0]
            where = item.get("path") or item.get("root") or "The hub"
            self._emit("HubSync needs you", f"{where}: {item.get('reason', '')}")
        elif items:
            self._emit(
                "HubSync needs you", f"{len(items)} files need attention (see Status → Errors)"
            )

    def on_status(self, status: dict[str, Any]) -> None:
        """A ``status`` event: tells once when a folder's deletions are held, and when a
        hub in use goes offline or comes back."""
        self._hub_changes(status)
        for root in status.get("roots") or []:
            path = str(root.get("path") or "")
            held = int((root.get("counts") or {}).get("held") or 0)
            if not held:
                self._held_roots.discard(path)
            elif path not in self._held_roots:
                self._held_roots.add(path)
                if self.prefs.notify("notify_errors"):
                    self._emit(
                        "Deletions held",
                        f"{held:,} files were deleted from {path} at once; the hub still has "
                        "them. Open the status window to bring them back or delete them there.",
                    )

    def on_activity(self, result: dict[str, Any]) -> None:
        """An ``activity`` result: tells when a large sync finished (once per pass)."""
        passes = [p for p in result.get("passes") or [] if isinstance(p, dict)]
        newest = max((float(p.get("ts") or 0) for p in passes), default=0.0)
        before, self._last_pass = self._last_pass, max(newest, self._last_pass or 0.0)
        if before is None or not self.prefs.notify("notify_done"):
            return  # what happened before the tray came: no news
        for p in passes:
            if float(p.get("ts") or 0) <= before or p.get("kind") != "sync":
                continue
            recorded, deleted = int(p.get("recorded") or 0), int(p.get("deleted") or 0)
            if recorded + deleted < LARGE_SYNC:
                continue
            done = [f"{recorded:,} files synced"] if recorded else []
            done += [f"{deleted:,} deleted"] if deleted else []
            errors = int(p.get("errors") or 0)
            tail = f"; {errors:,} need attention" if errors else ""
            self._emit("Sync finished", f"{Path(str(p.get('root'))).name}: {', '.join(done)}{tail}")

    def _hub_changes(self, status: dict[str, Any]) -> None:
        used = {str(r.get("hub")) for r in status.get("roots") or []}
        down = {
            name: str(h.get("reason") or "it does not answer")
            for name, h in (status.get("health") or {}).items()
            if name in used and isinstance(h, dict) and h.get("state") == "offline"
        }
        down |= {n: str(why) for n, why in (status.get("unavailable") or {}).items() if n in used}
        before, self._hubs_down = self._hubs_down, down
        if before is None or not self.prefs.notify("notify_hub"):
            return  # the first picture: the icon says it, no news to announce
        for name in sorted(down.keys() - before.keys()):
            self._emit(
                "Hub offline",
                f"The {name} hub cannot be reached ({down[name]}). Syncing waits and goes "
                "on by itself when it is back.",
            )
        for name in sorted(before.keys() - down.keys()):
            self._emit("Hub back online", f"The {name} hub is back: syncing goes on.")

    def on_health(self, health: dict[str, Any]) -> None:
        """A ``health`` event: ``{"hub", "state", ...}``; tells once per hub and episode."""
        hub = str(health.get("hub") or "")
        if health.get("state") == "signin_needed":
            self.on_signin_needed(hub)
        else:
            self._signin_hubs.discard(hub)

    def on_signin_needed(self, hub: str = "") -> None:
        if hub in self._signin_hubs:
            return
        self._signin_hubs.add(hub)
        if self.prefs.notify("notify_signin"):
            self._emit(
                "Sign in to HubSync",
                "Your session ended; syncing to the hub waits until you sign in.",
            )

    def on_exai_job(self, job: dict[str, Any]) -> None:
        """An ``exai.job`` event: only a job's end is worth a notification."""
        if not self.prefs.notify("notify_results"):
            return
        source = Path(str(job.get("source") or "")).name
        if job.get("state") == "completed":
            self._emit(
                "EXAI result ready",
                f"{job.get('tool', 'EXAI')} on {source}: {job.get('result_path')}",
            )
        elif job.get("state") == "failed":
            self._emit(
                "EXAI job failed", f"{job.get('tool', 'EXAI')} on {source}: {job.get('error')}"
            )
