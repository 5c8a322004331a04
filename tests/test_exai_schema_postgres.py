"""HubSync's migrations and rows beside the EXAI server's own tables, on real PostgreSQL.

Three projects (issue #13): (a) empty, (b) with EXAI's ``file_metadata`` /
``file_operations`` (tests/exai_tables.sql) whose ``file_id`` is a uuid
referencing ``storage.objects``, and (b) with ``file_id`` as text; both (b)
hold rows EXAI's uploader wrote, dedup copies included. Rows are shaped by the
product's code (:mod:`sync.remotes.supabase.rows`) from what the migrations'
views report, and inserted the way PostgREST inserts a JSON body
(``json_populate_recordset`` as the ``authenticated`` role with the caller's
JWT claims), so every type, NOT NULL, CHECK, foreign key and RLS policy of the
real tables applies.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from sync.keys import object_key
from sync.remotes.base import BUCKET_FILES, ManifestEntry, Operation
from sync.remotes.supabase.rows import (
    HubSchema,
    manifest_row,
    metadata_row,
    operation_row,
    with_file_id,
)
from sync.remotes.supabase.schema import migration_files
from tests.test_migrations_postgres import schema_snapshot

if TYPE_CHECKING:
    from tests.fixtures.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

EXAI_TABLES = Path(__file__).resolve().parent / "exai_tables.sql"
FILE_ID_TYPES = {
    "uuid": ("uuid references storage.objects (id) on delete cascade", "uuid"),
    "text": ("text", "text"),
}
PROJECTS = ("empty", "exai-uuid", "exai-text")
SYNCED_FILES = 100


def exai_tables_sql(file_id: str) -> str:
    column, argument = FILE_ID_TYPES[file_id]
    return EXAI_TABLES.read_text(encoding="utf-8").format(file_id=column, file_id_arg=argument)


def apply_migrations(cluster: PostgresCluster, dbname: str) -> None:
    for path in migration_files():
        cluster.run_sql(dbname, path.read_text(encoding="utf-8"))


def sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Caller:
    """A connection acting as PostgREST does for one signed-in user."""

    conn: psycopg.Connection[dict[str, Any]]
    uid: str

    def insert(
        self, table: str, rows: list[dict[str, Any]], *, ignore_duplicate_ids: bool = False
    ) -> list[dict[str, Any]]:
        """A PostgREST bulk insert of a JSON array (every row with the same keys); with
        ``ignore_duplicate_ids``, as ``on_conflict=id`` + ``resolution=ignore-duplicates``
        (what SharedTables sends)."""
        columns = sql.SQL(", ").join(map(sql.Identifier, rows[0]))
        query = sql.SQL(
            "INSERT INTO public.{t} ({c}) SELECT {c} FROM json_populate_recordset("
            "NULL::public.{t}, %s)"
        ).format(t=sql.Identifier(table), c=columns)
        if ignore_duplicate_ids:
            query += sql.SQL(" ON CONFLICT (id) DO NOTHING")
        return self.conn.execute(query + sql.SQL(" RETURNING *"), [json.dumps(rows)]).fetchall()

    def select(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self.conn.execute(query.encode(), params).fetchall()

    def schema(self) -> HubSchema:
        rows = self.select("SELECT * FROM public.hubsync_schema")
        assert len(rows) == 1
        return HubSchema.from_row(rows[0])

    def object_ids(self, bucket: str, keys: list[str]) -> dict[str, str]:
        """What SharedTables.object_ids asks PostgREST: the view, by bucket and names."""
        rows = self.select(
            "SELECT id, name FROM public.hubsync_storage_objects"
            " WHERE bucket_id = %s AND name = ANY(%s)",
            (bucket, keys),
        )
        return {r["name"]: str(r["id"]) for r in rows}


@contextmanager
def signed_in(cluster: PostgresCluster, dbname: str, uid: str) -> Iterator[Caller]:
    claims = json.dumps({"sub": uid, "role": "authenticated"})
    with psycopg.connect(cluster.conninfo(dbname), autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET ROLE authenticated")
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)", [claims])
        yield Caller(conn, uid)


class Project:
    """One database shaped like a Supabase project, and what happens to it."""

    def __init__(self, cluster: PostgresCluster, template: str, kind: str) -> None:
        self.cluster = cluster
        self.kind = kind
        self.dbname = cluster.create_database(template=template)
        self.file_id_type = kind.removeprefix("exai-") if kind != "empty" else "text"

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.cluster.connect(self.dbname) as conn:
            cursor = conn.execute(query.encode(), params)
            return cursor.fetchall() if cursor.description else []

    def new_user(self) -> str:
        uid = str(uuid.uuid4())
        self.sql("INSERT INTO auth.users (id, email) VALUES (%s, %s)", (uid, f"{uid}@example.com"))
        return uid

    def store_object(self, bucket: str, key: str, size: int, owner: str) -> str:
        """What the Storage server does on upload: a storage.objects row; its id."""
        rows = self.sql(
            "INSERT INTO storage.objects (bucket_id, name, owner, owner_id, metadata)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (bucket_id, name) DO UPDATE SET updated_at = now() RETURNING id",
            (bucket, key, owner, owner, json.dumps({"size": size})),
        )
        return str(rows[0][0])

    def caller(self, uid: str) -> AbstractContextManager[Caller]:
        return signed_in(self.cluster, self.dbname, uid)

    def constraints(self) -> list[tuple[Any, ...]]:
        return self.sql(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid IN ('public.file_metadata'::regclass,"
            " 'public.file_operations'::regclass) ORDER BY 1, 2"
        )

    def unique_indexes(self, table: str) -> list[tuple[Any, ...]]:
        return self.sql(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = %s::regclass AND indisunique AND NOT indisprimary",
            (f"public.{table}",),
        )


class ExaiUploader:
    """The EXAI server's ``tools/supabase_upload.py`` (SupabaseUploadManager), row for row:
    check_existing_file by hash, create_metadata_reference on a hit, else
    track_operation(processing) → upload → create_metadata_record → update_operation.
    Where the column is a uuid, file_id is the object's id (what the schema asks);
    where it is text, the storage path (what the uploader's code puts there)."""

    def __init__(self, project: Project, uid: str) -> None:
        self.project = project
        self.uid = uid

    def upload(self, data: bytes, filename: str, bucket: str = BUCKET_FILES) -> dict[str, Any]:
        sha = sha_of(data)
        with self.project.caller(self.uid) as me:
            existing = me.select(
                "SELECT * FROM public.file_metadata WHERE sha256_hash = %s AND user_id = %s"
                " LIMIT 1",
                (sha, self.uid),
            )
            if existing:
                old = existing[0]
                reference = {
                    "file_id": str(old["file_id"]) if old["file_id"] else None,
                    "user_id": self.uid,
                    "filename": filename,
                    "file_size": old["file_size"],
                    "content_type": old["content_type"],
                    "bucket_id": old["bucket_id"],
                    "path": old["path"],
                    "sha256_hash": old["sha256_hash"],
                    "tags": [],
                    "access_count": 0,
                }
                return me.insert("file_metadata", [reference])[0]
            operation = me.insert(
                "file_operations",
                [
                    {
                        "user_id": self.uid,
                        "operation_type": "upload",
                        "status": "processing",
                        "metadata": {"filename": filename, "file_size": len(data)},
                        "error_message": None,
                    }
                ],
            )[0]
            path = f"{self.uid}/{sha[:2]}/{sha}/{filename}"
            object_id = self.project.store_object(bucket, path, len(data), self.uid)
            row = me.insert(
                "file_metadata",
                [
                    {
                        "file_id": object_id if self.project.file_id_type == "uuid" else path,
                        "user_id": self.uid,
                        "filename": filename,
                        "file_size": len(data),
                        "content_type": "text/plain",
                        "bucket_id": bucket,
                        "path": path,
                        "sha256_hash": sha,
                        "tags": ["exai"],
                        "access_count": 0,
                    }
                ],
            )[0]
            me.conn.execute(
                "UPDATE public.file_operations SET status = 'completed', metadata = %s,"
                " completed_at = now() WHERE id = %s",
                [json.dumps({"metadata_id": str(row["id"])}), operation["id"]],
            )
            return row


def make_project(cluster: PostgresCluster, template: str, kind: str) -> Project:
    """The project before HubSync: for (b), EXAI's tables holding EXAI's rows."""
    project = Project(cluster, template, kind)
    if kind != "empty":
        project.sql(exai_tables_sql(project.file_id_type))
        project.sql(
            "INSERT INTO storage.buckets (id, name, public, file_size_limit)"
            " VALUES ('user-files', 'user-files', false, 104857600) ON CONFLICT DO NOTHING"
        )
        exai = ExaiUploader(project, project.new_user())
        exai.upload(b"report from EXAI\n", "report.txt")
        exai.upload(b"report from EXAI\n", "report-copy.txt")  # a dedup hit: same file_id
        exai.upload(b"report from EXAI\n", "report-again.txt")
        exai.upload(b"another one\n", "other.txt")
    return project


@pytest.fixture(params=PROJECTS)
def project(
    request: pytest.FixtureRequest, pg_cluster: PostgresCluster, pg_supabase_template: str
) -> Project:
    return make_project(pg_cluster, pg_supabase_template, request.param)


def all_rows(project: Project, table: str) -> list[tuple[Any, ...]]:
    return project.sql(f"SELECT * FROM public.{table} ORDER BY created_at, id")


# --- the migrations ------------------------------------------------------


def test_migrations_apply_twice_and_keep_exai_tables_as_they_were(project: Project) -> None:
    metadata_before = all_rows(project, "file_metadata") if project.kind != "empty" else []
    operations_before = all_rows(project, "file_operations") if project.kind != "empty" else []
    constraints_before = project.constraints() if project.kind != "empty" else None

    apply_migrations(project.cluster, project.dbname)
    first = schema_snapshot(project.cluster, project.dbname)
    apply_migrations(project.cluster, project.dbname)

    assert schema_snapshot(project.cluster, project.dbname) == first
    assert project.unique_indexes("file_metadata") == []
    assert project.unique_indexes("file_operations") == []
    if project.kind != "empty":
        assert all_rows(project, "file_metadata") == metadata_before
        assert len(metadata_before) == 4  # three rows share one object
        assert all_rows(project, "file_operations") == operations_before
        assert project.constraints() == constraints_before


def test_the_schema_view_reports_what_the_project_has(project: Project) -> None:
    apply_migrations(project.cluster, project.dbname)
    with project.caller(project.new_user()) as me:
        schema = me.schema()
    uuid_ids = project.kind == "exai-uuid"
    assert (schema.metadata_file_id_uuid, schema.operations_file_id_uuid) == (uuid_ids, uuid_ids)
    has_timings = project.kind == "empty"
    assert {"started_at", "duration_ms", "bytes"} <= schema.operation_columns or not has_timings
    assert not ({"started_at", "duration_ms", "bytes"} & schema.operation_columns) or has_timings
    assert {"completed_at", "error_message", "metadata"} <= schema.operation_columns


def test_an_earlier_hubsync_unique_index_on_file_id_is_dropped(
    pg_cluster: PostgresCluster, pg_supabase_template: str
) -> None:
    project = make_project(pg_cluster, pg_supabase_template, "empty")
    apply_migrations(project.cluster, project.dbname)
    project.sql("CREATE UNIQUE INDEX file_metadata_file_id_key ON public.file_metadata (file_id)")
    apply_migrations(project.cluster, project.dbname)
    assert project.unique_indexes("file_metadata") == []


# --- HubSync's rows, shaped by the product's code ---------------------------


def hubsync_sync(project: Project, uid: str, count: int = SYNCED_FILES) -> list[str]:
    """What a sync of ``count`` files writes: objects, then file_metadata, the
    manifest and upload operations, each row built by sync.remotes.supabase.rows
    from the schema and object ids the views report. Returns the keys."""
    entries = []
    for i in range(count):
        data = f"file number {i}\n".encode()
        sha = sha_of(data)
        key = object_key(uid, sha, f"Notizen {i}.txt")
        project.store_object(BUCKET_FILES, key, len(data), uid)
        entries.append(
            ManifestEntry(
                device="laptop",
                root_id="docs",
                root_path="/home/u/Docs",
                relpath=f"Notizen/datei {i}.txt",
                sha256=sha,
                size=len(data),
                mtime_ns=1_700_000_000_000_000_000 + i,
                version=1,
                key=key,
                content_type="text/plain",
            )
        )
    with project.caller(uid) as me:
        schema = me.schema()
        keys = [e.key for e in entries]
        ids = me.object_ids(BUCKET_FILES, keys) if schema.needs_object_ids else {}
        metadata = [
            with_file_id(
                metadata_row(
                    uid, BUCKET_FILES, e.key, e.filename, e.size, e.content_type, e.sha256
                ),
                schema,
                ids.get(e.key),
            )
            for e in entries
        ]
        me.insert("file_metadata", metadata, ignore_duplicate_ids=True)
        # Another device (or a retry after a lost response) adds the same rows: no-ops.
        assert me.insert("file_metadata", metadata, ignore_duplicate_ids=True) == []
        me.insert("hubsync_manifest", [manifest_row(uid, e) for e in entries])
        operations = [
            operation_row(
                schema,
                uid,
                Operation(
                    "upload",
                    "completed",
                    key=e.key,
                    sha256=e.sha256,
                    bytes=e.size,
                    started_at="2026-12-03T06:00:00+00:00",
                    finished_at="2026-12-03T06:00:01+00:00",
                    duration_ms=1000,
                ),
                ids.get(e.key),
            )
            for e in entries
        ]
        me.insert("file_operations", operations, ignore_duplicate_ids=True)
        assert me.insert("file_operations", operations, ignore_duplicate_ids=True) == []
    return keys


def test_a_sync_writes_rows_valid_under_the_projects_schema(project: Project) -> None:
    apply_migrations(project.cluster, project.dbname)
    apply_migrations(project.cluster, project.dbname)
    uid = project.new_user()

    keys = hubsync_sync(project, uid)

    rows = project.sql(
        "SELECT m.file_id::text, m.path, o.id::text, m.filename, m.file_size, m.bucket_id"
        " FROM public.file_metadata m"
        " LEFT JOIN storage.objects o ON o.bucket_id = m.bucket_id AND o.name = m.path"
        " WHERE m.user_id = %s ORDER BY m.path",
        (uid,),
    )
    assert [r[1] for r in rows] == sorted(keys)
    for file_id, path, object_id, filename, size, bucket in rows:
        assert object_id is not None and bucket == BUCKET_FILES and filename and size > 0
        assert file_id == (object_id if project.file_id_type == "uuid" else path)
    operations = project.sql(
        "SELECT o.file_id::text, o.metadata, s.id::text, o.status, (s.metadata->>'size')::int"
        " FROM public.file_operations o"
        " JOIN storage.objects s ON s.name = o.metadata->>'storage_path'"
        " OR s.name = o.file_id::text"
        " OR s.id::text = o.file_id::text WHERE o.user_id = %s",
        (uid,),
    )
    assert len(operations) == SYNCED_FILES
    for file_id, metadata, object_id, status, size in operations:
        assert status == "completed" and metadata["sha256"]
        if project.file_id_type == "uuid":
            assert file_id == object_id and metadata["storage_path"]
        if project.kind != "empty":  # no timing columns: kept in metadata instead
            assert (metadata["duration_ms"], metadata["bytes"]) == (1000, size)
    assert project.sql("SELECT count(*) FROM public.hubsync_manifest") == [(SYNCED_FILES,)]


def test_exai_uploads_still_succeed_after_hubsync(project: Project) -> None:
    apply_migrations(project.cluster, project.dbname)
    uid = project.new_user()
    keys = hubsync_sync(project, uid, count=3)
    exai = ExaiUploader(project, uid)

    # A dedup hit on a file HubSync stored: EXAI copies HubSync's row.
    copy = exai.upload(b"file number 1\n", "copy of one.txt")
    assert copy["path"] == keys[1] and copy["file_size"] == len(b"file number 1\n")
    again = exai.upload(b"file number 1\n", "copy again.txt")
    assert again["file_id"] == copy["file_id"]  # a second row with the same file_id
    # A new upload, with its operation row tracked and completed.
    fresh = exai.upload(b"only EXAI has this\n", "fresh.txt")
    assert fresh["filename"] == "fresh.txt"
    completed = project.sql(
        "SELECT count(*) FROM public.file_operations WHERE user_id = %s AND status = 'completed'"
        " AND completed_at IS NOT NULL AND file_id IS NULL",
        (uid,),
    )
    assert completed == [(1,)]
    assert project.sql(
        "SELECT count(*) FROM public.file_metadata WHERE user_id = %s AND path = %s",
        (uid, keys[1]),
    ) == [(3,)]


def test_rls_isolates_a_second_user(project: Project) -> None:
    apply_migrations(project.cluster, project.dbname)
    alice, bob = project.new_user(), project.new_user()
    keys = hubsync_sync(project, alice, count=5)
    ExaiUploader(project, alice).upload(b"file number 2\n", "dedup.txt")

    with project.caller(bob) as b:
        for table in ("file_metadata", "file_operations", "hubsync_manifest"):
            assert b.select(f"SELECT * FROM public.{table}") == []
        assert b.object_ids(BUCKET_FILES, keys) == {}
        assert b.select("SELECT * FROM public.hubsync_storage_objects") == []
        stolen = with_file_id(
            metadata_row(alice, BUCKET_FILES, keys[0], "x.txt", 1, "text/plain", "a" * 64),
            b.schema(),
            None,
        )
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            b.insert("file_metadata", [stolen])
    with project.caller(alice) as a:
        assert len(a.object_ids(BUCKET_FILES, keys)) == 5
        assert len(a.select("SELECT * FROM public.file_metadata WHERE user_id = %s", (alice,))) == 6


def test_anon_reads_neither_view(project: Project) -> None:
    apply_migrations(project.cluster, project.dbname)
    with project.cluster.connect(project.dbname) as conn:
        conn.execute("SET ROLE anon")
        for view in ("hubsync_schema", "hubsync_storage_objects"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM public.{view}")
