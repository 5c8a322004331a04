"""The code stays ruff-clean, ruff-formatted and mypy-clean (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "sync", "agent", "gui", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_code_is_ruff_formatted() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "sync",
            "agent",
            "gui",
            "tests",
            "bench",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_is_clean() -> None:
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_sync_never_imports_agent_gui_or_supabase_outside_its_remote() -> None:
    offenders = []
    for path in (ROOT / "sync").rglob("*.py"):
        text = path.read_text("utf-8")
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped.startswith(("import ", "from ")):
                continue
            words = stripped.split()
            module = words[1]
            if module.split(".")[0] in ("agent", "gui", "PySide6", "qasync", "watchdog"):
                offenders.append(f"{path.name}: {stripped}")
            supabase_libs = ("supabase", "storage3", "postgrest", "supabase_auth")
            remote = ROOT / "sync" / "remotes" / "supabase"
            if module.split(".")[0] in supabase_libs and not path.is_relative_to(remote):
                offenders.append(f"{path.name}: {stripped}")
    assert offenders == []
