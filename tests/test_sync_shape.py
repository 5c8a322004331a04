"""The shape of sync/ that keeps it readable: the journal alone speaks SQL to its
database, modules stay small, and only the Supabase remote knows supabase-py."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOURNAL = ROOT / "sync" / "journal"


def sources(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py"))]


def test_only_the_journal_touches_its_connection() -> None:
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sources("sync", "agent", "gui")
        if not p.is_relative_to(JOURNAL)
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if re.search(r"journal\.(_?conn|_db)\b|\.conn\.", line)
    ]
    assert found == []


def test_no_module_of_sync_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources("sync")
        if (n := len(p.read_text("utf-8").splitlines())) > 500
    }
    assert long == {}


SUPABASE_PY = re.compile(r"^\s*(?:from|import)\s+(supabase|supabase_auth|postgrest|storage3)\b")


def test_only_the_supabase_remote_imports_supabase_py() -> None:
    outside = ROOT / "sync" / "remotes" / "supabase"
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sources("sync", "agent", "gui")
        if not p.is_relative_to(outside)
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if SUPABASE_PY.match(line)
    ]
    assert found == []
