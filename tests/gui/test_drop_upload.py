"""Drag-and-drop upload: drop → per-item progress → done → link on the clipboard."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from gui.app import TrayApp
from gui.drop_window import COL_PROGRESS
from gui.widgets import FRACTION_ROLE
from tests.gui.conftest import DemoAgentProcess, click, drop, rows, run_to_end


def test_drop_file_shows_progress_then_copies_link(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess, short_home: Path
) -> None:
    source = short_home / "docs" / "rapport 2026 \u00e9t\u00e9 final.pdf"  # a non-ASCII name
    source.parent.mkdir()
    payload = os.urandom(1024 * 1024 + 17)
    source.write_bytes(payload)
    window = connected_tray.drop_window
    window.show()
    fractions: list[float] = []

    def record(path: str) -> None:
        row = rows(window.items)[0]
        if row is not None:
            fractions.append(row.data(COL_PROGRESS, FRACTION_ROLE))

    connected_tray.state.upload_changed.connect(record)

    drop(window, [source])

    qtbot.waitUntil(lambda: bool(window.copy_buttons()), timeout=10_000)
    row = rows(window.items)[0]
    assert row.text(0) == source.name
    assert row.text(COL_PROGRESS).startswith("Done")
    assert any(0 < f < 1 for f in fractions), f"no intermediate progress shown: {fractions}"
    assert fractions == sorted(fractions)

    button = window.copy_buttons()[0]
    click(button)
    link = QGuiApplication.clipboard().text()
    assert button.text() == "Copied ✓"
    assert link.startswith("file://")  # on the local hub the link is the stored file
    stored = Path(QUrl(link).toLocalFile())
    assert stored.read_bytes() == payload
    assert stored.is_relative_to(demo_agent.hub)


def test_drop_folder_uploads_every_file(
    qtbot: QtBot, connected_tray: TrayApp, short_home: Path
) -> None:
    folder = short_home / "album"
    for i in range(3):
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        (folder / "sub" / f"{i}.txt").write_text(f"photo {i}\n" * 1000)
    window = connected_tray.drop_window
    window.show()
    drop(window, [folder])
    qtbot.waitUntil(lambda: len(window.copy_buttons()) == 3, timeout=10_000)
    names = [row.text(0) for row in rows(window.items)]
    assert names == ["album/", "album/sub/0.txt", "album/sub/1.txt", "album/sub/2.txt"]  # under it
    qtbot.waitUntil(lambda: window.message.text().startswith("Done"), timeout=5000)
    folder_row = next(
        rows(window.items)[i] for i in range(4) if rows(window.items)[i].text(0) == "album/"
    )
    assert folder_row.text(COL_PROGRESS) == "Done · 3 files"
    click(window.copy_buttons()[0])
    link = Path(QUrl(QGuiApplication.clipboard().text()).toLocalFile())
    assert link.read_text() in {f"photo {i}\n" * 1000 for i in range(3)}


def test_unreadable_items_are_rejected_with_a_reason(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess, short_home: Path
) -> None:
    broken = short_home / "gone.txt"
    broken.symlink_to(short_home / "does-not-exist")
    fifo = short_home / "pipe"
    os.mkfifo(fifo)
    window = connected_tray.drop_window
    window.show()

    drop(window, [broken, fifo])

    reasons = window.rejected()
    assert set(reasons) == {"gone.txt", "pipe"}
    assert "no longer exists" in reasons["gone.txt"]
    assert "not a regular file" in reasons["pipe"]
    assert "can be read" in window.message.text()
    assert not window.copy_buttons()
    assert not (demo_agent.hub / "uploads").exists()  # nothing reached the agent


def test_drop_while_agent_down_says_so(qtbot: QtBot, tray_app: TrayApp, short_home: Path) -> None:
    source = short_home / "a.txt"
    source.write_text("hello")
    window = tray_app.drop_window
    window.show()
    drop(window, [source])
    assert "agent is not running" in window.rejected()["a.txt"]
    row = rows(window.items)[0]
    assert row is not None and "a.txt — not uploaded: the agent is not running" in row.text(0)


def test_a_dropped_file_can_go_straight_to_exai(
    qtbot: QtBot, connected_tray: TrayApp, short_home: Path
) -> None:
    from PySide6.QtWidgets import QPushButton

    from gui import exai_dialog

    source = short_home / "notes.md"
    source.write_text("# notes")
    window = connected_tray.drop_window
    window.show()
    drop(window, [source])
    qtbot.waitUntil(lambda: bool(window.copy_buttons()), timeout=10_000)
    row = rows(window.items)[0]
    box = window.items.itemWidget(row, COL_PROGRESS + 1)
    (ask,) = [b for b in box.findChildren(QPushButton) if b.objectName() == "ask_exai"]
    before = set(exai_dialog._open_dialogs)
    click(ask)
    (dialog,) = set(exai_dialog._open_dialogs) - before
    assert dialog.source.startswith("user-files/") and dialog.source.endswith("notes.md")
    dialog.close()
    run_to_end(qtbot, exai_dialog.close_exai_dialogs())


def test_local_hub_links_are_not_offered_a_lifetime(qtbot: QtBot, connected_tray: TrayApp) -> None:
    """The demo agent has only its local hub open: links are file paths that never expire."""
    window = connected_tray.drop_window
    window.show()
    qtbot.waitUntil(window.local_links.isVisible, timeout=5000)
    assert not window.lifetime.isVisible()
