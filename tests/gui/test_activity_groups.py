"""The Activity list folds a burst of downloads into one row and keeps each file's actions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.activity_list import bursts
from gui.app import TrayApp
from tests.gui.conftest import DemoAgentProcess, rows


@pytest.fixture
def busy_agent(paths: Paths, short_home: Path) -> Iterator[DemoAgentProcess]:
    agent = DemoAgentProcess(paths, short_home / "hub", ["--busy", "/home/ada"])
    agent.start()
    yield agent
    agent.close()


def test_a_burst_of_uploads_is_one_row_that_opens_to_its_files(
    qtbot: QtBot, tray_app: TrayApp, busy_agent: DemoAgentProcess
) -> None:
    tray_app.start()
    qtbot.waitUntil(lambda: bool(tray_app.state.activity), timeout=10_000)
    window = tray_app.status_window
    window.show()
    window.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: window.activity.topLevelItemCount() == 10, timeout=5000)
    roots = {r["path"]: r["id"] for r in busy_agent.call("status")["roots"]}
    now = time.time()
    burst = [
        {
            "ts": now - i * 0.05,
            "kind": "download",
            "root_id": roots["/home/ada/Pictures"],
            "relpath": f"trip/IMG_{i:04}.jpg",
            "sha256": "",
            "bytes": 1,
            "detail": None,
        }
        for i in range(600)
    ]
    busy_agent.call(
        "emit", {"event": "activity", "data": {"ts": now, "kind": "sync"}, "operations": burst}
    )
    qtbot.waitUntil(lambda: window.activity.topLevelItemCount() == 11, timeout=5000)
    group = rows(window.activity)[0]
    assert group.text(1) == "600 files downloaded"
    assert group.childCount() == 600 and not group.isExpanded()
    child = group.child(0)
    assert child.text(1) == "Pictures/trip/IMG_0000.jpg"  # relative to its mirrored folder
    # the burst's row itself has no file actions; each of its files has them all
    assert window._full_path(group) == ""
    menu = window.activity_actions(child)
    assert [a.text() for a in menu.actions()] == [
        "Open",
        "Show in folder",
        "Copy path",
        "Versions…",
        "Copy link",
        "Process with EXAI…",
    ]
    {a.text(): a for a in menu.actions()}["Copy path"].trigger()
    assert QGuiApplication.clipboard().text() == "/home/ada/Pictures/trip/IMG_0000.jpg"
    # an opened group stays open when the list is refreshed
    group.setExpanded(True)
    busy_agent.call("emit", {"event": "activity", "data": {"ts": now, "kind": "sync"}})
    qtbot.wait(300)
    assert rows(window.activity)[0].isExpanded()


def test_bursts_split_on_kind_and_on_a_pause_between_operations() -> None:
    ops = [
        {"kind": "uploaded", "time": 100.0},
        {"kind": "uploaded", "time": 90.0},
        {"kind": "deleted", "time": 89.0},
        {"kind": "uploaded", "time": 88.0},
        {"kind": "uploaded", "time": 10.0},
    ]
    assert [len(run) for run in bursts(ops, gap=60.0)] == [2, 1, 1, 1]
