"""The shipped Supabase migrations on a real PostgreSQL.

Each test works on its own copy of a database shaped like an empty Supabase
project (tests/pg_bootstrap.sql) and acts as PostgREST / the Storage server
would: ``SET ROLE`` to anon, authenticated or service_role plus the JWT claims
in ``request.jwt.claims``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import errors, sql

from sync.remotes.supabase.schema import migration_files, schema_sql

if TYPE_CHECKING:
    from tests.fixtures.postgres import PostgresCluster

pytest_plugins = ["tests.fixtures.postgres"]
pytestmark = pytest.mark.postgres

BUCKETS = ("user-files", "results", "generated-files")
SHA = "ab" + "c" * 62


@pytest.fixture(scope="module")
def migrated_template(pg_cluster: PostgresCluster, pg_supabase_template: str) -> str:
    name = pg_cluster.create_database(template=pg_supabase_template)
    apply_migrations(pg_cluster, name)
    return name


@pytest.fixture
def db(pg_cluster: PostgresCluster, migrated_template: str) -> str:
    return pg_cluster.create_database(template=migrated_template)


def apply_migrations(cluster: PostgresCluster, dbname: str) -> None:
    """Apply each file in order, as ``supabase db push`` does."""
    for path in migration_files():
        cluster.run_sql(dbname, path.read_text(encoding="utf-8"))


@dataclass
class Actor:
    """One API caller: a connection switched to a Supabase role and JWT."""

    conn: psycopg.Connection
    uid: str | None

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self.conn.execute(insert_sql(table, row), list(row.values()))

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql.SQL("SELECT * FROM {}").format(qualified(table))).fetchall()

    def count(self, table: str, where: str = "true", params: tuple[Any, ...] = ()) -> int:
        query = sql.SQL("SELECT count(*) FROM {} WHERE ").format(qualified(table)) + sql.SQL(where)
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement; the number of rows it touched."""
        return self.conn.execute(query.encode(), params).rowcount


@contextmanager
def acting(
    cluster: PostgresCluster, dbname: str, role: str, uid: str | None = None
) -> Iterator[Actor]:
    claims: dict[str, str] = {"role": role}
    if uid is not None:
        claims["sub"] = uid
    with cluster.connect(dbname) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)", [json.dumps(claims)])
        yield Actor(conn, uid)


def qualified(table: str) -> sql.Composed:
    schema, _, name = table.rpartition(".")
    return sql.SQL("{}.{}").format(sql.Identifier(schema or "public"), sql.Identifier(name))


def insert_sql(table: str, row: dict[str, Any]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        qualified(table),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
    )


def new_uid() -> str:
    return str(uuid.uuid4())


# A row of each table as the sync client writes it, the column a later write
# changes, and the upsert target (PostgREST on_conflict) where there is one.
def table_row(table: str, uid: str, tag: str = "a") -> dict[str, Any]:
    key = f"{uid}/{SHA[:2]}/{SHA}/notes-{tag}.txt"
    rows: dict[str, dict[str, Any]] = {
        "file_metadata": {
            "file_id": key,
            "filename": f"notes {tag}.txt",
            "file_size": 12,
            "content_type": "text/plain",
            "bucket_id": "user-files",
            "path": key,
            "sha256_hash": SHA,
        },
        "file_operations": {
            "file_id": key,
            "operation_type": "upload",
            "status": "completed",
            "bytes": 12,
            "duration_ms": 5,
            "metadata": json.dumps({"sha256": SHA}),
        },
        "hubsync_devices": {"device_id": f"laptop-{tag}", "name": "Laptop"},
        "hubsync_manifest": {
            "device_id": "laptop",
            "root_id": "docs",
            "root_path": "/home/u/Docs",
            "rel_path": f"Notizen/übersicht {tag}.txt",
            "sha256": SHA,
            "size": 12,
            "mtime_ns": 1_700_000_000_000_000_000,
            "version": 1,
            "storage_key": key,
            "content_type": "text/plain",
        },
    }
    return rows[table]


CHANGE = {
    "file_metadata": "filename = 'renamed.txt'",
    "file_operations": "status = 'failed'",
    "hubsync_devices": "name = 'Renamed'",
    "hubsync_manifest": "deleted = true",
}
TABLES = sorted(CHANGE)
UPSERT_TARGETS = {
    "hubsync_devices": ("user_id", "device_id"),
    "hubsync_manifest": ("user_id", "device_id", "root_id", "rel_path", "version"),
}


def schema_snapshot(cluster: PostgresCluster, dbname: str) -> str:
    dump = subprocess.run(
        [
            str(cluster.bindir / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "-d",
            cluster.conninfo(dbname),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    # Newer pg_dump fences the script with a random \restrict key.
    fence = ("\\restrict", "\\unrestrict")
    dump = "\n".join(line for line in dump.splitlines() if not line.startswith(fence))
    with cluster.connect(dbname) as conn:
        buckets = conn.execute(
            "SELECT id, name, public FROM storage.buckets ORDER BY id"
        ).fetchall()
    return dump + repr(buckets)


# --- the migration files -------------------------------------------------


def test_migration_files_follow_supabase_cli_naming() -> None:
    files = migration_files()
    assert [p.name for p in files] == sorted(p.name for p in files)
    assert len(files) >= 2
    script = schema_sql()
    for path in files:
        assert path.read_text(encoding="utf-8").strip() in script


def test_schema_loader_does_not_import_supabase_py() -> None:
    code = (
        "import sys; from sync.remotes.supabase.schema import schema_sql; schema_sql(); "
        "sys.exit(int(any(m.split('.')[0] in ('supabase', 'storage3', 'postgrest')"
        " for m in sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


def test_migrations_apply_twice_and_leave_the_same_schema(
    pg_cluster: PostgresCluster, pg_supabase_template: str
) -> None:
    dbname = pg_cluster.create_database(template=pg_supabase_template)
    apply_migrations(pg_cluster, dbname)
    first = schema_snapshot(pg_cluster, dbname)
    pg_cluster.run_sql(dbname, schema_sql())  # the SQL-editor path, on top
    assert schema_snapshot(pg_cluster, dbname) == first
    for table in TABLES:
        assert f"CREATE TABLE public.{table} " in first
    assert (
        "[('generated-files', 'generated-files', False), ('results', 'results', False), "
        "('user-files', 'user-files', False)]" in first
    )


def test_migrations_keep_rows_and_complete_an_existing_exai_table(
    pg_cluster: PostgresCluster, pg_supabase_template: str
) -> None:
    dbname = pg_cluster.create_database(template=pg_supabase_template)
    pg_cluster.run_sql(
        dbname,
        """
        CREATE TABLE public.file_metadata (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            file_id text NOT NULL UNIQUE,
            user_id uuid NOT NULL,
            filename text, file_size bigint, content_type text,
            created_at timestamptz DEFAULT now());
        INSERT INTO public.file_metadata (file_id, user_id, filename)
        VALUES ('u/a.txt', 'f0f0f0f0-0000-4000-8000-000000000001', 'a.txt');
    """,
    )
    apply_migrations(pg_cluster, dbname)
    with pg_cluster.connect(dbname) as conn:
        row = conn.execute(
            "SELECT filename, bucket_id, sha256_hash, tags, access_count, updated_at IS NOT NULL"
            " FROM public.file_metadata"
        ).fetchall()
    assert row == [("a.txt", "user-files", None, [], 0, True)]


# --- row level security on the tables ------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_owner_reads_and_writes_own_rows(pg_cluster: PostgresCluster, db: str, table: str) -> None:
    uid = new_uid()
    with acting(pg_cluster, db, "authenticated", uid) as a:
        a.insert(table, table_row(table, uid))  # user_id comes from auth.uid()
        assert a.count(table, "user_id = %s", (uid,)) == 1
        assert a.execute(f"UPDATE public.{table} SET {CHANGE[table]}") == 1
        assert a.count(table, CHANGE[table].replace(" = ", " IS NOT DISTINCT FROM ")) == 1
        assert a.execute(f"DELETE FROM public.{table}") == 1
        assert a.count(table) == 0


@pytest.mark.parametrize("table", TABLES)
def test_other_user_can_neither_read_nor_write_foreign_rows(
    pg_cluster: PostgresCluster, db: str, table: str
) -> None:
    uid_a, uid_b = new_uid(), new_uid()
    with acting(pg_cluster, db, "authenticated", uid_a) as a:
        a.insert(table, table_row(table, uid_a))
        before = a.rows(table)
    with acting(pg_cluster, db, "authenticated", uid_b) as b:
        assert b.rows(table) == []
        assert b.execute(f"UPDATE public.{table} SET {CHANGE[table]}") == 0
        assert b.execute(f"UPDATE public.{table} SET user_id = %s", (uid_b,)) == 0
        assert b.execute(f"DELETE FROM public.{table}") == 0
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            b.insert(table, {**table_row(table, uid_a, "b"), "user_id": uid_a})
        # Nor can B hand a row of their own over to A.
        b.insert(table, table_row(table, uid_b, "b"))
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            b.execute(f"UPDATE public.{table} SET user_id = %s", (uid_a,))
    with acting(pg_cluster, db, "authenticated", uid_a) as a:
        assert a.rows(table) == before


@pytest.mark.parametrize("table", TABLES)
def test_anon_gets_no_access(pg_cluster: PostgresCluster, db: str, table: str) -> None:
    uid = new_uid()
    with acting(pg_cluster, db, "authenticated", uid) as a:
        a.insert(table, table_row(table, uid))
    with acting(pg_cluster, db, "anon") as anon:
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            anon.rows(table)
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            anon.insert(table, {**table_row(table, uid, "x"), "user_id": uid})


@pytest.mark.parametrize("table", TABLES)
def test_service_role_reads_and_writes_every_users_rows(
    pg_cluster: PostgresCluster, db: str, table: str
) -> None:
    uid_a, uid_b = new_uid(), new_uid()
    for uid in (uid_a, uid_b):
        with acting(pg_cluster, db, "authenticated", uid) as user:
            user.insert(table, table_row(table, uid))
    with acting(pg_cluster, db, "service_role") as service:
        assert service.count(table) == 2
        service.insert(table, {**table_row(table, uid_a, "s"), "user_id": uid_a})
        assert service.count(table, "user_id = %s", (uid_a,)) == 2
        assert service.execute(f"UPDATE public.{table} SET {CHANGE[table]}") == 3
        assert service.execute(f"DELETE FROM public.{table} WHERE user_id = %s", (uid_b,)) == 1
    with acting(pg_cluster, db, "authenticated", uid_b) as b:
        assert b.count(table) == 0


def test_authenticated_without_a_user_id_in_the_token_cannot_insert(
    pg_cluster: PostgresCluster, db: str
) -> None:
    with (
        acting(pg_cluster, db, "authenticated") as nobody,
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        nobody.insert("hubsync_manifest", table_row("hubsync_manifest", new_uid()))


# --- constraints the sync client relies on -------------------------------


@pytest.mark.parametrize("table", sorted(UPSERT_TARGETS))
def test_upsert_targets_of_the_sync_client_exist(
    pg_cluster: PostgresCluster, db: str, table: str
) -> None:
    uid = new_uid()
    target = UPSERT_TARGETS[table]
    with acting(pg_cluster, db, "authenticated", uid) as a:
        for size in (12, 34):  # the same row twice, as PostgREST upserts it
            row = {**table_row(table, uid), "user_id": uid}
            if table == "hubsync_manifest":
                row["size"] = size
            else:
                row["name"] = f"Laptop {size}"
            query = insert_sql(table, row) + sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                sql.SQL(", ").join(map(sql.Identifier, target)),
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(col))
                    for col in row
                    if col not in target
                ),
            )
            a.conn.execute(query, list(row.values()))
        assert a.count(table) == 1
        changed = {
            "hubsync_manifest": "size = 34",
            "hubsync_devices": "name = 'Laptop 34'",
        }[table]
        assert a.count(table, changed) == 1


def test_file_metadata_takes_another_row_for_the_same_file_id(
    pg_cluster: PostgresCluster, db: str
) -> None:
    """The EXAI server adds a row per dedup hit: nothing may make file_id unique."""
    uid = new_uid()
    row = table_row("file_metadata", uid)
    with acting(pg_cluster, db, "authenticated", uid) as a:
        a.insert("file_metadata", row)
        a.insert("file_metadata", {**row, "filename": "the same content.txt"})
        assert a.count("file_metadata", "file_id = %s", (row["file_id"],)) == 2


def test_manifest_keeps_every_version_but_rejects_a_duplicate(
    pg_cluster: PostgresCluster, db: str
) -> None:
    uid = new_uid()
    with acting(pg_cluster, db, "authenticated", uid) as a:
        row = table_row("hubsync_manifest", uid)
        a.insert("hubsync_manifest", row)
        a.insert("hubsync_manifest", {**row, "version": 2, "deleted": True})
        with pytest.raises(errors.UniqueViolation):
            a.insert("hubsync_manifest", row)
        # Another device may hold the same path.
        a.insert("hubsync_manifest", {**row, "device_id": "desktop"})
        assert a.count("hubsync_manifest") == 3


def test_file_operations_accept_only_known_kinds_and_states(
    pg_cluster: PostgresCluster, db: str
) -> None:
    uid = new_uid()
    row = table_row("file_operations", uid)
    with acting(pg_cluster, db, "authenticated", uid) as a:
        for kind in ("upload", "download", "process", "delete", "generate"):
            a.insert("file_operations", {**row, "operation_type": kind})
        for status in ("pending", "processing", "completed", "failed"):
            a.insert("file_operations", {**row, "status": status})
        with pytest.raises(errors.CheckViolation):
            a.insert("file_operations", {**row, "operation_type": "rename"})
        with pytest.raises(errors.CheckViolation):
            a.insert("file_operations", {**row, "status": "done"})
        assert a.count("file_operations") == 9


def test_updated_at_is_set_by_the_trigger(pg_cluster: PostgresCluster, db: str) -> None:
    uid = new_uid()
    old = "2000-01-01 00:00:00+00"
    with acting(pg_cluster, db, "authenticated", uid) as a:
        a.insert(
            "file_metadata",
            {**table_row("file_metadata", uid), "created_at": old, "updated_at": old},
        )
        a.execute("UPDATE public.file_metadata SET filename = 'b.txt', updated_at = %s", (old,))
        row = a.conn.execute(
            "SELECT created_at = %s::timestamptz, updated_at > now() - interval '1 minute'"
            " FROM public.file_metadata",
            [old],
        ).fetchone()
    assert row == (True, True)


# --- storage.objects policies ---------------------------------------------


def object_row(bucket: str, name: str) -> dict[str, Any]:
    return {"bucket_id": bucket, "name": name, "metadata": json.dumps({"size": 12})}


@pytest.mark.parametrize("bucket", BUCKETS)
def test_storage_owner_works_under_own_folder_only(
    pg_cluster: PostgresCluster, db: str, bucket: str
) -> None:
    uid = new_uid()
    own = f"{uid}/{SHA[:2]}/{SHA}/notes.txt"
    with acting(pg_cluster, db, "authenticated", uid) as a:
        a.insert("storage.objects", object_row(bucket, own))
        assert a.count("storage.objects", "name = %s", (own,)) == 1
        assert a.execute("UPDATE storage.objects SET user_metadata = '{}'") == 1
        assert a.execute("DELETE FROM storage.objects") == 1
        for name in ("notes.txt", f"shared/{uid}/notes.txt", f"{new_uid()}/notes.txt"):
            with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
                a.insert("storage.objects", object_row(bucket, name))


def test_storage_policies_cover_only_hubsync_buckets(pg_cluster: PostgresCluster, db: str) -> None:
    uid = new_uid()
    with pg_cluster.connect(db) as admin:
        admin.execute("INSERT INTO storage.buckets (id, name) VALUES ('avatars', 'avatars')")
    with (
        acting(pg_cluster, db, "authenticated", uid) as a,
        pytest.raises(errors.InsufficientPrivilege, match="row-level security"),
    ):
        a.insert("storage.objects", object_row("avatars", f"{uid}/me.png"))


def test_storage_other_user_can_neither_read_nor_write_foreign_objects(
    pg_cluster: PostgresCluster, db: str
) -> None:
    uid_a, uid_b = new_uid(), new_uid()
    key_a = f"{uid_a}/{SHA[:2]}/{SHA}/notes.txt"
    with acting(pg_cluster, db, "authenticated", uid_a) as a:
        for bucket in BUCKETS:
            a.insert("storage.objects", object_row(bucket, key_a))
        before = a.rows("storage.objects")
    with acting(pg_cluster, db, "authenticated", uid_b) as b:
        assert b.rows("storage.objects") == []
        assert b.execute("UPDATE storage.objects SET user_metadata = '{\"x\": 1}'") == 0
        assert b.execute("UPDATE storage.objects SET name = %s || substr(name, 37)", (uid_b,)) == 0
        assert b.execute("DELETE FROM storage.objects") == 0
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            b.insert("storage.objects", object_row("user-files", f"{uid_a}/zz/other.txt"))
        # Moving an own object into A's folder is refused as well.
        b.insert("storage.objects", object_row("user-files", f"{uid_b}/zz/mine.txt"))
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            b.execute("UPDATE storage.objects SET name = %s", (f"{uid_a}/zz/mine.txt",))
    with acting(pg_cluster, db, "authenticated", uid_a) as a:
        assert a.rows("storage.objects") == before
    with acting(pg_cluster, db, "anon") as anon:
        assert anon.rows("storage.objects") == []
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            anon.insert("storage.objects", object_row("user-files", f"{uid_a}/zz/anon.txt"))
    with acting(pg_cluster, db, "service_role") as service:
        assert service.count("storage.objects") == 4
        service.insert("storage.objects", object_row("results", f"{uid_a}/r/answer.md"))
        assert (
            service.execute("DELETE FROM storage.objects WHERE name LIKE %s", (f"{uid_b}/%",)) == 1
        )
