"""The tray says only what is true: a missing folder warns, no folder is a first run,
a hub that is gone is one offline state, and the figures agree with their lists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot

from gui.app import TrayApp
from tests.gui.conftest import DemoAgentProcess, rows


def _root(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "r1",
        "path": path,
        "hub": "local",
        "paused": False,
        "degraded": None,
        "missing": False,
        "watching": True,
        "counts": {"synced": 12},
        "problems": [],
        "ignore": [],
        **extra,
    }


def push_status(agent: DemoAgentProcess, app: TrayApp, **changes: Any) -> None:
    """The agent's current status with ``changes``, as a pushed ``status`` event."""
    status = {**agent.call("status"), **changes}
    agent.call("emit", {"event": "status", "data": status})


def test_a_missing_folder_warns_instead_of_up_to_date(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    push_status(demo_agent, connected_tray, roots=[_root("/media/usb/Photos", missing=True)])
    state = connected_tray.state
    qtbot.waitUntil(lambda: state.tray_state() == "warning", timeout=5000)
    assert state.summary() == "Folder missing: /media/usb/Photos (is its drive plugged in?)"
    qtbot.waitUntil(lambda: connected_tray.tray._icon_key == ("warning", None), timeout=2000)


def test_held_deletions_are_a_warning_not_an_error(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    held = _root("/home/ada/Photos", counts={"synced": 1, "held": 30}, held=["a.jpg"])
    push_status(demo_agent, connected_tray, roots=[held])
    qtbot.waitUntil(lambda: connected_tray.state.tray_state() == "warning", timeout=5000)
    assert connected_tray.state.summary() == "30 deletions held: choose in the status window"


def test_with_no_folder_the_status_window_is_a_first_run_view(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess, short_home: Path
) -> None:
    window = connected_tray.status_window
    window.show()
    state = connected_tray.state
    assert state.tray_state() != "idle"  # not the green "up to date"
    qtbot.waitUntil(window.first_run.isVisible, timeout=2000)
    assert not window.tabs.isVisible()
    assert window.summary.text() == "No folder yet: add one to start syncing"
    assert window.add_folder_button.isEnabled()
    folder = short_home / "Notes"
    folder.mkdir()
    window.add_folder(str(folder))
    qtbot.waitUntil(window.tabs.isVisible, timeout=5000)
    assert not window.first_run.isVisible()
    assert [r.path for r in state.roots()] == [str(folder)]
    assert window.summary.text() == "Up to date"


def test_a_hub_that_went_away_is_one_offline_state(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    """Not "1 file needs attention" with a raw write error: the hub is offline, said once,
    and the Health tab keeps the time of its last check."""
    checked = time.time() - 60
    window = connected_tray.status_window
    window.show()
    demo_agent.call(
        "emit",
        {
            "event": "health",
            "data": {
                "hub": "local",
                "state": "online",
                "latency": 0.003,
                "last_check": checked,
                "consecutive_failures": 0,
                "reason": None,
            },
        },
    )
    problem = {
        "path": ".",
        "kind": "transient",
        "reason": "cannot write to the hub: No such file or directory",
    }
    why = "the local hub /media/usb/hub went away (was its drive unplugged?)"
    push_status(
        demo_agent,
        connected_tray,
        state="offline",
        roots=[_root("/home/ada/Notes", problems=[problem])],
        health={},
        hubs={},
        unavailable={"local": why, "supabase": "Supabase is not configured"},
    )
    state = connected_tray.state
    qtbot.waitUntil(lambda: state.tray_state() == "offline", timeout=5000)
    assert state.summary() == f"Offline: {why}"
    qtbot.waitUntil(lambda: window.summary.text() == f"Offline: {why}", timeout=2000)
    assert window.tabs.tabText(2) == "Errors"
    assert window.errors.topLevelItemCount() == 0
    hubs = {r.text(0): r for r in rows(window.health.hubs)}
    assert hubs["local"].text(1) == "unavailable"
    assert hubs["local"].text(3) == "1 min ago"  # not "never"


def test_a_pass_without_figures_yet_does_not_say_0_of_0(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    """During a restore the agent is syncing before any pass counted files."""
    window = connected_tray.status_window
    window.show()
    push_status(
        demo_agent, connected_tray, state="syncing", roots=[_root("/home/ada/Notes")], queue=0
    )
    qtbot.waitUntil(lambda: window.summary.text() == "Looking for changes…", timeout=5000)
    assert window.overall.format() != "Nothing to do"
    assert "0 of 0" not in connected_tray.tray.menu.status_line.text()


def test_the_now_row_shows_the_files_own_size_and_the_queue_equals_its_list(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    window = connected_tray.status_window
    window.show()
    waiting = [{"path": f"in/{i}.txt", "size": 1000 + i} for i in range(3)]
    push_status(
        demo_agent,
        connected_tray,
        state="syncing",
        queue=3,
        roots=[_root("/home/ada/Notes", waiting=3, waiting_sample=waiting)],
    )
    demo_agent.call(
        "emit",
        {
            "event": "progress",
            "data": {
                "phase": "syncing",
                "root": "/home/ada/Notes",
                "files_done": 3,
                "files_total": 1330,
                "bytes_done": 4_300_000,
                "bytes_total": 20_100_000,
                "current": "notes/today.md",
                "current_size": 2048,
                "active": [],
                "queue": [],
            },
        },
    )
    qtbot.waitUntil(lambda: window.files_label.text() == "3 of 1,330", timeout=5000)
    (now,) = rows(window.transfers)
    assert (now.text(0), now.text(2)) == ("notes/today.md", "2.0 KB")  # not 4.1 MB / 19.2 MB
    assert window.queue_label.text() == "Queue · 3 files waiting"
    assert [r.text(0) for r in rows(window.queue)] == [
        f"/home/ada/Notes/in/{i}.txt" for i in range(3)
    ]


def test_the_hub_going_offline_and_coming_back_is_told_once_each(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    shown: list[tuple[str, str]] = []
    connected_tray.notifier.shown.connect(lambda title, message: shown.append((title, message)))
    notes = _root("/home/ada/Notes")
    why = "the local hub /media/usb/hub went away (was its drive unplugged?)"
    for _ in range(2):  # the same picture twice: one notification
        push_status(demo_agent, connected_tray, roots=[notes], unavailable={"local": why})
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)
    assert shown[0][0] == "Hub offline" and why in shown[0][1]
    push_status(demo_agent, connected_tray, roots=[notes], unavailable={})
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=5000)
    assert shown[1] == ("Hub back online", "The local hub is back: syncing goes on.")


def test_the_status_window_pauses_for_an_hour_opens_folders_and_settings(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess, short_home: Path
) -> None:
    demo_agent.call("add_root", {"path": str(short_home)})
    window = connected_tray.status_window
    window.show()
    qtbot.waitUntil(window.open_folder_button.isEnabled, timeout=5000)
    assert [a.text() for a in window.open_folder_menu.actions()] == [str(short_home)]
    hour, forever = window.pause_menu.actions()
    assert (hour.text(), forever.text()) == ("Pause for 1 hour", "Pause until I resume")
    hour.trigger()
    qtbot.waitUntil(window.resume_button.isVisible, timeout=5000)
    until = demo_agent.call("status")["paused_until"]
    assert 3500 < until - time.time() <= 3600
    assert window.summary.text() == f"Paused until {time.strftime('%H:%M', time.localtime(until))}"
    assert not window.pause_button.isVisible()
    window.resume_button.click()
    qtbot.waitUntil(window.pause_button.isVisible, timeout=5000)
    assert demo_agent.call("status")["paused"] is False
    window.settings_button.click()
    qtbot.waitUntil(connected_tray.settings.isVisible, timeout=2000)


def test_a_large_sync_finishing_is_told_once(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    shown: list[tuple[str, str]] = []
    connected_tray.notifier.shown.connect(lambda title, message: shown.append((title, message)))
    qtbot.waitUntil(lambda: connected_tray.notifier._last_pass is not None, timeout=5000)

    def finished(recorded: int) -> None:
        summary = {"ts": time.time(), "root": "/home/ada/Notes", "kind": "sync"}
        demo_agent.call(
            "emit",
            {"event": "activity", "data": {**summary, "recorded": recorded, "errors": 0}},
        )

    finished(12)  # a small pass: nothing to tell
    finished(2000)
    qtbot.waitUntil(lambda: bool(shown), timeout=5000)
    qtbot.wait(800)  # the tray re-reads activity after every pass: still one message
    assert shown == [("Sync finished", "Notes: 2,000 files synced")]
