"""The tray icon and its menu, or — where no system tray exists — a small window with
the same content that says why it is there."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from gui import fmt
from gui.agent_link import AgentLink
from gui.exai_results import NOT_OPENED
from gui.icon_theme import IconStyle, choose_style, sample_panel
from gui.icons import is_dark_theme, state_icon
from gui.state import AgentState
from gui.widgets import activity_glyph, muted

RECENT_IN_MENU = 10
BADGE_STEPS = 16
MENU_TEXT_PX = 360
"""Longer names are elided in the middle: a long file name must not widen the menu."""


def open_location(location: str) -> bool:
    """Open a folder in the file manager, or a hub URL in the browser; False when
    nothing on the desktop did."""
    if location.startswith(("http://", "https://")):
        return QDesktopServices.openUrl(QUrl(location))
    return QDesktopServices.openUrl(QUrl.fromLocalFile(location))


class TrayMenu(QMenu):
    """Status line; open root/hub; pause/resume; recent activity; actions; quit."""

    not_opened = Signal(str)
    """A place the desktop could not open (no file manager or browser answered)."""

    def __init__(self, state: AgentState, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.link = link
        self.status_line = self.addAction("")
        self.status_line.setEnabled(False)
        self.addSeparator()
        self.open_menu = self.addMenu("Open")
        self.pause_action = self.addAction("Pause syncing")
        self.pause_action.triggered.connect(self._toggle_pause)
        self.recent_section = self.addSection("Recent activity")
        self.recent_actions: list[QAction] = []
        self.recent_end = self.addSeparator()
        self.status_action = self.addAction("Status…")
        self.issues_action = self.addAction("Sync issues…")
        self.hub_action = self.addAction("Browse the hub…")
        self.analytics_action = self.addAction("Analytics…")
        self.hub_action.setToolTip("Every device's files in the hub: find, open, pull")
        self.upload_action = self.addAction("Upload files…")
        self.exai_action = self.addAction("Process with EXAI…")
        self.exai_action.setToolTip("Available once the agent offers EXAI processing")
        self.exai_dialog_available = False
        """Set by whoever connects a dialog to ``exai_action``."""
        self.settings_action = self.addAction("Settings…")
        self.about_action = self.addAction("About HubSync")
        self.addSeparator()
        self.close_action = self.addAction("Close tray (keep syncing)")
        self.quit_action = self.addAction("Quit HubSync")
        self._activity_shown: int | None = None
        self._places: list[tuple[str, str]] | None = None
        self.refresh()

    def refresh(self) -> None:
        s = self.state
        self.status_line.setText(s.summary())
        self.pause_action.setText("Resume syncing" if s.paused else "Pause syncing")
        self.pause_action.setEnabled(s.connected)
        self.upload_action.setEnabled(s.connected)
        self.hub_action.setEnabled(s.connected)
        self.exai_action.setEnabled(s.connected and s.exai_available and self.exai_dialog_available)
        self._refresh_open()
        if self._activity_shown != s.activity_version:
            self._activity_shown = s.activity_version
            self._refresh_recent()

    def _refresh_open(self) -> None:
        places = [(f"Folder: {r.path}", r.path) for r in self.state.roots()] + [
            (f"{h.name.capitalize()} hub: {h.location}", h.location)
            for h in self.state.hubs()
            if h.location
        ]
        if places == self._places:
            return
        self._places = places
        self.open_menu.clear()
        for label, where in places:
            action = self.open_menu.addAction(self.elide(label))
            action.setToolTip(label)
            action.triggered.connect(lambda _=False, p=where: self._open(p))
        self.open_menu.setEnabled(bool(places))

    def _refresh_recent(self) -> None:
        for action in self.recent_actions:
            self.removeAction(action)
            action.deleteLater()
        self.recent_actions = []
        items = self.state.activity[:RECENT_IN_MENU]
        if not items:
            items_actions = [QAction("Nothing yet", self)]
            items_actions[0].setEnabled(False)
        else:
            items_actions = [self._activity_action(item) for item in items]
        for action in items_actions:
            self.insertAction(self.recent_end, action)
        self.recent_actions = items_actions

    def _activity_action(self, item: dict[str, Any]) -> QAction:
        glyph, _ = activity_glyph(str(item.get("kind", "")))
        path = str(item.get("path", ""))
        name = self.elide(Path(path).name or path)
        action = QAction(f"{glyph}  {name}  ·  {fmt.ago(item.get('time'))}", self)
        action.setToolTip(f"{item.get('kind', '')}: {path}")
        folder = str(Path(path).parent)
        action.triggered.connect(lambda _=False: self._open(folder))
        return action

    def _open(self, location: str) -> None:
        if not open_location(location):
            self.not_opened.emit(NOT_OPENED.format(location))

    def elide(self, text: str) -> str:
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, MENU_TEXT_PX)

    def _toggle_pause(self) -> None:
        self.link.fire("resume" if self.state.paused else "pause", {})


class FallbackWindow(QWidget):
    """Stands in for the tray icon where the desktop has no system tray."""

    def __init__(self, state: AgentState, menu: TrayMenu, reason: str) -> None:
        super().__init__()
        self.state = state
        self.menu = menu
        self.setWindowTitle("HubSync")
        self.resize(520, 220)
        self.why = muted(
            f"{reason}, so HubSync shows this window instead of a tray icon. "
            "Closing it leaves the agent running; “Quit HubSync” stops it."
        )
        self.icon = QLabel()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "background: #fff4d6; color: #5c4400; padding: 6px; border-radius: 4px;"
        )
        self.banner.hide()
        head = QHBoxLayout()
        head.addWidget(self.icon)
        head.addWidget(self.summary, 1)
        buttons = QHBoxLayout()
        for action in (
            menu.status_action,
            menu.hub_action,
            menu.upload_action,
            menu.settings_action,
            menu.pause_action,
        ):
            buttons.addWidget(self._button(action))
        more = QPushButton("Menu")
        more.setMenu(menu)
        buttons.addWidget(more)
        buttons.addStretch(1)
        buttons.addWidget(self._button(menu.quit_action))
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.banner)
        layout.addLayout(buttons)
        layout.addStretch(1)
        layout.addWidget(self.why)

    @staticmethod
    def _button(action: QAction) -> QPushButton:
        button = QPushButton(action.text())
        button.clicked.connect(action.trigger)

        def sync() -> None:
            button.setText(action.text())
            button.setEnabled(action.isEnabled())

        action.changed.connect(sync)
        sync()
        return button

    def show_message(self, title: str, message: str) -> None:
        self.banner.setText(f"<b>{html.escape(title)}</b><br>{html.escape(message)}")
        self.banner.show()

    def refresh(self, icon: QIcon) -> None:
        self.icon.setPixmap(icon.pixmap(48, 48))
        self.summary.setText(self.state.summary())

    def closeEvent(self, event: QCloseEvent) -> None:
        super().closeEvent(event)
        self.menu.close_action.trigger()


class Tray(QObject):
    """Owns the icon (or the fallback window) and keeps it in step with the state."""

    open_status = Signal()
    open_upload = Signal()
    open_hub = Signal()
    open_settings = Signal()
    close_tray = Signal()
    quit_all = Signal()

    def __init__(
        self, state: AgentState, link: AgentLink, *, system_tray: bool | None = None
    ) -> None:
        super().__init__()
        self.state = state
        self.menu = TrayMenu(state, link)
        self.menu.status_action.triggered.connect(self.open_status)
        self.menu.upload_action.triggered.connect(self.open_upload)
        self.menu.hub_action.triggered.connect(self.open_hub)
        self.menu.settings_action.triggered.connect(self.open_settings)
        self.menu.close_action.triggered.connect(self.close_tray)
        self.menu.quit_action.triggered.connect(self.quit_all)
        self.menu.not_opened.connect(lambda text: self.show_message("HubSync", text))
        available = QSystemTrayIcon.isSystemTrayAvailable() if system_tray is None else system_tray
        self.icon: QSystemTrayIcon | None = None
        self.window: FallbackWindow | None = None
        self._icon_key: tuple[str, int | None] | None = None
        self._qicon = QIcon()
        self.icon_style = IconStyle(dark=is_dark_theme(), symbolic=False)
        if available:
            self.icon = QSystemTrayIcon()
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._activated)
        else:
            reason = f"No system tray was found on this desktop (Qt platform “{QGuiApplication.platformName()}”)"
            self.window = FallbackWindow(state, self.menu, reason)
        state.changed.connect(self.refresh)
        self.refresh()

    def show(self) -> None:
        if self.icon is not None:
            self.icon.show()
        elif self.window is not None:
            self.window.show()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
        if self.window is not None:
            self.window.hide()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.open_status.emit()

    def show_message(self, title: str, message: str) -> None:
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, message, self._qicon)
        elif self.window is not None:
            self.window.show_message(title, message)

    def current_icon(self) -> QIcon:
        state = self.state.tray_state()
        fraction = self.state.overall_fraction() if state == "syncing" else None
        step = None if fraction is None else round(fraction * BADGE_STEPS)
        key = (state, step)
        if key != self._icon_key:
            self._icon_key = key
            self._qicon = state_icon(
                state,
                dark=self.icon_style.dark,
                symbolic=self.icon_style.symbolic,
                progress=None if step is None else step / BADGE_STEPS,
            )
        return self._qicon

    def choose_icon(self, panel_pref: str, style_pref: str) -> None:
        """Pick the icon for the panel it sits on (sampled once the icon is shown)."""
        panel = sample_panel(self.icon.geometry()) if self.icon is not None else None
        scheme = QGuiApplication.styleHints().colorScheme()
        style = choose_style(panel_pref, style_pref, panel, scheme)
        if style != self.icon_style:
            self.icon_style, self._icon_key = style, None
            self.refresh()

    def refresh(self) -> None:
        self.menu.refresh()
        icon = self.current_icon()
        if self.icon is not None:
            self.icon.setIcon(icon)
            self.icon.setToolTip(f"HubSync — {self.state.summary()}")
        if self.window is not None:
            self.window.refresh(icon)
