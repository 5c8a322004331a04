"""The Hub window against the real agent: device B (the tray's) sees what device A put in
the hub. Search finds A's file, Open brings it here and hands it to the desktop, Save
as… and Copy link give the same bytes, Ask EXAI… opens the dialog on the hub file; on
the Supabase hub, Pull folder… shows its progress, can be cancelled, and gives A's folder
hash by hash. Without a desktop handler, Open says so."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTreeWidgetItem
from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.app import TrayApp
from gui.exai_dialog import ExaiDialog
from gui.hub_tree import entry_of
from gui.hub_window import HubWindow
from tests.fixtures.supabase import SupabaseUser
from tests.gui.conftest import click, run_to_end
from tests.gui.test_real_agent import RealAgent, start_tray
from tests.supabase_server import SupabaseTestServer
from tests.test_supabase_sync import cli_env

OBJECTS = "/storage/v1/object/user-files/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha(p.read_bytes())
        for p in folder.rglob("*")
        if p.is_file()
    }


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"


class DesktopOpener(QObject):
    """Stands where the desktop's file handler is: Qt hands it every file:// URL opened."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url)


@pytest.fixture
def desktop() -> Iterator[DesktopOpener]:
    opener = DesktopOpener()
    QDesktopServices.setUrlHandler("file", opener, "open")
    yield opener
    QDesktopServices.unsetUrlHandler("file")


def hub_window(qtbot: QtBot, app: TrayApp) -> HubWindow:
    """Opened as a user does: from the tray menu."""
    qtbot.waitUntil(app.tray.menu.hub_action.isEnabled)  # the menu has caught up
    app.tray.menu.hub_action.trigger()
    window = app.hub_window
    assert window.isVisible()
    qtbot.waitUntil(lambda: window.tree.topLevelItemCount() > 0, timeout=15_000)
    return window


def file_row(window: HubWindow, path: str, device: str) -> QTreeWidgetItem | None:
    for row in window.tree.file_rows():
        entry = entry_of(row)
        if entry["path"] == path and entry["device"] == device:
            return row
    return None


def select(qtbot: QtBot, window: HubWindow, row: QTreeWidgetItem) -> None:
    window.tree.setCurrentItem(row)
    if entry_of(row)["kind"] == "file":
        qtbot.waitUntil(lambda: window.versions.topLevelItemCount() > 0, timeout=10_000)


def wait_message(qtbot: QtBot, window: HubWindow, start: str) -> str:
    qtbot.waitUntil(lambda: window.message.text().startswith(start), timeout=30_000)
    return window.message.text()


@pytest.fixture
def local_hub(short_home: Path, paths: Paths) -> Callable[[str], dict[str, str]]:
    """Configure devices on one local hub: ``laptop`` (CLI only) and ``desk`` (the tray's)."""
    hub = short_home / "hub"

    def home(name: str) -> dict[str, str]:
        config = paths.config_file if name == "desk" else short_home / name / "config/config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[hub]\nlocal_path = "{hub}"\n[device]\nname = "{name}"\n')
        env = {**os.environ, "HUBSYNC_HOME": str(config.parent.parent)}
        env.pop("HUBSYNC_DEVICE_NAME", None)
        return env

    return home


def test_search_open_save_link_and_exai_on_the_local_hub(
    qtbot: QtBot,
    qt_loop: object,
    paths: Paths,
    short_home: Path,
    local_hub: Callable[[str], dict[str, str]],
    desktop: DesktopOpener,
) -> None:
    laptop = local_hub("laptop")
    docs = short_home / "Docs"
    (docs / "notes").mkdir(parents=True)
    plan = docs / "notes/plan.md"
    plan.write_bytes(b"# Plan\nfirst draft\n")
    (docs / "budget.xlsx").write_bytes(os.urandom(40_000))
    cli(laptop, "add", str(docs))
    cli(laptop, "sync", "--once")
    final = b"# Plan\nsecond draft, with the dates\n"
    plan.write_bytes(final)
    cli(laptop, "sync", "--once")

    local_hub("desk")
    agent = RealAgent(paths, short_home)
    agent.env.pop("HUBSYNC_DEVICE_NAME", None)
    agent.start()
    app = start_tray(qtbot, paths)
    try:
        window = hub_window(qtbot, app)
        devices = [
            entry_of(window.tree.topLevelItem(i)) for i in range(window.tree.topLevelItemCount())
        ]
        assert {d["name"] for d in devices} == {"laptop"}  # desk mirrors nothing yet

        window.search.setFocus()
        QTest.keyClicks(window.search, "plan")
        qtbot.waitUntil(
            lambda: file_row(window, "notes/plan.md", "laptop") is not None, timeout=10_000
        )
        assert [entry_of(r)["path"] for r in window.tree.file_rows()] == ["notes/plan.md"]
        row = file_row(window, "notes/plan.md", "laptop")
        assert row is not None
        select(qtbot, window, row)
        versions = [
            window.versions.topLevelItem(i) for i in range(window.versions.topLevelItemCount())
        ]
        assert [v.text(0) for v in versions if v is not None] == ["v2", "v1"]
        assert all(v is not None and v.text(1)[:2] == "20" for v in versions)  # recorded times

        QDesktopServices.unsetUrlHandler("file")  # offscreen Qt has no handler of its own
        click(window.open_button)
        line = wait_message(qtbot, window, "plan.md is here")
        assert line.endswith("but this desktop has no application to open it with.")
        QDesktopServices.setUrlHandler("file", desktop, "open")
        click(window.open_button)
        qtbot.waitUntil(lambda: bool(desktop.opened), timeout=20_000)
        opened = Path(desktop.opened[0].toLocalFile())
        assert sha(opened.read_bytes()) == sha(final)
        assert opened.is_relative_to(paths.cache_dir)
        # The first Open linked the local hub's blob into the cache: the second is a hit.
        assert wait_message(qtbot, window, "Opened plan.md (from the download cache)")

        window.versions.setCurrentItem(versions[1])  # the first draft
        saved = short_home / "Saved"
        window.save_into(saved)
        wait_message(qtbot, window, "Saved")
        assert (saved / "plan.md").read_bytes() == b"# Plan\nfirst draft\n"

        window.versions.setCurrentItem(versions[0])
        click(window.copy_button)
        wait_message(qtbot, window, "Copied")
        link = QGuiApplication.clipboard().text()
        assert Path(QUrl(link).toLocalFile()).read_bytes() == final

        click(window.exai_button)
        qtbot.waitUntil(
            lambda: any(
                isinstance(w, ExaiDialog) and w.isVisible() for w in QApplication.topLevelWidgets()
            ),
            timeout=10_000,
        )
        dialog = next(
            w for w in QApplication.topLevelWidgets() if isinstance(w, ExaiDialog) and w.isVisible()
        )
        assert dialog.source.startswith("user-files/") and sha(final) in dialog.source

        window.search.clear()  # back to browsing: a folder's files come on expanding it
        qtbot.waitUntil(
            lambda: not window.tree.file_rows() and bool(window.tree.folder_rows()), timeout=10_000
        )
        (folder,) = window.tree.folder_rows()
        folder.setExpanded(True)
        qtbot.waitUntil(lambda: len(window.tree.file_rows()) == 2, timeout=10_000)
        assert {entry_of(r)["path"] for r in window.tree.file_rows()} == {
            "budget.xlsx",
            "notes/plan.md",
        }

        app.status_window.show()  # reachable from the status window too
        window.hide()
        click(app.status_window.hub_button)
        assert window.isVisible()
    finally:
        run_to_end(qtbot, app.close())
        agent.close()


def test_pull_folder_from_the_supabase_hub_with_progress(
    qtbot: QtBot,
    qt_loop: object,
    paths: Paths,
    short_home: Path,
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
) -> None:
    def signed_in(home: Path, name: str) -> dict[str, str]:
        env = {**cli_env(tmp_path, supabase_server), "HUBSYNC_HOME": str(home)}
        env["HUBSYNC_DEVICE_NAME"] = name
        cli(
            env,
            "login",
            "--email",
            supabase_user.email,
            "--password-stdin",
            stdin=supabase_user.password + "\n",
        )
        return env

    laptop = signed_in(tmp_path / "laptop", "laptop")
    docs = tmp_path / "Projects"
    (docs / "specs").mkdir(parents=True)
    for i in range(2):  # progress comes per MiB received
        (docs / "specs" / f"model-{i}.bin").write_bytes(os.urandom(3_000_000))
    (docs / "README.md").write_text("# Projects\n")
    cli(laptop, "add", str(docs), "--hub", "supabase")
    cli(laptop, "sync", "--once")

    desk = signed_in(short_home, "desk")
    agent = RealAgent(paths, short_home)
    agent.env.update(
        {
            k: desk[k]
            for k in (
                "SUPABASE_URL",
                "SUPABASE_ANON_KEY",
                "PYTHON_KEYRING_BACKEND",
                "HUBSYNC_DEVICE_NAME",
            )
        }
    )
    agent.start()
    app = start_tray(qtbot, paths)
    try:
        window = hub_window(qtbot, app)
        qtbot.waitUntil(lambda: bool(window.tree.folder_rows()), timeout=15_000)
        (folder,) = window.tree.folder_rows()
        assert entry_of(folder)["hub"] == "supabase" and entry_of(folder)["device"] == "laptop"
        folder.setExpanded(True)
        qtbot.waitUntil(lambda: len(window.tree.file_rows()) == 3, timeout=10_000)
        readme = next(r for r in window.tree.file_rows() if entry_of(r)["path"] == "README.md")
        select(qtbot, window, readme)
        click(window.copy_button)
        wait_message(qtbot, window, "Link copied")
        signed = httpx.get(QGuiApplication.clipboard().text(), timeout=10)
        assert signed.content == b"# Projects\n"  # a signed URL anyone can fetch

        select(qtbot, window, folder)
        supabase_server.faults.slow_body(500_000, prefix=OBJECTS)  # 6 s a file
        cancelled = short_home / "Cancelled" / "Projects"
        window.pull_into(cancelled)
        qtbot.waitUntil(lambda: window.download.bar.value() > 0, timeout=20_000)
        click(window.download.cancel_button)
        assert "cancelled" in wait_message(qtbot, window, "Pulling Projects: cancelled")
        assert not list(cancelled.glob("specs/*.bin"))  # the agent stopped that pull
        assert window.pull_button.isEnabled()
        supabase_server.faults.clear()

        shown: list[int] = []
        window.download.bar.valueChanged.connect(shown.append)
        supabase_server.faults.slow_body(2_000_000, prefix=OBJECTS)  # the rest: ~1 s a file
        target = short_home / "Pulled" / "Projects"
        since = time.time()
        window.pull_into(target)
        assert window.download.isVisible() and not window.pull_button.isEnabled()
        line = wait_message(qtbot, window, "Pulled")
        assert line.startswith("Pulled 3 files of Projects")
        assert any(0 < v < 1000 for v in shown), shown  # it moved, not only start and end
        assert shown == sorted(shown) and shown[-1] == 1000
        assert tree_hashes(target) == tree_hashes(docs)
        resumed = [
            e
            for e in supabase_server.log.entries("GET", OBJECTS)
            if e.started >= since and e.path.endswith(".bin")
        ]
        # What the cancelled pull had begun resumes (206, the rest only); a file it had not
        # reached yet, on a busy machine, comes whole (200).
        assert len(resumed) == 2 and 206 in {e.status for e in resumed}
        assert all(e.bytes_out < 3_000_000 for e in resumed if e.status == 206)
        assert not window.download.isVisible() and window.pull_button.isEnabled()
    finally:
        supabase_server.faults.clear()
        run_to_end(qtbot, app.close())
        agent.close()
