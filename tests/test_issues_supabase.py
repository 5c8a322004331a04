"""Issues against the Supabase test server (its /rest/v1 on real PostgreSQL with the
migrations): the bucket's own limits skip files before any byte is sent, and every
device's error groups live in hubsync_errors, each user seeing only their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.control.issues_api import issues_report
from sync.engine import SyncEngine
from sync.journal import Journal
from sync.policy import BucketLimits
from sync.remotes.base import BUCKET_FILES
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import SupabaseSettings
from tests.fixtures.engine import FAST_RETRY
from tests.fixtures.supabase import SupabaseUser
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in
from tests.supabase_server import SupabaseTestServer

pytestmark = pytest.mark.postgres


def _row(device: str, fingerprint: str, state: str = "open") -> dict[str, object]:
    return {
        "device_id": device,
        "fingerprint": fingerprint,
        "kind": "local",
        "operation": "read",
        "message": "<path>: cannot be read",
        "example": "a.txt: cannot be read",
        "occurrences": 3,
        "open_files": 3,
        "first_seen": "2026-12-03T07:00:00+00:00",
        "last_seen": "2026-12-03T07:05:00+00:00",
        "paths": ["a.txt"],
        "state": state,
        "resolved_at": None,
        "diagnosis": None,
        "diagnosed_at": None,
    }


async def test_files_the_bucket_refuses_are_skipped_before_any_byte_is_sent(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    bucket = supabase_server.storage.bucket(BUCKET_FILES)
    bucket.file_size_limit = 1000
    bucket.allowed_mime_types = ["text/*", "image/*"]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_bytes(b"fits")
    (docs / "big.txt").write_bytes(os.urandom(5000))
    (docs / "tool.exe").write_bytes(b"MZ tiny")
    journal = Journal(tmp_path / "journal.sqlite3")
    engine = SyncEngine(journal, {"supabase": hub_remote}, retry=FAST_RETRY)
    try:
        root = journal.add_root(docs, "supabase")
        supabase_server.log.clear()
        report = await engine.sync_root(root)
        assert report.complete and report.uploaded == 1
        assert report.skipped["big.txt"] == (
            "skipped: 5,000 bytes, larger than the bucket allows (1,000 bytes)"
        )
        assert "not allowed by the bucket" in report.skipped["tool.exe"]
        kinds = {r: k for _, r, k, _, _ in journal.skipped(root.id)}
        assert kinds == {"big.txt": "too_large", "tool.exe": "type_not_allowed"}
        listed = {i["path"]: i for i in issues_report(journal)["issues"]}  # `issues --json`
        assert (listed["big.txt"]["category"], listed["big.txt"]["kind"]) == (
            "skipped",
            "too_large",
        )
        sent = [
            e.path
            for e in supabase_server.log.entries(prefix="/storage/v1/")
            if e.method in ("POST", "PUT", "PATCH") and "/list/" not in e.path
        ]
        assert len(sent) == 1 and sent[0].endswith("/small.txt")  # nothing of the others
        # The limit raised: the file goes up on the next pass, and is no longer listed.
        bucket.file_size_limit = 10_000
        hub_remote._limits.clear()
        report = await engine.sync_root(root)
        assert report.uploaded == 1
        assert {r for _, r, *_ in journal.skipped(root.id)} == {"tool.exe"}
    finally:
        engine.close()
        journal.close()


async def test_limits_of_a_bucket_the_user_may_not_read_are_none(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer
) -> None:
    supabase_server.storage.create_bucket("private-admin", file_size_limit=10)
    assert await hub_remote.bucket_limits("private-admin") == BucketLimits()
    assert await hub_remote.bucket_limits(BUCKET_FILES) == BucketLimits()  # none set


async def test_error_groups_are_isolated_per_user_on_postgres(
    hub_remote: SupabaseRemote,
    hub_settings: SupabaseSettings,
    supabase_user_b: SupabaseUser,
    memory_keyring: MemoryKeyring,
) -> None:
    await hub_remote.record_errors([_row("laptop", "f1"), _row("desktop", "f2")])
    await hub_remote.record_errors([_row("laptop", "f1", "resolved")])  # an upsert
    session_b = await sign_in(hub_settings, supabase_user_b, memory_keyring)
    bob = SupabaseRemote(session_b)
    try:
        await bob.record_errors([_row("bobs-pc", "f1")])
        mine = await hub_remote.list_errors()
        assert sorted((r["device_id"], r["fingerprint"], r["state"]) for r in mine) == [
            ("desktop", "f2", "open"),
            ("laptop", "f1", "resolved"),
        ]
        assert [(r["device_id"], r["fingerprint"]) for r in await bob.list_errors()] == [
            ("bobs-pc", "f1")
        ]
        # Bob cannot write a row as Alice: RLS refuses it.
        from sync.errors import SyncError

        forged = {"user_id": hub_remote.user_id, **_row("evil", "f9")}
        with pytest.raises(SyncError):
            await bob._upsert(
                "hubsync_errors", [forged], "user_id,device_id,fingerprint", "forging"
            )
        assert len(await hub_remote.list_errors()) == 2
    finally:
        await bob.close()
