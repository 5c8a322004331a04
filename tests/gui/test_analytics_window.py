"""The Analytics window, against a real agent over a busy journal: reached from the tray
menu and the status window, it shows every chart from the agent's figures."""

from __future__ import annotations

import time

import qasync
from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from sync.journal import Journal
from tests.fixtures.busy_journal import fill
from tests.gui.test_real_agent import RealAgent, start_tray
from tests.gui.test_real_agent import real_agent as real_agent  # the fixture


def test_analytics_window_shows_the_charts_from_the_agent(
    qtbot: QtBot, qt_loop: qasync.QEventLoop, paths: Paths, real_agent: RealAgent
) -> None:
    journal = Journal(paths.journal)  # what two weeks of use leave (the agent runs meanwhile)
    fill(journal, time.time())
    journal.close()
    app = start_tray(qtbot, paths)
    app.tray.menu.analytics_action.trigger()
    window = app.analytics_window
    qtbot.waitUntil(lambda: len(window.charts) == 9, timeout=20_000)
    assert window.isVisible()
    assert "reads of hub files" in window.summary.text()
    assert all(c.renderer().isValid() for c in window.charts)
    window.hide()
    app.status_window.analytics_button.click()
    assert window.isVisible()
