"""Compressed history in a project that already runs EXAI (its file_metadata with a uuid
or a text ``file_id``, dedup copies of rows): the migrations apply, EXAI's rows keep
pointing at objects that exist, and an object EXAI refers to is never compressed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sync.compaction import compact
from sync.history_store import packed_history
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import SupabaseSettings
from tests.fixtures.supabase import make_user
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in
from tests.history_helpers import read_back, save, text_version
from tests.supabase_server import SupabaseTestServer
from tests.test_exai_schema_postgres import Project
from tests.test_exai_schema_sync import project, rows_of, server

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]
pytestmark = pytest.mark.postgres
__all__ = ["project", "server"]  # fixtures


@pytest.fixture
async def remote(
    server: SupabaseTestServer, memory_keyring: MemoryKeyring
) -> AsyncIterator[SupabaseRemote]:
    user = make_user(server, "alice")
    settings = SupabaseSettings(url=server.url, anon_key=server.anon_key, requests_per_second=0)
    remote = SupabaseRemote(await sign_in(settings, user, memory_keyring))
    try:
        yield remote
    finally:
        await remote.close()


async def test_history_beside_exai_tables(
    project: Project, remote: SupabaseRemote, tmp_path: Path
) -> None:
    kept = await save(remote, tmp_path, "kept.txt", text_version("kept", 1), 1)
    await save(remote, tmp_path, "kept.txt", text_version("kept", 2), 2)
    old = await save(remote, tmp_path, "a.txt", text_version("a", 1), 1)
    current = await save(remote, tmp_path, "a.txt", text_version("a", 2), 2)
    # EXAI's uploader found the old version of kept.txt by hash and copied its row.
    row = rows_of(project, "file_metadata", remote.user_id)
    (original,) = [r for r in row if r["path"] == kept.key]
    copy = {
        k: original[k]
        for k in ("file_id", "file_size", "content_type", "bucket_id", "path", "sha256_hash")
    }
    await (
        remote.session.client.table("file_metadata")
        .insert({**copy, "user_id": remote.user_id, "filename": "copy.txt"})
        .execute()
    )
    history = packed_history(remote)
    assert history is not None
    report = await compact(history)
    assert report.compressed == 1  # a.txt v1 only: EXAI refers to kept.txt v1
    paths = [r["path"] for r in rows_of(project, "file_metadata", remote.user_id)]
    assert old.key not in paths and current.key in paths
    assert paths.count(kept.key) == 2
    assert not any("/history/" in p for p in paths)
    stored = {str(name) for (name,) in project.sql("SELECT name FROM storage.objects")}
    for p in paths:  # every row EXAI may read names an object that exists
        assert p in stored
    for e, data in ((old, text_version("a", 1)), (kept, text_version("kept", 1))):
        assert await read_back(remote, e, tmp_path) == data
