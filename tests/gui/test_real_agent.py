"""End to end against the real agent (``hubsync agent``) on a local hub: add a folder,
watch it sync, drop a file and copy its link, pause and resume, survive an agent
restart, start the agent from the tray and stop it with "Quit HubSync"."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from agent.control.client import AgentUnavailable, call_sync
from agent.platform.paths import Paths
from gui.app import TrayApp
from gui.exai_dialog import ExaiDialog
from tests.fixtures.supabase import SupabaseUser
from tests.gui.conftest import ROOT, click, run_to_end
from tests.gui.test_drop_upload import drop
from tests.gui.test_settings import open_settings
from tests.supabase_server import SupabaseTestServer

AGENT = [sys.executable, "-m", "agent", "agent"]


class RealAgent:
    def __init__(self, paths: Paths, home: Path) -> None:
        self.paths = paths
        # Secrets in the documented 0600 file (no keyring here); autostart entries in the test home.
        self.env = {
            **os.environ,
            "HUBSYNC_HOME": str(home),
            "HUBSYNC_ALLOW_FILE_SECRETS": "1",
            "XDG_CONFIG_HOME": str(home / "xdg"),
        }
        self.env.pop("SUPABASE_URL", None)
        self.env.pop("SUPABASE_ANON_KEY", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._pool = ThreadPoolExecutor(1)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            AGENT,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("status")
                return
            except AgentUnavailable:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        future = self._pool.submit(call_sync, method, params, socket_path=self.paths.control_socket)
        return future.result(20)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._pool.shutdown()


@pytest.fixture
def real_agent(paths: Paths, short_home: Path) -> Iterator[RealAgent]:
    agent = RealAgent(paths, short_home)
    agent.start()
    yield agent
    agent.close()


def start_tray(qtbot: QtBot, paths: Paths, command: list[str] | None = None) -> TrayApp:
    app = TrayApp(paths, agent_command=command)
    for window in app.windows():
        qtbot.addWidget(window)
    app.start()
    qtbot.waitUntil(lambda: app.state.connected and bool(app.state.status), timeout=20_000)
    return app


def test_add_a_folder_watch_it_sync_drop_a_file_and_copy_its_link(
    qtbot: QtBot, qt_loop: object, paths: Paths, real_agent: RealAgent, short_home: Path
) -> None:
    app = start_tray(qtbot, paths)
    try:
        folder = short_home / "Notes"
        folder.mkdir()
        settings = app.settings
        with qtbot.waitSignal(settings.loaded, timeout=5000):
            settings.show()
        settings.add_root(str(folder))
        qtbot.waitUntil(lambda: settings.roots.count() == 1, timeout=10_000)
        settings.close()

        (folder / "meeting.md").write_text("# Notes of 26 November\n")
        qtbot.waitUntil(
            lambda: any(a["path"].endswith("meeting.md") for a in app.state.activity),
            timeout=20_000,
        )
        assert app.state.activity[0]["kind"] == "uploaded"
        menu = app.tray.menu
        qtbot.waitUntil(
            lambda: any("meeting.md" in a.text() for a in menu.recent_actions), timeout=5000
        )
        qtbot.waitUntil(lambda: menu.status_line.text() == "Up to date", timeout=10_000)

        outside = short_home / "Desktop" / "contract.pdf"
        outside.parent.mkdir()
        outside.write_bytes(os.urandom(300_000))
        window = app.drop_window
        window.show()
        drop(window, [outside])
        qtbot.waitUntil(lambda: bool(window.copy_buttons()), timeout=20_000)
        click(window.copy_buttons()[0])
        link = QGuiApplication.clipboard().text()
        assert link.startswith("file://")
        assert Path(QUrl(link).toLocalFile()).read_bytes() == outside.read_bytes()

        assert menu.exai_action.isEnabled()  # the agent serves exai.process
        menu.exai_action.trigger()
        assert any(
            isinstance(w, ExaiDialog) and w.isVisible() for w in QApplication.topLevelWidgets()
        )

        menu.pause_action.trigger()
        qtbot.waitUntil(lambda: menu.pause_action.text() == "Resume syncing", timeout=5000)
        assert real_agent.call("status")["paused"] is True
        menu.pause_action.trigger()
        qtbot.waitUntil(lambda: menu.pause_action.text() == "Pause syncing", timeout=5000)
        assert real_agent.call("status")["paused"] is False
    finally:
        run_to_end(qtbot, app.close())


def test_settings_round_trip_and_sign_in_through_the_real_agent(
    qtbot: QtBot,
    qt_loop: object,
    paths: Paths,
    real_agent: RealAgent,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
) -> None:
    app = start_tray(qtbot, paths)
    try:
        dialog = open_settings(qtbot, app)
        dialog.upload_limit.setValue(512)
        dialog.cache_size.setValue(2048)
        dialog.exai_token.setText("exai-token-for-the-keyring")
        with qtbot.waitSignal(dialog.saved, timeout=10_000):
            click(dialog.save_button)
        config = paths.config_file.read_text()
        assert "upload_limit_kbps = 512" in config
        assert f"size_limit_bytes = {2048 * 1024**2}" in config
        assert "exai-token-for-the-keyring" not in config
        dialog.close()
        again = open_settings(qtbot, app)
        assert (again.upload_limit.value(), again.cache_size.value()) == (512, 2048)
        assert again.exai_token.placeholderText() == "stored in the keyring"

        again.tabs.setCurrentIndex(1)
        again.supabase_url.setText(supabase_server.url)
        again.anon_key.setText(supabase_server.anon_key)
        again.email.setText(supabase_user.email)
        again.password.setText("not the password")
        click(again.sign_in_button)
        qtbot.waitUntil(
            lambda: again.account_status.text().startswith("Sign-in failed"), timeout=15_000
        )
        assert "d64541" in again.account_status.styleSheet()
        assert "Invalid login credentials" in again.account_status.text()
        again.password.setText(supabase_user.password)
        click(again.sign_in_button)
        qtbot.waitUntil(
            lambda: again.account_status.text() == f"Signed in as {supabase_user.email}",
            timeout=15_000,
        )
        assert supabase_user.password not in paths.config_file.read_text()
        qtbot.waitUntil(
            lambda: any(h.name == "supabase" and h.location for h in app.state.hubs()),
            timeout=15_000,
        )
    finally:
        run_to_end(qtbot, app.close())


def test_agent_killed_and_restarted_under_the_tray(
    qtbot: QtBot, qt_loop: object, paths: Paths, real_agent: RealAgent, short_home: Path
) -> None:
    folder = short_home / "Docs"
    folder.mkdir()
    real_agent.call("add_root", {"path": str(folder)})
    app = start_tray(qtbot, paths)
    try:
        window = app.tray.window
        assert window is not None
        real_agent.kill()
        qtbot.waitUntil(lambda: not app.state.connected, timeout=5000)
        assert app.state.tray_state() == "offline"
        real_agent.start()
        real_agent.call("pause")
        qtbot.waitUntil(lambda: window.summary.text() == "Paused", timeout=20_000)
        assert [r.path for r in app.state.roots()] == [str(folder)]
    finally:
        run_to_end(qtbot, app.close())


def test_held_deletions_are_shown_and_undone_or_applied_from_the_status_window(
    qtbot: QtBot,
    qt_loop: object,
    paths: Paths,
    real_agent: RealAgent,
    short_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = short_home / "Photos"
    (folder / "2026").mkdir(parents=True)
    for i in range(24):
        (folder / "2026" / f"IMG_{i:04}.jpg").write_bytes(os.urandom(2000))
    (folder / "album.txt").write_text("kept")
    real_agent.call("add_root", {"path": str(folder)})

    def counts() -> dict[str, int]:
        counted: dict[str, int] = real_agent.call("status")["roots"][0]["counts"]
        return counted

    deadline = time.monotonic() + 30
    while counts() != {"synced": 25}:
        assert time.monotonic() < deadline, counts()
        time.sleep(0.2)
    app = start_tray(qtbot, paths)
    try:
        window = app.status_window
        window.show()
        banner = window.held
        assert banner.isHidden()
        with qtbot.waitSignal(app.notifier.shown, timeout=30_000) as told:
            shutil.rmtree(folder / "2026")  # e.g. a sync with the camera gone wrong
        assert told.args[0] == "Deletions held"
        # The watcher may report the deletions in two batches: the banner follows.
        qtbot.waitUntil(lambda: "24 files were deleted from" in banner.text.text(), timeout=10_000)
        assert banner.isVisible()
        assert app.state.summary() == "24 deletions held: choose in the status window"
        click(banner.bring_back)
        qtbot.waitUntil(lambda: counts() == {"synced": 25}, timeout=30_000)
        assert len(list((folder / "2026").iterdir())) == 24
        qtbot.waitUntil(banner.isHidden, timeout=10_000)

        shutil.rmtree(folder / "2026")
        qtbot.waitUntil(
            lambda: banner.isVisible() and "24 files were deleted" in banner.text.text(),
            timeout=30_000,
        )
        asked: list[str] = []
        monkeypatch.setattr(banner, "confirm", lambda q: asked.append(q) or True)
        click(banner.apply)
        assert "Delete 24 files from the hub's copy" in asked[0]
        assert "2026/IMG_0000.jpg" in asked[0] and "… and 14 more" in asked[0]
        qtbot.waitUntil(lambda: counts() == {"synced": 1, "deleted": 24}, timeout=30_000)
        qtbot.waitUntil(banner.isHidden, timeout=10_000)
        assert not (folder / "2026").exists()
    finally:
        run_to_end(qtbot, app.close())


def test_tray_starts_the_real_agent_and_quit_stops_it(
    qtbot: QtBot, qt_loop: object, paths: Paths, short_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSYNC_HOME", str(short_home))
    app = start_tray(qtbot, paths, command=AGENT)
    spawned = app.link.agent_started_by_us
    try:
        assert spawned is not None
        app.tray.menu.quit_action.trigger()
        qtbot.waitUntil(app.finished.is_set, timeout=10_000)
        assert spawned.wait(20) == 0
    finally:
        run_to_end(qtbot, app.close())
        if spawned is not None and spawned.poll() is None:
            spawned.kill()
            spawned.wait(10)


def test_killing_the_tray_leaves_the_agent_syncing(
    qtbot: QtBot, qt_loop: object, paths: Paths, short_home: Path
) -> None:
    """The tray (a real ``hubsync-tray`` process) starts the agent; kill -9 the tray: the
    agent keeps syncing, and a new tray shows its live state at once."""
    agent = RealAgent(paths, short_home)
    env = {**agent.env, "QT_QPA_PLATFORM": "offscreen"}
    tray = subprocess.Popen(
        [sys.executable, "-m", "gui.app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                agent.call("status")
                break
            except AgentUnavailable:
                assert time.monotonic() < deadline, "the tray did not start the agent"
                time.sleep(0.2)
        folder = short_home / "Work"
        folder.mkdir()
        agent.call("add_root", {"path": str(folder)})
        tray.kill()
        tray.wait(10)

        (folder / "after-the-tray-died.txt").write_text("still syncing\n")
        deadline = time.monotonic() + 20
        while not any(
            op["relpath"] == "after-the-tray-died.txt"
            for op in agent.call("activity")["operations"]
        ):
            assert time.monotonic() < deadline, "the agent stopped syncing with the tray"
            time.sleep(0.2)

        started = time.monotonic()
        app = start_tray(qtbot, paths)
        try:
            qtbot.waitUntil(
                lambda: any(
                    a["path"].endswith("after-the-tray-died.txt") for a in app.state.activity
                ),
                timeout=5000,
            )
            print(
                f"\na new tray showed the live state {time.monotonic() - started:.2f} s after starting"
            )
            assert [r.path for r in app.state.roots()] == [str(folder)]
        finally:
            run_to_end(qtbot, app.close())
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait(10)
        try:
            agent.call("quit")
        except AgentUnavailable:
            pass
        agent.close()
