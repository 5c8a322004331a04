"""Render the tray's windows with realistic data to ``docs/screenshots/*.png``.

A demo agent (the tests' stand-in, on the real control server) serves a mid-sync
picture; the tray app connects to it exactly as it would to the real agent.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.make_screenshots

With ``--tray-host`` under X11 with a system tray it shoots the real tray icon and its
menu (``tray-desktop.png``); on Debian (apt: xvfb, trayer, libxcb-icccm4,
libxcb-keysyms1, libxcb-cursor0):

    Xvfb :99 -screen 0 1024x640x24 &
    DISPLAY=:99 trayer --edge top --align right --widthtype request --height 30 \
        --tint 0xdfe3e8 --transparent true --alpha 0 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python -m tests.gui.make_screenshots \
        --tray-host --out /tmp/shots
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import qasync
from PySide6.QtCore import QPoint
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from agent.platform.paths import resolve_paths
from gui.app import TrayApp
from gui.icons import STATES, render

ROOT = Path(__file__).resolve().parents[2]
HOME = Path("/home/ada")


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo never reached the expected state")
        await asyncio.sleep(0.05)


def save(widget: QWidget | QPixmap, out: Path, name: str) -> None:
    pixmap = widget if isinstance(widget, QPixmap) else widget.grab()
    path = out / f"{name}.png"
    pixmap.save(str(path), "PNG", 9)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"{shown}  {pixmap.width()}x{pixmap.height()}  {path.stat().st_size // 1024} KB")


def icon_sheet() -> QPixmap:
    cell, pad = 72, 8
    sheet = QPixmap(len(STATES) * cell + pad, 2 * cell + pad)
    painter = QPainter(sheet)
    for row, (dark, background) in enumerate(((False, "#f3f4f6"), (True, "#202225"))):
        painter.fillRect(
            0,
            row * cell + (pad if row else 0) // 2,
            sheet.width(),
            cell + pad // 2,
            QColor(background),
        )
        for column, state in enumerate(STATES):
            progress = 0.62 if state == "syncing" else None
            painter.drawPixmap(
                pad + column * cell,
                pad // 2 + row * cell,
                render(state, 64, dark=dark, progress=progress),
            )
    painter.end()
    return sheet


async def shoot(app: TrayApp, out: Path, uploads: list[Path], tray_host: bool) -> None:
    try:
        await _shoot(app, out, uploads, tray_host)
    finally:
        await app.close()


async def _shoot(app: TrayApp, out: Path, uploads: list[Path], tray_host: bool) -> None:
    app.start()
    await until(lambda: app.state.connected and bool(app.state.activity))
    await asyncio.sleep(0.4)  # one throttled repaint

    menu = app.tray.menu
    menu.refresh()
    menu.popup(QPoint(40, 40))
    await asyncio.sleep(0.3)
    save(menu, out, "tray-menu")
    menu.close()

    status = app.status_window
    status.resize(820, 540)
    status.show()
    progress = dict(app.state.progress)
    for _ in range(4):  # a few live updates, so the tray measures speed and time left
        progress["bytes_done"] += 4_700_000
        progress["files_done"] += 1
        await app.link.call("emit", {"event": "progress", "data": progress})
        await asyncio.sleep(0.4)
    for index, name in enumerate(
        ("status-transfers", "status-activity", "status-errors", "status-health")
    ):
        status.tabs.setCurrentIndex(index)
        await asyncio.sleep(0.3)
        save(status, out, name)
    # The Activity list's right-click menu, drawn where it opens on the second row.
    status.tabs.setCurrentIndex(1)
    await asyncio.sleep(0.2)
    row = status.activity.topLevelItem(1)
    assert row is not None
    status.activity.setCurrentItem(row)
    spot = status.activity.visualItemRect(row).center()
    actions = status.activity_actions(row)
    actions.popup(status.activity.viewport().mapToGlobal(spot))
    await asyncio.sleep(0.3)
    shot = status.grab()
    painter = QPainter(shot)
    painter.drawPixmap(status.activity.viewport().mapTo(status, spot), actions.grab())
    painter.end()
    actions.close()
    save(shot, out, "status-activity-menu")
    # Held deletions: the banner with both choices (as after an ``rm -rf`` of 1,204 photos).
    held = dict(app.state.status)
    roots = [dict(r) for r in held["roots"]]
    photos = [f"Camera/2026-11/IMG_{n:04}.jpg" for n in range(3100, 3110)]
    roots[0] = {**roots[0], "counts": {**roots[0]["counts"], "held": 1204}, "held": photos}
    await app.link.call("emit", {"event": "status", "data": {**held, "roots": roots}})
    status.tabs.setCurrentIndex(3)
    await until(status.held.isVisible)
    await asyncio.sleep(0.3)
    save(status, out, "status-held")
    # First run: connected, no folder yet.
    first = {**held, "roots": [], "queue": 0, "progress": None, "state": "idle"}
    await app.link.call("emit", {"event": "status", "data": first})
    await until(status.first_run.isVisible)
    await asyncio.sleep(0.3)
    save(status, out, "first-run")
    await app.link.call("emit", {"event": "status", "data": held})
    await until(lambda: not status.first_run.isVisible())
    status.close()

    drop = app.drop_window
    drop.resize(640, 400)
    drop.show()
    drop.upload(uploads)
    await until(lambda: bool(drop.copy_buttons()))
    drop.copy_buttons()[0].click()
    await asyncio.sleep(0.2)
    save(drop, out, "drop-window")
    drop.close()

    settings = app.settings
    settings.show()
    await until(lambda: bool(settings.supabase_url.text()))
    settings.roots.setCurrentRow(2)
    for index, name in (
        (0, "settings-folders"),
        (1, "settings-account"),
        (3, "settings-limits"),
        (4, "settings-general"),
    ):
        settings.tabs.setCurrentIndex(index)
        await asyncio.sleep(0.2)
        save(settings, out, name)
    settings.close()

    if app.tray.window is not None:
        app.tray.window.show()
        app.tray.window.show_message(
            "HubSync needs you", "3 files need attention (see Status → Errors)"
        )
        await asyncio.sleep(0.3)
        save(app.tray.window, out, "fallback-window")
        app.tray.window.hide()
    elif tray_host and app.tray.icon is not None:
        # The icon sits in the tray host's panel; open its menu under it, as a click would.
        geometry = app.tray.icon.geometry()
        screen = QGuiApplication.primaryScreen()
        menu.refresh()
        menu.popup(QPoint(geometry.right() - menu.sizeHint().width(), geometry.bottom() + 4))
        await asyncio.sleep(0.6)
        width = min(screen.size().width(), 520)
        shot = screen.grabWindow(
            0, screen.size().width() - width, 0, width, menu.sizeHint().height() + 60
        )
        save(shot, out, "tray-desktop")
        menu.close()
    await shoot_hub_window(app, out)  # last: it takes long enough to stale the speed
    save(icon_sheet(), out, "icons")


async def shoot_hub_window(app: TrayApp, out: Path) -> None:
    """Three devices; a folder open, a file chosen with its versions, a pull under way."""
    hub = app.hub_window
    hub.resize(1000, 580)
    hub.show()
    await until(lambda: hub.tree.topLevelItemCount() == 3)
    hub.tree.folder_rows()[0].setExpanded(True)
    await until(lambda: len(hub.tree.file_rows()) == 4)
    report = next(r for r in hub.tree.file_rows() if "Quarterly" in r.text(0))
    hub.tree.setCurrentItem(report)
    await until(lambda: hub.versions.topLevelItemCount() > 0)
    hub.pull_into(HOME / "Downloads" / "Documents")
    await until(lambda: hub.download.bar.value() > 400)
    save(hub, out, "hub-window")
    hub.download.cancel()
    await until(lambda: not hub.download.busy)
    hub.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--tray-host", action="store_true", help="a tray host runs: shoot the desktop"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="hs-shot-", dir="/tmp"))
    paths = resolve_paths({"HUBSYNC_HOME": str(base)}).ensure()
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gui.demo_agent",
            "--socket",
            str(paths.control_socket),
            "--hub",
            str(base / "hub"),
            "--busy",
            str(HOME),
            "--chunk-delay",
            "0.05",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "ready"
        files = base / "Desktop"
        files.mkdir()
        (files / "Quarterly report.pdf").write_bytes(os.urandom(380_000))
        (files / "site-recording.mov").write_bytes(os.urandom(14_000_000))
        (files / "broken-link.txt").symlink_to(files / "moved-away.txt")
        qt = QApplication.instance() or QApplication(sys.argv[:1])
        assert isinstance(qt, QApplication)
        qt.setApplicationName("HubSync")
        qt.setStyle("Fusion")
        qt.setQuitOnLastWindowClosed(False)
        loop = qasync.QEventLoop(qt)
        asyncio.set_event_loop(loop)
        tray = TrayApp(paths, agent_command=None)
        uploads = [
            files / "Quarterly report.pdf",
            files / "site-recording.mov",
            files / "broken-link.txt",
        ]
        with loop:
            loop.run_until_complete(shoot(tray, args.out, uploads, args.tray_host))
    finally:
        agent.terminate()
        agent.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
