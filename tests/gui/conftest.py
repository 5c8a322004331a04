"""Tray tests: offscreen Qt, a qasync loop on pytest-qt's QApplication, a real control
server in a separate process (the demo agent, or the real one), and the tray app."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTreeWidget, QTreeWidgetItem, QWidget
from pytestqt.qtbot import QtBot

from agent.control.client import call_sync
from agent.platform.paths import Paths, resolve_paths
from gui.app import TrayApp, pyside_refcount_defect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _working_pyside(qapp: QApplication) -> None:
    if pyside_refcount_defect():
        pytest.fail(
            "this PySide6 build corrupts refcounts on this Python: install PySide6-Essentials<6.12"
        )


@pytest.fixture(scope="session")
def session_loop(qapp: QApplication) -> qasync.QEventLoop:
    """One qasync loop for the whole session, running whenever Qt processes events.

    Not one per test: a closed loop freed by Python's garbage collector while Qt is
    delivering a timer event to that loop's timer object crashes the process.
    """
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)  # it is "running" only during GUI tests
    return loop


@pytest.fixture
def qt_loop(qapp: QApplication, session_loop: qasync.QEventLoop) -> Iterator[qasync.QEventLoop]:
    """The session's loop as the running asyncio loop (qtbot.waitUntil drives it)."""
    asyncio.events._set_running_loop(session_loop)
    asyncio.set_event_loop(session_loop)
    yield session_loop
    pending = [t for t in asyncio.all_tasks(session_loop) if not t.done()]
    for task in pending:
        task.cancel()
    deadline = time.monotonic() + 5
    while any(not t.done() for t in pending) and time.monotonic() < deadline:
        qapp.processEvents()
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
    assert all(t.done() for t in pending), "tasks left running after the test"


@pytest.fixture
def short_home() -> Iterator[Path]:
    """Unix socket paths are limited to ~100 bytes, so keep HUBSYNC_HOME short."""
    home = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


class DemoAgentProcess:
    """The demo agent (tests/gui/demo_agent.py) in its own process, on ``paths``' socket."""

    def __init__(self, paths: Paths, hub: Path, extra: list[str]) -> None:
        self.paths = paths
        self.hub = hub
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self._pool = ThreadPoolExecutor(1)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.gui.demo_agent",
            "--socket",
            str(self.paths.control_socket),
            "--hub",
            str(self.hub),
            *self.extra,
        ]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"demo agent did not start: {line!r}"

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A call from a second client (runs in a thread: the test thread's loop is Qt's)."""
        future = self._pool.submit(call_sync, method, params, socket_path=self.paths.control_socket)
        return future.result(15)

    def stop(self) -> None:
        """Stop the agent gracefully (SIGTERM)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._pool.shutdown()


@pytest.fixture
def paths(short_home: Path) -> Paths:
    return resolve_paths({"HUBSYNC_HOME": str(short_home)}).ensure()


@pytest.fixture
def demo_agent(paths: Paths, short_home: Path) -> Iterator[DemoAgentProcess]:
    agent = DemoAgentProcess(paths, short_home / "hub", [])
    agent.start()
    yield agent
    agent.close()


def rows(tree: QTreeWidget) -> list[QTreeWidgetItem]:
    """A tree's top-level rows, top to bottom."""
    found = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    return [row for row in found if row is not None]


def drop(target: QWidget, paths: list[Path]) -> None:
    """A real drag-enter and drop of ``paths``, as the window system delivers them."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = target.rect().center()
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, buttons, keys)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    dropped = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, buttons, keys)
    QApplication.sendEvent(target, dropped)


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def run_to_end(qtbot: QtBot, coro: Any, timeout_ms: int = 10_000) -> Any:
    """Drive a coroutine on the Qt-hosted loop from a synchronous test."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout_ms)
    return task.result()


@pytest.fixture
def tray_app(qtbot: QtBot, qt_loop: qasync.QEventLoop, paths: Paths) -> Iterator[TrayApp]:
    """The tray app, on the fallback window (offscreen Qt has no system tray); not connected yet."""
    app = TrayApp(paths, agent_command=None)
    windows = app.windows()
    yield app
    # The app closes first (it hides its windows), then the windows go: left to
    # qtbot.addWidget, a real X server deleted them before the app's own close ran.
    run_to_end(qtbot, app.close())
    for window in windows:
        window.close()
        window.deleteLater()


@pytest.fixture
def connected_tray(qtbot: QtBot, tray_app: TrayApp, demo_agent: DemoAgentProcess) -> TrayApp:
    tray_app.start()
    qtbot.waitUntil(
        lambda: tray_app.state.connected and bool(tray_app.state.status), timeout=10_000
    )
    qtbot.waitUntil(tray_app.tray.menu.pause_action.isEnabled)  # the menu has caught up
    return tray_app
