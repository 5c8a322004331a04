"""The Sync issues view against the real agent: a symlink, a FIFO, an invalid name and a
denied type each appear with their reason; "Ignore this" and "Open its folder" work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.paths import Paths
from gui.issues_window import ISSUE_ROLE
from tests.gui.conftest import click, rows, run_to_end
from tests.gui.test_real_agent import RealAgent, start_tray


def troublesome_folder(docs: Path) -> None:
    docs.mkdir(parents=True)
    (docs / "ok.txt").write_text("fine")
    os.symlink(docs / "ok.txt", docs / "link.txt")
    os.mkfifo(docs / "pipe")
    with open(os.fsencode(docs) + b"/caf\xe9.txt", "wb") as f:
        f.write(b"latin-1 name")
    (docs / "setup.exe").write_bytes(b"MZ\x90\x00")


def shown(window: object) -> dict[str, tuple[str, str]]:
    tree = window.items  # type: ignore[attr-defined]
    return {row.text(1): (row.text(0), row.text(2)) for row in rows(tree)}


def test_sync_issues_view_lists_each_item_with_its_reason_and_acts_on_it(
    qtbot: QtBot, qt_loop: object, paths: Paths, short_home: Path
) -> None:
    docs = short_home / "docs"
    troublesome_folder(docs)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text('[upload]\ndeny_extensions = ["exe"]\n')
    agent = RealAgent(paths, short_home)
    added = subprocess.run(
        [sys.executable, "-m", "agent", "add", str(docs)], env=agent.env, capture_output=True
    )
    assert added.returncode == 0, added.stderr
    agent.start()
    app = start_tray(qtbot, paths)
    try:
        app.tray.menu.issues_action.trigger()
        window = app.issues_window
        assert window.isVisible()
        qtbot.waitUntil(lambda: len(shown(window)) == 4, timeout=20_000)
        found = shown(window)
        assert found["link.txt"] == (
            "Skipped (symlink)",
            "skipped: symbolic link (links are not followed)",
        )
        assert found["pipe"] == ("Skipped (special)", "skipped: a FIFO (named pipe)")
        assert found["caf\\xe9.txt"] == ("Skipped (invalid_name)", "name is not valid UTF-8")
        assert found["setup.exe"] == (
            "Skipped (type_not_allowed)",
            "skipped: .exe files are denied for this folder",
        )
        assert window.summary.text() == "4 skipped"

        link_row = next(r for r in rows(window.items) if r.text(1) == "link.txt")
        window.items.setCurrentItem(link_row)
        assert window.open_button.isEnabled() and not window.retry_button.isEnabled()
        assert window.folder_of(link_row.data(0, ISSUE_ROLE)) == str(docs.resolve())
        click(window.ignore_button)
        qtbot.waitUntil(lambda: "link.txt" not in shown(window), timeout=20_000)
        assert "/link.txt" in (docs / ".hubignore").read_text().splitlines()

        window.show_ignored.setChecked(True)
        qtbot.waitUntil(lambda: "link.txt" in shown(window), timeout=10_000)
        ignored = next(r for r in rows(window.items) if r.text(1) == "link.txt")
        assert ignored.text(0) == "Ignored (rule)"
        window.items.setCurrentItem(ignored)
        assert window.rule_button.isEnabled()
    finally:
        run_to_end(qtbot, app.close())
        agent.close()
