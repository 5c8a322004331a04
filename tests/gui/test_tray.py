"""The tray itself: pause/resume, following the agent across restarts, starting it,
closing the tray vs quitting HubSync, and the fallback window."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.agent_link import default_agent_command
from gui.app import TrayApp
from tests.gui.conftest import ROOT, DemoAgentProcess, run_to_end


def test_pause_and_resume_from_the_menu(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess, short_home: Path
) -> None:
    demo_agent.call("add_root", {"path": str(short_home)})
    qtbot.waitUntil(lambda: bool(connected_tray.state.roots()), timeout=5000)
    menu = connected_tray.tray.menu
    assert menu.pause_action.text() == "Pause syncing"

    menu.pause_action.trigger()
    qtbot.waitUntil(lambda: menu.pause_action.text() == "Resume syncing", timeout=5000)
    assert demo_agent.call("status")["paused"] is True
    assert menu.status_line.text() == "Paused"
    assert connected_tray.tray.window is not None
    assert connected_tray.tray.window.summary.text() == "Paused"
    assert connected_tray.tray._icon_key == ("paused", None)

    menu.pause_action.trigger()
    qtbot.waitUntil(lambda: menu.pause_action.text() == "Pause syncing", timeout=5000)
    assert demo_agent.call("status")["paused"] is False
    assert connected_tray.tray._icon_key == ("idle", None)


def test_a_change_made_elsewhere_shows_up_at_once(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    """Another client (the CLI) pauses: the tray follows from the pushed event, no polling."""
    demo_agent.call("pause")
    qtbot.waitUntil(lambda: connected_tray.tray.menu.status_line.text() == "Paused", timeout=2000)


def test_agent_restarted_under_the_tray_is_followed(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    state = connected_tray.state
    window = connected_tray.tray.window
    assert window is not None
    demo_agent.kill()
    qtbot.waitUntil(lambda: not state.connected, timeout=5000)
    qtbot.waitUntil(lambda: "reconnecting" in window.summary.text(), timeout=2000)
    assert state.tray_state() == "offline"
    assert not connected_tray.tray.menu.pause_action.isEnabled()

    demo_agent.start()
    demo_agent.call("pause")  # the new agent's state differs from the old one's
    started = time.monotonic()
    qtbot.waitUntil(lambda: window.summary.text() == "Paused", timeout=10_000)
    print(
        f"\nreconnected and resynced {time.monotonic() - started:.2f} s after the agent came back"
    )
    assert state.connected
    connected_tray.tray.menu.pause_action.trigger()  # and calls go to the new agent
    qtbot.waitUntil(lambda: demo_agent.call("status")["paused"] is False, timeout=5000)


def test_tray_starts_the_agent_and_closing_the_tray_leaves_it_running(
    qtbot: QtBot, qt_loop: object, paths: Paths, demo_agent: DemoAgentProcess
) -> None:
    demo_agent.stop()  # nobody serves the socket now
    app = TrayApp(paths, agent_command=demo_agent.command())
    for window in app.windows():
        qtbot.addWidget(window)
    app.start()
    try:
        qtbot.waitUntil(lambda: app.state.connected and bool(app.state.status), timeout=15_000)
        spawned = app.link.agent_started_by_us
        assert spawned is not None
        assert os.getsid(spawned.pid) != os.getsid(0), (
            "the agent must not die with the tray's session"
        )
        app.tray.menu.close_action.trigger()  # "Close tray (keep syncing)"
        assert app.finished.is_set()
        run_to_end(qtbot, app.close())
        assert spawned.poll() is None, "closing the tray must not stop the agent"
        assert demo_agent.call("status")["state"] == "idle"
    finally:
        run_to_end(qtbot, app.close())

    # A new tray shows the running agent's state at once, and "Quit HubSync" stops it.
    demo_agent.call("pause")
    second = TrayApp(paths, agent_command=None)
    for window in second.windows():
        qtbot.addWidget(window)
    second.start()
    try:
        qtbot.waitUntil(lambda: second.state.connected and second.state.paused, timeout=10_000)
        second.tray.menu.quit_action.trigger()
        qtbot.waitUntil(second.finished.is_set, timeout=5000)
        spawned.wait(10)
        assert spawned.returncode == 0
    finally:
        run_to_end(qtbot, second.close())
        if spawned.poll() is None:
            spawned.kill()
            spawned.wait(10)


def test_without_a_system_tray_a_window_says_why(qtbot: QtBot, connected_tray: TrayApp) -> None:
    window = connected_tray.tray.window
    assert connected_tray.tray.icon is None and window is not None
    connected_tray.tray.show()
    assert window.isVisible()
    assert "No system tray was found" in window.why.text()
    assert "Closing it leaves the agent running" in window.why.text()
    qtbot.waitUntil(
        lambda: window.summary.text() == "No folder yet: add one to start syncing", timeout=2000
    )


def test_self_test_opens_every_window_and_exits_zero(paths: Paths) -> None:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HUBSYNC_HOME": str(paths.config_dir.parent),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gui.app", "--self-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "self-test ok (8 windows" in done.stdout  # with Sync issues, the Hub and Analytics


def test_the_agent_the_tray_starts_is_this_installations() -> None:
    command = default_agent_command()
    assert command[-1] == "agent"
    done = subprocess.run([*command[:-1], "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("hubsync "), done.stderr
    assert Path(command[0]).parent == Path(sys.executable).parent  # the venv's, not PATH's


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_trays_and_agent_restarts_leave_no_tasks_or_sockets_behind(
    qtbot: QtBot, qt_loop: asyncio.AbstractEventLoop, paths: Paths, demo_agent: DemoAgentProcess
) -> None:
    def cycle() -> None:
        app = TrayApp(paths, agent_command=None)
        for window in app.windows():
            qtbot.addWidget(window)
        app.start()
        qtbot.waitUntil(lambda: app.state.connected and bool(app.state.status), timeout=10_000)
        demo_agent.kill()  # the agent restarts under the tray
        qtbot.waitUntil(lambda: not app.state.connected, timeout=5000)
        demo_agent.start()
        qtbot.waitUntil(lambda: app.state.connected, timeout=10_000)
        run_to_end(qtbot, app.close())
        qtbot.wait(50)

    cycle()  # warm up: Qt and the thread pool open their own descriptors once
    baseline = open_fds()
    for _ in range(5):
        cycle()
    leftover = [t for t in asyncio.all_tasks(qt_loop) if not t.done()]
    assert leftover == [], leftover
    assert open_fds() <= baseline + 2, f"{open_fds()} descriptors open, {baseline} before"


def test_about_box_shows_the_installed_version(qtbot: QtBot, tray_app: TrayApp) -> None:
    from importlib.metadata import version

    tray_app.tray.menu.about_action.trigger()
    box = tray_app.about_box
    assert box is not None and box.isVisible()
    assert f"HubSync {version('hubsync')}" in box.text()
    box.close()
