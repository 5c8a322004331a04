"""docs/screenshots/analytics.png: the Analytics window over a busy journal (offscreen Qt).

QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.make_analytics_screenshot
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from agent.control.analytics_api import utc_offset
from gui.agent_link import AgentLink
from gui.analytics_window import AnalyticsWindow
from sync.journal import Journal
from tests.fixtures.busy_journal import fill

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "analytics.png"


def main() -> None:
    app = QApplication([])
    with tempfile.TemporaryDirectory() as d:
        journal = Journal(Path(d) / "journal.db")
        now = time.time()
        fill(journal, now)
        report = journal.rollups().report(now - 7 * 86400, now, utc_offset())
        journal.close()
        window = AnalyticsWindow(AgentLink(Path(d) / "none.sock", agent_command=None))
        window.show_report(report)  # what the agent's ``analytics`` method answers
        window.resize(1360, 900)
        window.show()
        app.processEvents()
        window.grab().save(str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
