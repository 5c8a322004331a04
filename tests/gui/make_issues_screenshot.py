"""Render the Sync issues view against the real agent to ``docs/screenshots/sync-issues.png``.

A folder with a symbolic link, a FIFO, a badly encoded name and a denied type, plus an
error group (three uploads refused by an unavailable hub, with a stored EXAI diagnosis)
written to the journal before the agent starts:

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.make_issues_screenshot
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import qasync
from PySide6.QtWidgets import QApplication

from agent.platform.paths import resolve_paths
from gui.app import TrayApp
from sync.journal import Failure, Journal
from tests.gui.make_screenshots import ROOT, save, until

DIAGNOSIS = """## Diagnosis

The hub answered **503 Service Unavailable** for three uploads in a row: Supabase Storage
was restarting or over its limits, not a problem with these files.

## Recommended fixes

1. Nothing to change locally: HubSync retries with backoff (next try within the hour).
2. Check the project's status page and Storage logs for the time shown.
3. Use *Retry the group* once the hub answers again.
"""


def _seed(home: Path, docs: Path) -> None:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "agent", "add", str(docs)], env=env, check=True)
    journal = Journal(resolve_paths(env).journal)
    root = journal.roots()[0]
    names = ["reports/q3-summary.pdf", "reports/q4-draft.docx", "slides/kickoff.pptx"]
    now = time.time()
    with journal.transaction():
        for name in names:
            st = (docs / name).stat()
            journal.mark_seen(root.id, [(name, st.st_size, st.st_mtime_ns, st.st_ino)])
            message = f"HTTP 503 from the hub for {name}: service unavailable"
            journal.mark_error(root.id, name, "transient", message, 3600, now)
        journal.record_failures(
            root.id,
            [
                Failure(
                    n, "transient", f"HTTP 503 from the hub for {n}: service unavailable", "upload"
                )
                for n in names
            ],
            now,
        )
    (group,) = journal.error_groups()
    journal.store_diagnosis(group.id, DIAGNOSIS, now)
    journal.close()


async def shoot(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="hs-"))
    docs = home / "Documents"
    agent: subprocess.Popen[bytes] | None = None
    try:
        for name in ("reports/q3-summary.pdf", "reports/q4-draft.docx", "slides/kickoff.pptx"):
            (docs / name).parent.mkdir(parents=True, exist_ok=True)
            (docs / name).write_bytes(os.urandom(2000))
        (docs / "notes.md").write_text("# notes\n")
        os.symlink(docs / "notes.md", docs / "notes-link.md")
        os.mkfifo(docs / "build.pipe")
        with open(os.fsencode(docs) + b"/r\xe9sum\xe9.txt", "wb") as f:
            f.write(b"latin-1 name")
        (docs / "installer.exe").write_bytes(b"MZ\x90\x00")
        paths = resolve_paths({"HUBSYNC_HOME": str(home)}).ensure()
        paths.config_file.write_text('[upload]\ndeny_extensions = ["exe"]\n')
        _seed(home, docs)
        env = {**os.environ, "HUBSYNC_HOME": str(home)}
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "agent"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        app = TrayApp(paths, agent_command=None)
        app.start()
        await until(lambda: app.state.connected and bool(app.state.status), 20)
        window = app.issues_window
        window.resize(980, 640)
        window.show()
        await until(
            lambda: (
                window.items.topLevelItemCount() >= 7 and window.groups.topLevelItemCount() == 1
            ),
            20,
        )
        window.groups.setCurrentItem(window.groups.topLevelItem(0))
        await asyncio.sleep(0.3)
        save(window, out, "sync-issues")
        await app.close()
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(15)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    app = QApplication.instance() or QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(shoot(ROOT / "docs" / "screenshots"))


if __name__ == "__main__":
    main()
