"""Details people notice: closing keys, home-folder dialogs, elided menu names, one
sentence per problem, and one tray per user."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget
from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.app import TrayApp
from gui.single_instance import SingleInstance, instance_name
from gui.tray import MENU_TEXT_PX
from tests.gui.conftest import ROOT, DemoAgentProcess, run_to_end


def _shown(qtbot: QtBot, window: QWidget) -> None:
    window.show()
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)


@pytest.mark.parametrize(
    ("key", "modifier"),
    [
        (Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier),
    ],
)
def test_escape_and_ctrl_w_close_the_windows(
    qtbot: QtBot, connected_tray: TrayApp, key: Qt.Key, modifier: Qt.KeyboardModifier
) -> None:
    for window in (connected_tray.status_window, connected_tray.drop_window):
        _shown(qtbot, window)
        QTest.keyClick(window, key, modifier)
        qtbot.waitUntil(lambda w=window: not w.isVisible(), timeout=2000)
    settings = connected_tray.settings
    _shown(qtbot, settings)
    QTest.keyClick(settings, key, modifier)
    qtbot.waitUntil(lambda: not settings.isVisible(), timeout=2000)


def test_file_dialogs_open_in_the_home_folder(
    qtbot: QtBot, connected_tray: TrayApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda parent, title, where: asked.append(where) or ""
    )
    monkeypatch.setattr(
        QFileDialog,
        "getOpenFileNames",
        lambda parent, title, where: asked.append(where) or ([], ""),
    )
    connected_tray.status_window._choose_folder()
    connected_tray.settings._add_root()
    connected_tray.drop_window._choose()
    assert asked == [str(Path.home())] * 3


def test_a_long_file_name_does_not_widen_the_tray_menu(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess, short_home: Path
) -> None:
    demo_agent.call("add_root", {"path": str(short_home)})
    qtbot.waitUntil(lambda: bool(connected_tray.state.roots()), timeout=5000)
    (root,) = connected_tray.state.status["roots"]
    name = "quarterly-report-" + "very-long-part-" * 30 + "final.pdf"
    operation = {"ts": time.time(), "kind": "upload", "root_id": root["id"], "relpath": name}
    demo_agent.call(
        "emit",
        {
            "event": "activity",
            "data": {"kind": "sync", "ts": time.time()},
            "operations": [operation],
        },
    )
    run_to_end(qtbot, connected_tray.link.call("activity"))  # the tray asks after a pass
    menu = connected_tray.tray.menu
    qtbot.waitUntil(lambda: any("…" in a.text() for a in menu.recent_actions), timeout=5000)
    (action,) = [a for a in menu.recent_actions if "…" in a.text()]
    assert action.text().endswith("final.pdf  ·  just now")
    name_shown = action.text().split("  ")[1]
    assert menu.fontMetrics().horizontalAdvance(name_shown) <= MENU_TEXT_PX
    assert name in action.toolTip()  # the whole name is still there


def test_the_agent_down_header_says_it_once(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    window = connected_tray.status_window
    window.show()
    demo_agent.kill()
    qtbot.waitUntil(lambda: not connected_tray.state.connected, timeout=5000)
    qtbot.waitUntil(lambda: window.summary.text() == connected_tray.state.connection_note)
    assert window.connection.text() != window.summary.text()
    assert window.summary.text() not in window.connection.text()


def test_a_second_tray_shows_the_first_ones_window_and_exits(
    qtbot: QtBot, tray_app: TrayApp, paths: Paths, short_home: Path
) -> None:
    single = SingleInstance(instance_name(paths), tray_app)
    single.show_requested.connect(tray_app.tray.open_status)
    assert not tray_app.status_window.isVisible()
    env = {**os.environ, "HUBSYNC_HOME": str(short_home), "QT_QPA_PLATFORM": "offscreen"}
    second = subprocess.Popen(
        [sys.executable, "-m", "gui.app", "--no-start-agent"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        qtbot.waitUntil(lambda: second.poll() is not None, timeout=20_000)
        assert second.returncode == 0
        assert second.stdout is not None and "running already" in second.stdout.read()
        qtbot.waitUntil(tray_app.status_window.isVisible, timeout=5000)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)
        single.close()
