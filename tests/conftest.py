"""Shared fixtures. Fixture modules of each area live in tests/fixtures/."""

from __future__ import annotations

pytest_plugins: list[str] = [
    "tests.fixtures.postgres",
    "tests.fixtures.engine",
    "tests.fixtures.agent",
    "tests.fixtures.supabase",
    "tests.fixtures.exai",
    "tests.fixtures.agent_infra",
    "tests.fixtures.supabase_remote",
    "tests.fixtures.small_fs",
    "tests.fixtures.real_storage",
]
