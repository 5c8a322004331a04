"""``hubsync report``: one self-contained HTML file, on an empty and on a busy journal."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from agent.platform.paths import resolve_paths
from sync.journal import Journal
from tests.fixtures.busy_journal import fill
from tests.history_helpers import text_version


def _report(home: Path, *args: str) -> str:
    out = home / "report.html"
    subprocess.run(
        [sys.executable, "-m", "agent", "report", "--out", str(out), *args],
        env={**os.environ, "HUBSYNC_HOME": str(home)},
        check=True,
        capture_output=True,
    )
    return out.read_text(encoding="utf-8")


def _self_contained(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert page.count("<svg") == 9


def test_report_on_an_empty_journal(tmp_path: Path) -> None:
    page = _report(tmp_path)
    _self_contained(page)
    assert "no transfers yet" in page and "no reads yet" in page


def test_report_on_a_busy_journal_compares_with_the_period_before(tmp_path: Path) -> None:
    paths = resolve_paths({"HUBSYNC_HOME": str(tmp_path)}).ensure()
    journal = Journal(paths.journal)
    now = time.time()
    fill(journal, now)
    period = journal.rollups().report(now - 7 * 86400, now)
    journal.close()
    page = _report(tmp_path, "--since", "7d")
    _self_contained(page)
    uploads = int(period["current"]["totals"]["uploads"])
    assert uploads > 0 and f"<th>Uploads</th><td>{uploads:,}</td>" in page
    assert "docs/notes.md" in page and "/home/me/photos" in page
    assert period["current"]["cache"]["prefetch_hits"] == 25
    assert period["previous"]["cache"]["hits"] == 10
    assert "no transfers yet" not in page


def test_old_metrics_are_folded_and_totals_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    now = time.time()
    fill(journal, now, days=20)
    conn = sqlite3.connect(journal.path, isolation_level=None)
    total = conn.execute("SELECT sum(value) FROM metrics WHERE name='files_uploaded'").fetchone()[0]
    journal.rollups().roll_up(now)
    old = now - 8 * 86400
    per_hour = conn.execute(
        "SELECT count(*), count(DISTINCT ts || name) FROM metrics WHERE ts < ?", (old - 3600,)
    ).fetchone()
    assert per_hour[0] == per_hour[1]  # one row per hour and name
    assert not conn.execute(
        "SELECT 1 FROM metrics WHERE ts < ? AND name LIKE 'latency%'", (old - 3600,)
    ).fetchone()
    again = conn.execute("SELECT sum(value) FROM metrics WHERE name='files_uploaded'").fetchone()[0]
    assert again == total
    conn.close()
    journal.close()


def test_a_report_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "report", "--out", str(tmp_path / "no" / "r.html")],
        env={**os.environ, "HUBSYNC_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot write the report to" in done.stderr and "No such file" in done.stderr


def test_report_without_an_agent_shows_what_compression_saves(tmp_path: Path) -> None:
    """The saving is the hub's own figure (as ``hubsync stats`` gives it), not 0."""
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()

    def cli(*args: str) -> str:
        env = {**os.environ, "HUBSYNC_HOME": str(home)}
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args], env=env, check=True, capture_output=True
        )
        return done.stdout.decode()

    cli("add", str(docs))
    for n in (1, 2):
        (docs / "notes.txt").write_bytes(text_version("notes", n, lines=6000))
        cli("sync", "--once")
    (hub,) = json.loads(cli("stats", "--compact", "--json"))
    assert hub["compressed_now"] == 1 and hub["saved_bytes"] > 300_000
    page = _report(home)
    shown = f"<td>saved by compression</td><td>{hub['saved_bytes'] / 1e6:,.1f} MB</td>"
    assert shown in page
