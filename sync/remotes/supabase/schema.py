"""The Supabase schema HubSync needs, read from the shipped SQL migrations.

The files live in ``resources/supabase/migrations/`` and are named the way the
Supabase CLI expects (``YYYYMMDDHHMMSS_name.sql``), so ``supabase db push``
applies them as they are; :func:`schema_sql` joins them for pasting into the
SQL editor (``hubsync supabase schema``). Deliberately free of supabase-py.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

_PACKAGE = "resources.supabase"
_NAME = re.compile(r"^\d{14}_[a-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    """The directory holding the migration files."""
    folder = files(_PACKAGE).joinpath("migrations")
    if not isinstance(folder, Path):
        raise RuntimeError(f"{_PACKAGE} is not installed as plain files: {folder!r}")
    return folder


def migration_files() -> list[Path]:
    """The migrations in the order they must be applied (their timestamps)."""
    return sorted(p for p in migrations_dir().iterdir() if _NAME.match(p.name))


def schema_sql() -> str:
    """All migrations as one script; applying it again changes nothing."""
    parts = [
        f"-- ==== {path.name} ====\n{path.read_text(encoding='utf-8').strip()}\n"
        for path in migration_files()
    ]
    return "\n".join(parts)
