"""Notifications, only for what needs the user or what they asked for.

Errors that need action (sign in, quota, a file that cannot be read), a sign-in
request and EXAI results ready. Errors that retry by themselves stay silent, and a
burst of errors becomes one message ("12 files need attention"), never one per file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from gui.prefs import TrayPrefs

ACTIONABLE_KINDS = frozenset({"auth", "quota", "permanent", "local", "integrity"})
COALESCE_MS = 1500

Show = Callable[[str, str], None]
"""(title, message) → shows it (tray balloon, or the fallback window's banner)."""


class Notifier(QObject):
    shown = Signal(str, str)

    def __init__(self, prefs: TrayPrefs, show: Show, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self._show = show
        self._seen_errors: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self._signin_announced = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._flush_errors)

    def _emit(self, title: str, message: str) -> None:
        self._show(title, message)
        self.shown.emit(title, message)

    def on_error(self, item: dict[str, Any]) -> None:
        key = str(item.get("id"))
        if item.get("resolved"):
            self._seen_errors.discard(key)
            return
        if item.get("kind") not in ACTIONABLE_KINDS or key in self._seen_errors:
            return
        self._seen_errors.add(key)
        if item.get("kind") == "auth":
            self.on_signin_needed()
            return
        if self.prefs.notify("notify_errors"):
            self._pending.append(item)
            if not self._timer.isActive():
                self._timer.start()

    def _flush_errors(self) -> None:
        items, self._pending = self._pending, []
        if len(items) == 1:
            item = items[0]
            self._emit("HubSync needs you", f"{item.get('path') or 'The hub'}: {item.get('reason', '')}")
        elif items:
            self._emit("HubSync needs you", f"{len(items)} files need attention (see Status → Errors)")

    def on_health(self, health: dict[str, Any]) -> None:
        if health.get("state") == "signin":
            self.on_signin_needed()
        else:
            self._signin_announced = False

    def on_signin_needed(self) -> None:
        if self._signin_announced:
            return
        self._signin_announced = True
        if self.prefs.notify("notify_signin"):
            self._emit("Sign in to HubSync", "Your session ended; syncing to the hub waits until you sign in.")

    def on_activity(self, item: dict[str, Any]) -> None:
        if item.get("kind") == "processed" and self.prefs.notify("notify_results"):
            self._emit("EXAI result ready", f"{item.get('path', '')}: {item.get('detail') or 'done'}")
