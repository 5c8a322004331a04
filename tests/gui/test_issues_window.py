"""The Sync issues view against the real agent: a symlink, a FIFO, an invalid name and a
denied type each appear with their reason; "Ignore this" and "Open its folder" work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.issues_window import ISSUE_ROLE
from tests.fixtures.supabase import SupabaseUser
from tests.gui.conftest import click, rows, run_to_end
from tests.gui.test_real_agent import RealAgent, start_tray
from tests.supabase_server import SupabaseTestServer


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


def test_a_file_larger_than_the_bucket_allows_is_listed_in_the_view_and_the_cli(
    qtbot: QtBot,
    qt_loop: object,
    paths: Paths,
    short_home: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
) -> None:
    """Every skip kind of the acceptance, on a Supabase hub whose bucket caps objects
    at 1,000 bytes: in the tray's view and in `hubsync issues --json` (via the agent)."""
    supabase_server.storage.bucket("user-files").file_size_limit = 1000
    docs = short_home / "docs"
    troublesome_folder(docs)
    (docs / "big.bin").write_bytes(os.urandom(5000))
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(
        f'[supabase]\nurl = "{supabase_server.url}"\nanon_key = "{supabase_server.anon_key}"\n'
        '[upload]\ndeny_extensions = ["exe"]\n'
    )
    agent = RealAgent(paths, short_home)
    agent.start()
    app = None
    try:
        agent.call("sign_in", {"email": supabase_user.email, "password": supabase_user.password})
        agent.call("add_root", {"path": str(docs), "hub": "supabase"})
        app = start_tray(qtbot, paths)
        app.tray.menu.issues_action.trigger()
        window = app.issues_window
        qtbot.waitUntil(lambda: "big.bin" in shown(window), timeout=30_000)
        assert shown(window)["big.bin"] == (
            "Skipped (too_large)",
            "skipped: 5,000 bytes, larger than the bucket allows (1,000 bytes)",
        )
        listed = subprocess.run(
            [sys.executable, "-m", "agent", "issues", "--json"],
            env=agent.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        kinds = {i["path"]: i["kind"] for i in json.loads(listed.stdout)["issues"]}
        assert kinds == {
            "big.bin": "too_large",
            "setup.exe": "type_not_allowed",
            "link.txt": "symlink",
            "pipe": "special",
            "caf\\xe9.txt": "invalid_name",
        }
    finally:
        if app is not None:
            run_to_end(qtbot, app.close())
        agent.close()


def test_diagnose_button_shows_exais_answer_and_keeps_it(
    qtbot: QtBot, qt_loop: object, paths: Paths, short_home: Path
) -> None:
    from sync.journal import Failure, Journal
    from tests.fixtures.exai import EXAI_TEST_TOKEN, threaded_exai_server

    docs = short_home / "docs"
    docs.mkdir()
    agent = RealAgent(paths, short_home)
    assert (
        subprocess.run(
            [sys.executable, "-m", "agent", "add", str(docs)], env=agent.env, capture_output=True
        ).returncode
        == 0
    )
    journal = Journal(paths.journal)
    root = journal.roots()[0]
    journal.record_failures(
        root.id, [Failure(".", "transient", "HTTP 503 from the hub", "sync")], 1.0
    )
    journal.close()
    with threaded_exai_server(token=EXAI_TEST_TOKEN) as server:
        agent.env.update(
            EXAI_WS_HOST=server.host, EXAI_WS_PORT=str(server.port), EXAI_WS_TOKEN=EXAI_TEST_TOKEN
        )
        agent.start()
        app = start_tray(qtbot, paths)
        try:
            app.tray.menu.issues_action.trigger()
            window = app.issues_window
            # The agent's first good pass resolves the folder-wide failure; the group stays.
            qtbot.waitUntil(lambda: window.groups.topLevelItemCount() == 1, timeout=20_000)
            window.groups.setCurrentItem(window.groups.topLevelItem(0))
            assert window.diagnose_button.isEnabled()
            with qtbot.waitSignal(window.diagnosed, timeout=40_000) as answered:
                click(window.diagnose_button)
            assert "Recommended fixes" in answered.args[0]
            assert "Recommended fixes" in window.answer.toPlainText()

            def kept() -> bool:  # the list reloaded after the answer: the group has it
                row = window.groups.topLevelItem(0)
                return row is not None and bool(row.data(0, ISSUE_ROLE).get("diagnosis"))

            qtbot.waitUntil(kept, timeout=10_000)
        finally:
            run_to_end(qtbot, app.close())
            agent.close()
    assert any(name == "chat" for name, _ in server.calls)
