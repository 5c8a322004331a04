"""A whole sync into a project that may already run the EXAI server (issue #13).

For (a) an empty project, (b) EXAI's tables with ``file_id`` uuid and (b)
with ``file_id`` text (tests/exai_tables.sql, holding EXAI's rows with dedup
copies), the migrations are applied twice, then the real engine syncs 100
files through the test server's /rest/v1 — SQL on real PostgreSQL under the
caller's role and JWT — with its Storage keeping ``storage.objects`` rows as
the real one does. Afterwards every HubSync row must be valid under that
schema, inserts shaped like EXAI's uploader's (through the same REST) must
still succeed, and a second user must see none of it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sync.engine import SyncEngine
from sync.journal import Journal, JournalResumeStore
from sync.remotes.base import BUCKET_FILES
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import SupabaseSettings
from tests.fixtures.engine import FAST_RETRY
from tests.fixtures.supabase import SupabaseUser, make_user
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in
from tests.supabase_server import SupabaseTestServer
from tests.test_exai_schema_postgres import PROJECTS, Project, apply_migrations, make_project

if TYPE_CHECKING:
    from tests.fixtures.postgres import PostgresCluster

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]
pytestmark = pytest.mark.postgres

FILES = 100
DUPLICATES = 10
"""Files whose content another file already has: one object, one row for both."""


@pytest.fixture(params=PROJECTS)
def project(
    request: pytest.FixtureRequest, pg_cluster: PostgresCluster, pg_supabase_template: str
) -> Project:
    project = make_project(pg_cluster, pg_supabase_template, request.param)
    apply_migrations(project.cluster, project.dbname)
    apply_migrations(project.cluster, project.dbname)
    return project


@pytest.fixture
def server(project: Project) -> Iterator[SupabaseTestServer]:
    with SupabaseTestServer(
        seed=1234, database_url=project.cluster.conninfo(project.dbname)
    ) as server:
        yield server


async def signed_in_remote(
    server: SupabaseTestServer, user: SupabaseUser, keyring: MemoryKeyring, journal: Journal
) -> SupabaseRemote:
    settings = SupabaseSettings(url=server.url, anon_key=server.anon_key, requests_per_second=0)
    session = await sign_in(settings, user, keyring)
    return SupabaseRemote(session, resume_store=JournalResumeStore(journal))


@pytest.fixture
async def alice(
    tmp_path: Path, server: SupabaseTestServer, memory_keyring: MemoryKeyring
) -> AsyncIterator[tuple[SupabaseUser, SupabaseRemote, Path]]:
    """A user who synced 100 files (10 of them repeating another's content)."""
    user = make_user(server, "alice")
    docs = tmp_path / "docs"
    for i in range(FILES):
        folder = docs / f"Ordner {i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        content = i % (FILES - DUPLICATES)
        (folder / f"Notiz {i} é.txt").write_text(f"note {content}\n" * (1 + i % 5))
    journal = Journal(tmp_path / "journal.sqlite3")
    remote = await signed_in_remote(server, user, memory_keyring, journal)
    engine = SyncEngine(journal, {"supabase": remote}, retry=FAST_RETRY, workers=8)
    try:
        report = await engine.sync_root(journal.add_root(docs, "supabase"))
        assert report.complete, list(report.errors.items())[:5]
        yield user, remote, docs
    finally:
        engine.close()
        await remote.close()
        journal.close()


def rows_of(project: Project, table: str, uid: str) -> list[dict[str, Any]]:
    with project.cluster.connect(project.dbname) as conn:
        cursor = conn.execute(
            f"SELECT to_jsonb(t) FROM public.{table} t WHERE user_id = %s".encode(), [uid]
        )
        return [row[0] for row in cursor.fetchall()]


def object_ids(project: Project) -> dict[str, str]:
    """storage.objects (name → id) of user-files, as the database holds them."""
    rows = project.sql("SELECT name, id::text FROM storage.objects WHERE bucket_id = 'user-files'")
    return {str(name): str(object_id) for name, object_id in rows}


async def test_a_100_file_sync_leaves_only_rows_valid_under_the_schema(
    project: Project,
    server: SupabaseTestServer,
    alice: tuple[SupabaseUser, SupabaseRemote, Path],
) -> None:
    user, _, docs = alice
    objects = object_ids(project)
    keys = set(server.storage.keys(BUCKET_FILES))
    assert len(keys) == FILES - DUPLICATES and keys <= set(objects)

    metadata = rows_of(project, "file_metadata", user.uid)
    assert Counter(m["path"] for m in metadata) == Counter(keys)  # one row per object
    for row in metadata:
        expected = objects[row["path"]] if project.file_id_type == "uuid" else row["path"]
        assert row["file_id"] == expected
        assert row["bucket_id"] == BUCKET_FILES and row["filename"] and row["file_size"] > 0
        assert row["sha256_hash"] == row["path"].split("/")[2]

    operations = rows_of(project, "file_operations", user.uid)
    uploads = [o for o in operations if o["operation_type"] == "upload"]
    assert len(uploads) == FILES - DUPLICATES
    for op in uploads:
        assert op["status"] == "completed"
        if project.file_id_type == "uuid":
            assert op["file_id"] == objects[op["metadata"]["storage_path"]]
        else:
            assert op["file_id"] in keys
        if project.kind == "empty":
            assert op["bytes"] > 0 and op["started_at"]
        else:  # EXAI's table has no timing columns: HubSync keeps them in metadata
            assert "bytes" not in op and op["metadata"]["bytes"] > 0
            assert op["metadata"]["duration_ms"] >= 0
    manifest = rows_of(project, "hubsync_manifest", user.uid)
    assert len(manifest) == FILES
    for row in manifest:
        content = (docs / row["rel_path"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == row["sha256"]

    # (c) once more on top, now with HubSync's rows in place: nothing changes.
    before = rows_of(project, "file_metadata", user.uid)
    apply_migrations(project.cluster, project.dbname)
    assert rows_of(project, "file_metadata", user.uid) == before


async def test_exai_shaped_inserts_succeed_after_the_sync(
    project: Project,
    server: SupabaseTestServer,
    alice: tuple[SupabaseUser, SupabaseRemote, Path],
) -> None:
    """EXAI's tools/supabase_upload.py through the same REST, as the same user."""
    user, remote, _ = alice
    client = remote.session.client
    hubsync_row = rows_of(project, "file_metadata", user.uid)[0]

    # check_existing_file finds HubSync's row; create_metadata_reference copies it.
    found = await (
        client.table("file_metadata")
        .select("*")
        .eq("sha256_hash", hubsync_row["sha256_hash"])
        .eq("user_id", user.uid)
        .limit(1)
        .execute()
    )
    existing = found.data[0]
    copy = {
        k: existing[k]
        for k in ("file_id", "file_size", "content_type", "bucket_id", "path", "sha256_hash")
    }
    await (
        client.table("file_metadata")
        .insert(
            {**copy, "user_id": user.uid, "filename": "copy.txt", "tags": [], "access_count": 0}
        )
        .execute()
    )
    # A new upload: track_operation, the object, create_metadata_record, update_operation.
    operation = await (
        client.table("file_operations")
        .insert(
            {
                "user_id": user.uid,
                "operation_type": "upload",
                "status": "processing",
                "metadata": {"filename": "exai.txt", "file_size": 9},
                "error_message": None,
            }
        )
        .execute()
    )
    data = b"from EXAI"
    sha = hashlib.sha256(data).hexdigest()
    path = f"{user.uid}/{sha[:2]}/{sha}/exai.txt"
    await client.storage.from_(BUCKET_FILES).upload(path, data, {"content-type": "text/plain"})
    file_id = object_ids(project)[path] if project.file_id_type == "uuid" else path
    record = await (
        client.table("file_metadata")
        .insert(
            {
                "file_id": file_id,
                "user_id": user.uid,
                "filename": "exai.txt",
                "file_size": len(data),
                "content_type": "text/plain",
                "bucket_id": BUCKET_FILES,
                "path": path,
                "sha256_hash": sha,
                "tags": [],
                "access_count": 0,
            }
        )
        .execute()
    )
    await (
        client.table("file_operations")
        .update({"status": "completed", "metadata": {"metadata_id": record.data[0]["id"]}})
        .eq("id", operation.data[0]["id"])
        .execute()
    )
    rows = rows_of(project, "file_metadata", user.uid)
    assert sum(r["path"] == existing["path"] for r in rows) == 2
    assert any(r["path"] == path for r in rows)
    # HubSync then finds EXAI's object by its hash instead of uploading it again.
    assert await remote.find_blobs([sha]) == {sha: path}


async def test_rls_isolates_a_second_user(
    project: Project,
    server: SupabaseTestServer,
    alice: tuple[SupabaseUser, SupabaseRemote, Path],
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
) -> None:
    user, _, _ = alice
    bob = make_user(server, "bob")
    docs = tmp_path / "bob-docs"
    docs.mkdir()
    (docs / "note 0.txt").write_text("note 0\n")  # content Alice has too
    (docs / "own.txt").write_text("only Bob's")
    journal = Journal(tmp_path / "bob.sqlite3")
    remote = await signed_in_remote(server, bob, memory_keyring, journal)
    engine = SyncEngine(journal, {"supabase": remote}, retry=FAST_RETRY)
    try:
        client = remote.session.client
        for table in ("file_metadata", "file_operations", "hubsync_manifest", "hubsync_devices"):
            seen = await client.table(table).select("*").execute()
            assert seen.data == [], table
        alices = sorted(server.storage.keys(BUCKET_FILES))[:5]
        seen = (
            await client.table("hubsync_storage_objects").select("*").in_("name", alices).execute()
        )
        assert seen.data == []
        report = await engine.sync_root(journal.add_root(docs, "supabase"))
        assert report.complete
        mine = rows_of(project, "file_metadata", bob.uid)
        assert sorted(m["path"].split("/")[0] for m in mine) == [bob.uid, bob.uid]
    finally:
        engine.close()
        await remote.close()
        journal.close()
    assert len(rows_of(project, "file_metadata", user.uid)) == FILES - DUPLICATES
