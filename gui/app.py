"""``hubsync-tray``: the tray app. A client of the agent's control API that starts the
agent when none runs; closing the tray leaves the agent running, "Quit HubSync" stops it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import qasync
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from agent.control.client import AgentUnavailable
from agent.control.protocol import ControlError
from agent.platform.paths import Paths, resolve_paths
from gui.about import show_about
from gui.agent_link import AgentLink, default_agent_command
from gui.analytics_window import AnalyticsWindow
from gui.drop_window import DropWindow
from gui.exai_dialog import close_exai_dialogs, open_exai_dialog
from gui.hub_window import HubWindow
from gui.icons import state_icon
from gui.issues_window import IssuesWindow
from gui.notify import Notifier
from gui.prefs import TrayPrefs
from gui.settings import SettingsDialog
from gui.single_instance import SingleInstance, ask_running_tray_to_show, instance_name
from gui.state import AgentState
from gui.status_window import StatusWindow
from gui.tray import Tray

log = logging.getLogger("hubsync.gui")


class TrayApp(QObject):
    """Wires the link, the state, the tray and the windows together."""

    def __init__(
        self,
        paths: Paths,
        *,
        agent_command: Sequence[str] | None,
        system_tray: bool | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.prefs = TrayPrefs(paths.config_dir)
        self.state = AgentState(self)
        self.link = AgentLink(paths.control_socket, agent_command=agent_command, parent=self)
        self.tray = Tray(self.state, self.link, system_tray=system_tray)
        self.about_box: QMessageBox | None = None
        self.notifier = Notifier(self.prefs, self.tray.show_message, self)
        self.status_window = StatusWindow(self.state, self.link)
        self.issues_window = IssuesWindow(self.link)
        self.drop_window = DropWindow(self.state, self.link)
        self.hub_window = HubWindow(self.link, paths.cache_dir / "opened")
        self.analytics_window = AnalyticsWindow(self.link)
        self.settings = SettingsDialog(self.state, self.link, self.prefs)
        self.finished = asyncio.Event()
        self._wire()

    def _wire(self) -> None:
        link, state, notifier, tray = self.link, self.state, self.notifier, self.tray

        def connection(up: bool, note: str) -> None:
            state.set_methods(sorted(link.methods))
            state.set_connected(up, note)

        link.connection_changed.connect(connection)
        link.status.connect(state.apply_status)
        link.status.connect(notifier.on_status)
        link.progress.connect(state.apply_progress)
        link.activity.connect(state.apply_activity)
        link.activity.connect(notifier.on_activity)
        link.health.connect(state.apply_health)
        link.health.connect(notifier.on_health)
        link.error.connect(state.apply_error)
        link.error.connect(notifier.on_error)
        link.upload.connect(state.apply_upload)
        link.exai_job.connect(notifier.on_exai_job)
        link.call_failed.connect(
            lambda method, message: tray.show_message(
                "HubSync", f"That did not work ({method}): {message}"
            )
        )
        tray.open_status.connect(lambda: self._raise(self.status_window))
        tray.menu.issues_action.triggered.connect(lambda: self._raise(self.issues_window))
        tray.menu.analytics_action.triggered.connect(lambda: self._raise(self.analytics_window))
        self.status_window.open_analytics.connect(lambda: self._raise(self.analytics_window))
        tray.open_upload.connect(lambda: self._raise(self.drop_window))
        tray.open_hub.connect(lambda: self._raise(self.hub_window))
        self.status_window.open_hub.connect(lambda: self._raise(self.hub_window))
        tray.open_settings.connect(lambda: self._raise(self.settings))
        self.settings.saved.connect(self.choose_icon)
        self.status_window.open_settings.connect(lambda: self._raise(self.settings))
        tray.menu.exai_action.triggered.connect(lambda: open_exai_dialog(None, link))
        tray.menu.exai_dialog_available = True
        tray.menu.about_action.triggered.connect(self._about)
        tray.close_tray.connect(self.finished.set)
        tray.quit_all.connect(lambda: link.spawn(self.quit_all()))

    def _about(self) -> None:
        self.about_box = show_about()  # kept: a non-modal box lives as long as its owner

    def windows(self) -> list[QWidget]:
        windows: list[QWidget] = [
            self.status_window,
            self.issues_window,
            self.hub_window,
            self.analytics_window,
            self.drop_window,
            self.settings,
        ]
        if self.tray.window is not None:
            windows.append(self.tray.window)
        return windows

    @staticmethod
    def _raise(window: QWidget) -> None:
        window.show()
        window.raise_()
        window.activateWindow()

    def start(self) -> None:
        self.tray.show()
        self.choose_icon()
        # the panel is sampled once the host has placed the icon
        QTimer.singleShot(1500, self, self.choose_icon)
        self.link.start()

    def choose_icon(self) -> None:
        self.tray.choose_icon(*self.prefs.icon_choice())

    async def quit_all(self) -> None:
        """Stop the agent, then the tray."""
        try:
            await self.link.call("quit", timeout=5.0)
        except (AgentUnavailable, ControlError) as exc:
            log.info("stopping the agent: %s", exc)
        self.finished.set()

    async def close(self) -> None:
        """Close the tray only; the agent keeps syncing."""
        self.state.close()  # nothing repaints from here on
        self.notifier.close()
        self.tray.hide()
        for window in self.windows():
            window.hide()
        await close_exai_dialogs()
        await self.link.close()


def pyside_refcount_defect() -> bool:
    """True on a PySide6 build that drops a reference to ``None`` on every void call.

    PySide6 6.12.0 on Python 3.11 does (it relies on Python 3.12's immortal singletons):
    the tray would crash with "none_dealloc" after a few thousand calls. Refuse to start.
    """
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 32


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hubsync-tray", description="The HubSync tray app.")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="open and close every window, then exit (packaging smoke test)",
    )
    parser.add_argument(
        "--no-start-agent",
        action="store_true",
        help="never start the agent; wait for one to appear",
    )
    return parser.parse_args(argv)


async def _self_test(app: TrayApp) -> int:
    app.tray.show()
    for window in app.windows():
        window.show()
        await asyncio.sleep(0.05)
        window.close()
    app.tray.menu.popup(app.tray.menu.pos())
    await asyncio.sleep(0.05)
    app.tray.menu.close()
    open_exai_dialog(None, app.link)
    await asyncio.sleep(0.05)
    await app.close()  # closes the EXAI dialog too
    print(
        f"hubsync-tray self-test ok ({len(app.windows()) + 1} windows, "
        f"system tray: {'yes' if app.tray.icon is not None else 'no, fallback window'})"
    )
    return 0


async def _run(app: TrayApp) -> int:
    app.start()
    await app.finished.wait()
    await app.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(qt_app, QApplication)
    qt_app.setApplicationName("HubSync")
    qt_app.setQuitOnLastWindowClosed(False)
    qt_app.setWindowIcon(state_icon("idle"))
    if pyside_refcount_defect():
        print(
            "hubsync-tray: this PySide6 build has a reference-counting defect on this Python "
            "(PySide6 6.12.0 on Python 3.11) and would crash; install PySide6-Essentials<6.12 "
            "or use Python 3.12+.",
            file=sys.stderr,
        )
        return 2
    paths = resolve_paths().ensure()
    name = instance_name(paths)
    if not args.self_test and ask_running_tray_to_show(name):
        print("hubsync-tray is running already: its status window is shown.")
        return 0
    command = None if args.no_start_agent or args.self_test else default_agent_command()
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    try:
        tray = TrayApp(paths, agent_command=command)
        if not args.self_test:
            single = SingleInstance(name, tray)
            single.show_requested.connect(tray.tray.open_status)
        code: int = loop.run_until_complete(_self_test(tray) if args.self_test else _run(tray))
        return code
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
