"""Settings: a round trip through the agent, folders and ignore patterns, sign-in errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.app import TrayApp
from gui.prefs import TrayPrefs
from gui.settings import SettingsDialog
from tests.gui.conftest import DemoAgentProcess, click
from tests.gui.demo_agent import PASSWORD


def open_settings(qtbot: QtBot, app: TrayApp) -> SettingsDialog:
    dialog = SettingsDialog(app.state, app.link, TrayPrefs(app.paths.config_dir))
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.loaded, timeout=5000):
        dialog.show()
    return dialog


def test_settings_round_trip(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    dialog = open_settings(qtbot, connected_tray)
    dialog.supabase_url.setText("https://abcd1234.supabase.co")
    dialog.anon_key.setText("eyJhbGciOiJIUzI1NiJ9.anon")
    dialog.exai_host.setText("exai.lan")
    dialog.exai_port.setValue(8443)
    dialog.exai_token.setText("s3cret-exai-token")
    dialog.upload_limit.setValue(2048)
    dialog.download_limit.setValue(0)
    dialog.cache_size.setValue(5120)
    dialog.cache_ttl.setValue(48)
    dialog.autostart.setChecked(True)
    dialog.notify_boxes["notify_results"].setChecked(False)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        click(dialog.save_button)
    assert dialog.message.text() == "Saved."
    assert dialog.exai_token.text() == ""  # the token does not linger in the form

    stored = demo_agent.call("config_get")
    assert stored["config"]["supabase"]["url"] == "https://abcd1234.supabase.co"
    assert (
        stored["config"]["exai"]["host"] == "exai.lan" and stored["config"]["exai"]["port"] == 8443
    )
    assert stored["config"]["agent"]["upload_limit_kbps"] == 2048
    cache = stored["config"]["cache"]
    assert (cache["size_limit_bytes"], cache["ttl_seconds"]) == (5120 * 1024**2, 48 * 3600)
    assert cache["prefetch"] is True  # the prefetch settings the form left as they were
    assert stored["autostart"] is True
    assert stored["secrets"] == {"exai_token": True}
    assert "s3cret-exai-token" not in repr(stored["config"])  # the token went to set_secret only

    dialog.close()
    again = open_settings(qtbot, connected_tray)
    assert again.supabase_url.text() == "https://abcd1234.supabase.co"
    assert again.anon_key.text() == "eyJhbGciOiJIUzI1NiJ9.anon"
    assert (again.exai_host.text(), again.exai_port.value()) == ("exai.lan", 8443)
    assert (again.upload_limit.value(), again.download_limit.value()) == (2048, 0)
    assert again.download_limit.text() == "unlimited"
    assert (again.cache_size.value(), again.cache_ttl.value()) == (5120, 48)
    assert again.autostart.isChecked()
    assert not again.notify_boxes["notify_results"].isChecked()
    assert again.notify_boxes["notify_errors"].isChecked()
    assert (
        again.exai_token.text() == ""
        and again.exai_token.placeholderText() == "stored in the keyring"
    )
    assert again.forget_token.isEnabled()


def test_folders_add_pause_ignore_remove(
    qtbot: QtBot,
    connected_tray: TrayApp,
    demo_agent: DemoAgentProcess,
    short_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = short_home / "Documents"
    folder.mkdir()
    dialog = open_settings(qtbot, connected_tray)
    dialog.add_root(str(folder))
    qtbot.waitUntil(lambda: dialog.roots.count() == 1, timeout=5000)
    dialog.roots.setCurrentRow(0)
    dialog.ignore.setPlainText("*.tmp\n\nnode_modules/\n")
    click(dialog.save_ignore)
    qtbot.waitUntil(lambda: dialog.message.text() == "Ignore patterns saved", timeout=5000)
    assert demo_agent.call("status")["roots"][0]["ignore"] == ["*.tmp", "node_modules/"]

    click(dialog.pause_root)
    qtbot.waitUntil(lambda: dialog.pause_root.text() == "Resume", timeout=5000)
    assert "(paused)" in dialog.roots.item(0).text()
    assert demo_agent.call("status")["roots"][0]["paused"] is True

    asked: list[str] = []
    monkeypatch.setattr(dialog, "confirm_remove", lambda path: asked.append(path) or False)
    click(dialog.remove_root)  # "Cancel": nothing changes
    qtbot.wait(300)
    assert asked == [str(folder)] and len(demo_agent.call("status")["roots"]) == 1
    monkeypatch.setattr(dialog, "confirm_remove", lambda path: True)
    click(dialog.remove_root)
    qtbot.waitUntil(lambda: dialog.roots.count() == 0, timeout=5000)
    assert demo_agent.call("status")["roots"] == []
    assert folder.is_dir()  # removing a folder from sync never deletes it


def test_adding_a_missing_folder_shows_the_agents_reason(
    qtbot: QtBot, connected_tray: TrayApp, short_home: Path
) -> None:
    dialog = open_settings(qtbot, connected_tray)
    dialog.add_root(str(short_home / "nope"))
    qtbot.waitUntil(lambda: "is not a folder" in dialog.message.text(), timeout=5000)
    assert "d64541" in dialog.message.styleSheet()


def test_sign_in_error_is_shown_and_the_password_never_kept(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    dialog = open_settings(qtbot, connected_tray)
    dialog.save()
    qtbot.waitUntil(lambda: dialog.message.text() == "Saved.", timeout=5000)
    dialog.tabs.setCurrentIndex(1)
    dialog.email.setText("ada@example.com")
    dialog.password.setText("wrong password")
    click(dialog.sign_in_button)
    assert dialog.password.text() == ""
    assert dialog.message.text() == ""  # "Saved." does not stand under a sign-in error
    qtbot.waitUntil(lambda: dialog.account_status.text().startswith("Sign-in failed"), timeout=5000)
    assert "set the Supabase URL and anon key first" in dialog.account_status.text()
    assert "supabase" not in {h.name for h in connected_tray.state.hubs() if h.location}

    dialog.supabase_url.setText("https://abcd1234.supabase.co")
    dialog.anon_key.setText("anon")
    dialog.password.setText("wrong password")
    click(dialog.sign_in_button)
    qtbot.waitUntil(
        lambda: "Invalid login credentials" in dialog.account_status.text(), timeout=5000
    )
    assert "d64541" in dialog.account_status.styleSheet()
    assert not dialog.sign_out_button.isEnabled()

    dialog.password.setText(PASSWORD)
    click(dialog.sign_in_button)
    qtbot.waitUntil(
        lambda: dialog.account_status.text() == "Signed in as ada@example.com", timeout=5000
    )
    assert dialog.sign_out_button.isEnabled()
    qtbot.waitUntil(
        lambda: connected_tray.state.health.get("supabase", {}).get("state") == "online",
        timeout=5000,
    )
    assert PASSWORD not in repr(demo_agent.call("config_get"))

    click(dialog.sign_out_button)
    qtbot.waitUntil(lambda: dialog.account_status.text().startswith("Not signed in"), timeout=5000)


def test_an_agent_without_settings_methods_gets_read_only_settings(
    qtbot: QtBot, tray_app: TrayApp, paths: Paths, short_home: Path
) -> None:
    agent = DemoAgentProcess(paths, short_home / "hub", ["--no-settings"])
    agent.start()
    try:
        tray_app.start()
        qtbot.waitUntil(lambda: tray_app.state.connected, timeout=10_000)
        dialog = open_settings(qtbot, tray_app)
        assert "does not offer its settings" in dialog.message.text()
        assert not dialog.agent_pages[0].isEnabled() and not dialog.autostart.isEnabled()
        dialog.notify_boxes["notify_errors"].setChecked(False)
        with qtbot.waitSignal(dialog.saved, timeout=5000):
            click(dialog.save_button)
        assert dialog.message.text().startswith("Notification choices saved")
        assert not TrayPrefs(paths.config_dir).notify("notify_errors")
    finally:
        agent.close()


def test_a_token_from_exai_ws_token_is_not_called_not_set(
    qtbot: QtBot, connected_tray: TrayApp, demo_agent: DemoAgentProcess
) -> None:
    dialog = open_settings(qtbot, connected_tray)
    result = demo_agent.call("config_get")
    dialog._fill({**result, "secrets": {"exai_token": False, "exai_token_env": True}})
    assert dialog.exai_token.placeholderText() == "set by EXAI_WS_TOKEN"
    assert "EXAI_WS_TOKEN environment variable" in dialog.exai_token_note.text()
