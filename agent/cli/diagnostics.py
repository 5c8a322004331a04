"""``hubsync doctor --bundle``: one zip a user can attach to a bug report, without secrets.

It holds the settings (which never contain secrets; redacted again anyway),
the redacted log tail, the journal's integrity check and table sizes, package
versions and platform facts. Keyring entries, tokens and file contents are
never read.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sqlite3
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tomli_w

from agent.config import ConfigError, load_config
from agent.platform.logs import redact, tail
from agent.platform.paths import Paths

PACKAGES = (
    "hubsync",
    "supabase",
    "storage3",
    "postgrest",
    "supabase_auth",
    "httpx",
    "tuspy",
    "websockets",
    "watchdog",
    "platformdirs",
    "keyring",
    "typer",
    "rich",
    "sqlite-utils",
    "pathspec",
    "stamina",
    "psutil",
    "PySide6-Essentials",
    "qasync",
)
ENV_PREFIXES = ("HUBSYNC_", "SUPABASE_URL", "XDG_", "EXAI_HOST", "EXAI_PORT")
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "AUTH")


def write_bundle(paths: Paths, dest: Path, *, log_lines: int = 1000) -> Path:
    """Write the diagnostics zip to ``dest`` (a directory gets a timestamped file name)."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / time.strftime("hubsync-diagnostics-%Y%m%d-%H%M%S.zip")
    dest.parent.mkdir(parents=True, exist_ok=True)
    parts = {
        "config.toml": config_text(paths),
        "log-tail.txt": "\n".join(redact(line) for line in tail(paths.log_file, log_lines)) + "\n",
        "journal.txt": journal_report(paths.journal),
        "versions.json": json.dumps(versions(), indent=2),
        "platform.json": json.dumps(platform_info(paths), indent=2),
    }
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, redact(text))
    os.replace(tmp, dest)
    return dest


def config_text(paths: Paths) -> str:
    try:
        config = load_config(paths)
    except ConfigError as exc:
        return f"# the config file does not load: {exc}\n"
    return tomli_w.dumps(asdict(config))


def journal_report(journal: Path) -> str:
    """``PRAGMA integrity_check`` and row counts, read-only; never the rows themselves."""
    if not journal.exists():
        return f"no journal at {journal}\n"
    lines = [f"journal: {journal} ({journal.stat().st_size} bytes)"]
    try:
        conn = sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return "\n".join([*lines, f"cannot open: {exc}"]) + "\n"
    try:
        check = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        lines.append("integrity_check: " + "; ".join(check))
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            count = conn.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0]
            lines.append(f"table {table}: {count} rows")
        lines.append(f"journal_mode: {conn.execute('PRAGMA journal_mode').fetchone()[0]}")
    except sqlite3.Error as exc:
        lines.append(f"error while checking: {exc}")
    finally:
        conn.close()
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["sqlite"] = sqlite3.sqlite_version
    return found


def platform_info(paths: Paths) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "filesystem_encoding": sys.getfilesystemencoding(),
        "paths": {k: str(v) for k, v in asdict(paths).items()},
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(ENV_PREFIXES) and not any(w in k for w in SECRET_WORDS)
        },
    }
    try:
        import psutil

        info["memory_total"] = psutil.virtual_memory().total
        info["boot_time"] = psutil.boot_time()
    except (ImportError, OSError):
        pass
    if sys.platform.startswith("linux"):
        try:
            info["inotify_max_user_watches"] = int(
                Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
            )
        except (OSError, ValueError):
            pass
    return info
