"""Render the EXAI dialog after a real run to ``docs/screenshots/exai-dialog.png``.

The real agent (local hub) and the EXAI protocol test server run in their own
processes; the dialog asks ``analyze_file`` about a file and is shot once the
streamed answer is saved.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.make_exai_screenshot
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import qasync
from PySide6.QtWidgets import QApplication

from gui.agent_link import AgentLink
from gui.exai_dialog import ExaiDialog, close_exai_dialogs, open_exai_dialog
from tests.gui.exai_env import ROOT, ExaiAgent, ExaiServerProcess

QUESTION = "Summarise the quarterly numbers in three bullet points"


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the dialog never reached the expected state")
        await asyncio.sleep(0.05)


async def shoot(agent: ExaiAgent, source: Path, out: Path) -> Path:
    link = AgentLink(agent.paths.control_socket, agent_command=None)
    link.start()
    try:
        await until(lambda: link.connected)
        dialog: ExaiDialog = open_exai_dialog(None, link, source=source)
        dialog.resize(720, 780)
        await until(lambda: bool(dialog.tools))
        dialog.select_tool("analyze_file")
        dialog.question.setPlainText(QUESTION)
        finished: list[dict[str, object]] = []
        dialog.job_finished.connect(finished.append)
        dialog.run()
        await until(lambda: bool(finished))
        await until(lambda: dialog.past.tree.topLevelItemCount() > 0)
        await asyncio.sleep(0.2)  # let the last repaint land
        path = out / "exai-dialog.png"
        dialog.grab().save(str(path), "PNG", 9)
        return path
    finally:
        await close_exai_dialogs()
        await link.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    home = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    server = ExaiServerProcess("screenshot-token", delay=1.0, progress_interval=0.25).start()
    agent: ExaiAgent | None = None
    loop = qasync.QEventLoop(app)
    try:
        agent = ExaiAgent(home, server).start()
        source = home / "Q3 board notes.md"
        source.write_text("# Q3\nRevenue up 12%, costs flat, two new customers.\n")
        args.out.mkdir(parents=True, exist_ok=True)
        path = loop.run_until_complete(shoot(agent, source, args.out))
        print(f"{path}  {path.stat().st_size // 1024} KB")
    finally:
        loop.close()
        if agent is not None:
            agent.stop()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
