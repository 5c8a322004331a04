"""Status window, errors with "retry now", calm notifications, and responsiveness."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from pytestqt.qtbot import QtBot

from agent.paths import Paths
from gui.app import TrayApp
from tests.gui.conftest import DemoAgentProcess


@pytest.fixture
def busy_agent(paths: Paths, short_home: Path) -> Iterator[DemoAgentProcess]:
    agent = DemoAgentProcess(paths, short_home / "hub", ["--busy", "/home/ada"])
    agent.start()
    yield agent
    agent.close()


@pytest.fixture
def busy_tray(qtbot: QtBot, tray_app: TrayApp, busy_agent: DemoAgentProcess) -> TrayApp:
    tray_app.start()
    qtbot.waitUntil(lambda: tray_app.state.connected and bool(tray_app.state.metrics), timeout=10_000)
    return tray_app


def test_status_window_shows_progress_errors_cache_and_health(
    qtbot: QtBot, busy_tray: TrayApp, busy_agent: DemoAgentProcess
) -> None:
    busy_agent.call("emit", {"event": "progress", "data": {
        "kind": "sync", "files_done": 10, "files_total": 40, "bytes_done": 25 * 2**20,
        "bytes_total": 100 * 2**20, "speed_bps": 5 * 2**20, "eta_seconds": 15,
        "active": [{"path": "/home/ada/Pictures/a.jpg", "direction": "up",
                    "bytes_done": 3 * 2**20, "bytes_total": 4 * 2**20}],
        "queued": 29, "queue": [{"path": "/home/ada/Pictures/b.jpg", "size": 2**20}],
    }})
    window = busy_tray.status_window
    window.show()
    qtbot.waitUntil(lambda: window.files_label.text() == "10 of 40", timeout=5000)
    assert window.bytes_label.text() == "25.0 MB of 100.0 MB"
    assert window.speed_label.text() == "5.0 MB/s"
    assert window.eta_label.text() == "15s"
    assert window.overall.format() == "25%"
    assert window.transfers.topLevelItem(0).text(2) == "3.0 MB / 4.0 MB"
    assert window.queue_label.text() == "Queue · 29 waiting"
    assert window.summary.text() == "Syncing 10 of 40 files · 5.0 MB/s · 15s left"

    assert window.tabs.tabText(2) == "Errors (3)"
    reasons = [window.errors.topLevelItem(i).text(1) for i in range(window.errors.topLevelItemCount())]
    assert "permission denied [local]" in reasons
    assert window.health_labels["latency"].text() == "42 ms"
    assert window.health_labels["user"].text() == "ada@example.com"
    assert window.health_labels["remote"].text() == "https://abcd1234.supabase.co"
    assert window.cache_bar.format() == "412.0 MB of 1.0 GB"
    assert window.cache_labels["hit_rate"].text() == "86%"
    assert window.cache_labels["dedup"].text() == "2.8 GB in 4,211 files"
    roots = {window.roots.topLevelItem(i).text(0): window.roots.topLevelItem(i).text(2)
             for i in range(window.roots.topLevelItemCount())}
    assert "watch limit" in roots["/home/ada/Projects"]
    assert roots["/home/ada/Music"] == "paused by you"
    assert window.activity.topLevelItemCount() == 10


def test_retry_now_clears_the_selected_error(
    qtbot: QtBot, busy_tray: TrayApp, busy_agent: DemoAgentProcess
) -> None:
    window = busy_tray.status_window
    window.show()
    window.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: window.errors.topLevelItemCount() == 3, timeout=5000)
    first = window.errors.topLevelItem(0)
    first.setSelected(True)
    chosen = first.data(0, Qt.ItemDataRole.UserRole)
    qtbot.mouseClick(window.retry_selected, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.errors.topLevelItemCount() == 2, timeout=5000)
    assert chosen not in {e["id"] for e in busy_agent.call("status")["errors"]}
    qtbot.mouseClick(window.retry_all, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.tabs.tabText(2) == "Errors", timeout=5000)
    assert busy_agent.call("status")["errors"] == []
    assert not window.retry_all.isEnabled()


def test_notifications_are_few_and_actionable(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    shown: list[tuple[str, str]] = []
    connected_tray.notifier.shown.connect(lambda title, message: shown.append((title, message)))
    for i in range(25):  # a burst of files that cannot be read
        demo_agent.call("emit", {"event": "error", "data": {
            "id": f"x{i}", "path": f"/home/ada/locked/{i}.txt", "kind": "local",
            "reason": "permission denied", "attempts": 1, "next_retry": None}})
    for i in range(5):  # network hiccups retry by themselves: no notification
        demo_agent.call("emit", {"event": "error", "data": {
            "id": f"t{i}", "path": f"/home/ada/{i}.bin", "kind": "transient",
            "reason": "HTTP 503", "attempts": 1, "next_retry": time.time() + 30}})
    for _ in range(3):
        demo_agent.call("emit", {"event": "health", "data": {"state": "signin", "user": None}})
    demo_agent.call("emit", {"event": "activity", "data": {
        "time": time.time(), "kind": "uploaded", "path": "/home/ada/a.txt"}})
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=5000)
    qtbot.wait(1800)  # longer than the coalescing window: nothing more arrives
    assert sorted(shown) == [
        ("HubSync needs you", "25 files need attention (see Status → Errors)"),
        ("Sign in to HubSync", "Your session ended; syncing to the hub waits until you sign in."),
    ]
    window = connected_tray.tray.window
    assert window is not None and window.banner.isVisible()  # no tray: the window's banner
    assert "25 files need attention" in window.banner.text()
    qtbot.waitUntil(lambda: connected_tray.state.tray_state() == "signin", timeout=2000)


@pytest.fixture
def roomy_agent(paths: Paths, short_home: Path) -> Iterator[DemoAgentProcess]:
    """An agent whose per-client backlog never drops the tray, so every event is delivered."""
    agent = DemoAgentProcess(paths, short_home / "hub", ["--queue-limit", "1000000"])
    agent.start()
    yield agent
    agent.close()


def test_ui_stays_responsive_while_10000_files_sync(
    qtbot: QtBot, tray_app: TrayApp, roomy_agent: DemoAgentProcess
) -> None:
    """Every file's progress and activity event, unthrottled, reaches the tray; a QTimer
    ping every 5 ms measures how late the Qt event loop gets to run it meanwhile."""
    connected_tray, demo_agent = tray_app, roomy_agent
    tray_app.start()
    qtbot.waitUntil(lambda: tray_app.state.connected and bool(tray_app.state.status), timeout=10_000)
    connected_tray.status_window.show()
    connected_tray.drop_window.show()
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def ping() -> None:
        now = clock.nsecsElapsed()
        lateness.append(max(0.0, (now - last[0]) / 1e6 - 5.0))
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(ping)
    timer.start()
    disconnects: list[bool] = []
    connected_tray.link.connection_changed.connect(lambda up, _: disconnects.append(up))
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        flood = pool.submit(demo_agent.call, "flood", {"files": 10_000})
        state = connected_tray.state
        qtbot.waitUntil(lambda: state.progress.get("files_done") == 10_000, timeout=60_000)
        received = time.monotonic() - started
        sent = flood.result(30)
    qtbot.waitUntil(lambda: connected_tray.status_window.files_label.text() == "10,000 of 10,000")
    timer.stop()
    worst = max(lateness)
    p99 = statistics.quantiles(lateness, n=100, method="inclusive")[98]
    print(f"\n{sent['sent']:,} events (progress + activity for 10,000 files) in {received:.2f} s; "
          f"event-loop latency over {len(lateness)} pings: max {worst:.1f} ms, p99 {p99:.1f} ms, "
          f"median {statistics.median(lateness):.1f} ms")
    assert disconnects == [], "the tray fell behind and was dropped by the agent"
    assert worst < 500, f"the UI froze for {worst:.0f} ms"
    assert state.activity[0]["path"] == "photos/2026/IMG_10000.jpg"
    assert state.events_seen >= 10_000


def test_a_tray_dropped_for_lagging_resyncs_to_the_live_state(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    """The agent drops a subscriber 1000 events behind; the tray reconnects and shows the
    agent's current state from the snapshot instead of a stale one."""
    window = connected_tray.status_window
    window.show()
    demo_agent.call("flood", {"files": 10_000})  # 20,000 events in a burst: too many to buffer
    qtbot.waitUntil(lambda: window.files_label.text() == "10,000 of 10,000", timeout=15_000)
    assert connected_tray.state.connected
