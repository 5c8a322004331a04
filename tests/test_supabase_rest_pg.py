"""The test server's /rest/v1 on a real PostgreSQL: PostgREST's answers, the schema's rules.

Rows go through supabase-py (or raw HTTP where the wire matters) into the
migrated tables of the per-test database, under the caller's role and JWT
claims, so RLS, NOT NULL, CHECK and column types of the migrations decide.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import psycopg
import pytest
from postgrest import CountMethod
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client

from tests.supabase_server import SupabaseTestServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fixtures.postgres import PostgresCluster
    from tests.fixtures.supabase import SupabaseUser

pytest_plugins = ["tests.fixtures.supabase"]
pytestmark = pytest.mark.postgres


def manifest_row(rel: str, **extra: Any) -> dict[str, Any]:
    return {"device_id": "d1", "root_id": "r1", "rel_path": rel, "sha256": "ab" * 32, **extra}


def rows(response: Any) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], response.data)


@pytest.fixture
def bob(supabase_server: SupabaseTestServer, supabase_user_b: SupabaseUser) -> Iterator[Client]:
    with httpx.Client(timeout=30) as http:
        client = create_client(
            supabase_server.url,
            supabase_server.anon_key,
            ClientOptions(httpx_client=http, auto_refresh_token=False),
        )
        client.auth.sign_in_with_password(
            {"email": supabase_user_b.email, "password": supabase_user_b.password}
        )
        yield client


def rest(
    server: SupabaseTestServer,
    user: SupabaseUser,
    method: str,
    path: str,
    **kwargs: Any,
) -> httpx.Response:
    token = server.auth.access_token(user.uid)
    headers = {"apikey": server.anon_key, "Authorization": f"Bearer {token}"}
    headers.update(kwargs.pop("headers", {}))
    return httpx.request(method, f"{server.url}/rest/v1/{path}", headers=headers, **kwargs)


def test_rows_live_in_the_postgres_tables(
    supabase_server: SupabaseTestServer,
    supabase_database: str,
    supabase_client: Client,
    supabase_user: SupabaseUser,
) -> None:
    supabase_client.table("hubsync_manifest").insert(manifest_row("a.txt", size=3)).execute()
    with psycopg.connect(supabase_database) as conn:
        found = conn.execute(
            "select user_id::text, rel_path, size, recorded_at is not null"
            " from public.hubsync_manifest"
        ).fetchall()
    assert found == [(supabase_user.uid, "a.txt", 3, True)]  # user_id from auth.uid()


def test_rls_isolates_a_second_users_rows(
    supabase_server: SupabaseTestServer,
    supabase_client: Client,
    supabase_user: SupabaseUser,
    bob: Client,
) -> None:
    alice_rows = [manifest_row(f"a{i}.txt") for i in range(3)]
    supabase_client.table("hubsync_manifest").insert(alice_rows).execute()
    bob.table("hubsync_manifest").insert(manifest_row("b.txt")).execute()

    theirs = bob.table("hubsync_manifest").select("rel_path,user_id").execute()
    assert [r["rel_path"] for r in rows(theirs)] == ["b.txt"]
    asked = bob.table("hubsync_manifest").select("*").eq("user_id", supabase_user.uid).execute()
    assert asked.data == []
    touched = bob.table("hubsync_manifest").update({"size": 9}).eq("device_id", "d1").execute()
    assert [r["rel_path"] for r in rows(touched)] == ["b.txt"]
    gone = bob.table("hubsync_manifest").delete().eq("rel_path", "a0.txt").execute()
    assert gone.data == []
    with pytest.raises(APIError) as err:  # writing a row in someone else's name
        bob.table("file_operations").insert(
            {"operation_type": "upload", "user_id": supabase_user.uid}
        ).execute()
    assert err.value.code == "42501"
    assert 'violates row-level security policy for table "file_operations"' in str(
        err.value.message
    )
    mine = supabase_client.table("hubsync_manifest").select("rel_path,size").order("rel_path")
    assert rows(mine.execute()) == [{"rel_path": f"a{i}.txt", "size": 0} for i in range(3)]
    assert len(supabase_server.rest.snapshot("hubsync_manifest")) == 4


def test_rls_refusal_is_403_for_a_user_and_401_for_anon(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser, supabase_user_b: SupabaseUser
) -> None:
    foreign = {"operation_type": "upload", "user_id": supabase_user_b.uid}
    refused = rest(supabase_server, supabase_user, "POST", "file_operations", json=foreign)
    assert refused.status_code == 403
    assert refused.json()["code"] == "42501"
    anon = httpx.get(
        f"{supabase_server.url}/rest/v1/file_operations",
        headers={"apikey": supabase_server.anon_key},
    )
    assert anon.status_code == 401
    assert anon.json() == {
        "code": "42501",
        "details": None,
        "hint": None,
        "message": "permission denied for table file_operations",
    }


@pytest.mark.parametrize(
    ("table", "row", "code", "words"),
    [
        ("file_metadata", {"filename": "no file_id"}, "23502", 'column "file_id"'),
        ("file_operations", {"operation_type": "fly"}, "23514", "file_operations_operation_type"),
        ("hubsync_manifest", manifest_row("a", size="big"), "22P02", 'type bigint: "big"'),
        ("hubsync_manifest", manifest_row("a", deleted="maybe"), "22P02", "boolean"),
        ("file_operations", {"operation_type": "upload", "user_id": "x"}, "22P02", "uuid"),
        ("hubsync_manifest", manifest_row("a", recorded_at="yesterday-ish"), "22007", "time"),
    ],
)
def test_a_row_the_schema_rejects_is_a_postgrest_400(
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    table: str,
    row: dict[str, Any],
    code: str,
    words: str,
) -> None:
    answer = rest(supabase_server, supabase_user, "POST", table, json=row)
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"code", "details", "hint", "message"}
    assert body["code"] == code and words in body["message"], body
    assert supabase_server.rest.snapshot(table) == []


def test_unknown_tables_columns_and_duplicates_answer_as_postgrest(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    missing = rest(supabase_server, supabase_user, "GET", "nope")
    assert missing.status_code == 404 and missing.json()["code"] == "PGRST205"
    bogus = rest(supabase_server, supabase_user, "GET", "file_metadata", params={"bogus": "eq.1"})
    assert bogus.status_code == 400
    assert bogus.json()["message"] == "column file_metadata.bogus does not exist"
    row = {"device_id": "laptop", "name": "Laptop"}
    assert (
        rest(supabase_server, supabase_user, "POST", "hubsync_devices", json=row).status_code == 201
    )
    again = rest(supabase_server, supabase_user, "POST", "hubsync_devices", json=row)
    assert again.status_code == 409
    assert again.json()["code"] == "23505"
    # Under RLS PostgreSQL keeps the key's values out of the error (no "Key (...)=...").
    assert again.json()["details"] is None
    assert again.json()["message"] == (
        'duplicate key value violates unique constraint "hubsync_devices_pkey"'
    )
    no_target = rest(
        supabase_server,
        supabase_user,
        "POST",
        "hubsync_manifest",
        params={"on_conflict": "rel_path"},
        headers={"Prefer": "resolution=merge-duplicates"},
        json=manifest_row("a"),
    )
    assert no_target.status_code == 400 and no_target.json()["code"] == "42P10"


def test_upsert_on_conflict_merges_or_ignores(supabase_client: Client) -> None:
    table = supabase_client.table("hubsync_manifest")
    conflict = "user_id,device_id,root_id,rel_path,version"
    first = rows(table.insert(manifest_row("a", size=1)).execute())[0]
    own = {**manifest_row("a", size=2), "user_id": first["user_id"]}
    merged = rows(table.upsert(own, on_conflict=conflict).execute())
    assert [(r["id"], r["size"]) for r in merged] == [(first["id"], 2)]
    ignored = table.upsert({**own, "size": 3}, on_conflict=conflict, ignore_duplicates=True)
    assert ignored.execute().data == []
    batch = [own | {"size": 4}, own | {"rel_path": "b", "size": 5}]
    table.upsert(batch, on_conflict=conflict).execute()
    got = table.select("rel_path,size").order("rel_path").execute()
    assert rows(got) == [{"rel_path": "a", "size": 4}, {"rel_path": "b", "size": 5}]
    with pytest.raises(APIError) as err:  # one statement may not update a row twice
        table.upsert([own, own], on_conflict=conflict).execute()
    assert err.value.code == "21000"


def test_metadata_upsert_touches_updated_at_through_the_trigger(
    supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    table = supabase_client.table("file_metadata")
    # file_metadata has no unique file_id (EXAI adds a row per dedup hit): upsert by id.
    row = {"id": str(uuid.uuid4()), "file_id": f"{supabase_user.uid}/x", "file_size": 1}
    first = rows(table.upsert(row, on_conflict="id").execute())[0]
    second = rows(table.upsert({**row, "file_size": 2}, on_conflict="id").execute())[0]
    assert second["id"] == first["id"] and second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]


def test_count_order_limit_and_range(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    table = supabase_client.table("hubsync_manifest")
    sizes = [5, 1, 4, 2, 3]
    table.insert(
        [
            manifest_row(f"f{i}", size=s, storage_key=None if s == 4 else f"k{i}")
            for i, s in enumerate(sizes)
        ]
    ).execute()
    page = table.select("size", count=CountMethod.exact).order("size", desc=True).limit(2).execute()
    assert page.data == [{"size": 5}, {"size": 4}] and page.count == 5
    nulls = table.select("size").order("storage_key", desc=False, nullsfirst=True).limit(1)
    assert nulls.execute().data == [{"size": 4}]
    both = table.select("size").order("deleted").order("size").range(1, 3).execute()
    assert both.data == [{"size": 2}, {"size": 3}, {"size": 4}]
    answer = rest(
        supabase_server,
        supabase_user,
        "GET",
        "hubsync_manifest",
        params={"select": "name:rel_path", "order": "rel_path.desc"},
        headers={"Range": "0-1", "Prefer": "count=exact"},
    )
    assert answer.status_code == 206
    assert answer.headers["Content-Range"] == "0-1/5"
    assert answer.json() == [{"name": "f4"}, {"name": "f3"}]
    counted = table.select("id", count=CountMethod.exact).gt("size", 2).execute()
    assert counted.count == 3
    beyond = rest(
        supabase_server,
        supabase_user,
        "GET",
        "hubsync_manifest",
        params={"offset": "9"},
        headers={"Prefer": "count=exact"},
    )
    assert beyond.status_code == 416 and beyond.json()["code"] == "PGRST103"


def test_filters_and_logic_trees_run_in_sql(supabase_client: Client) -> None:
    table = supabase_client.table("hubsync_manifest")
    names = ["a.txt", "b.TXT", "c,d.md", "e.md"]
    table.insert([manifest_row(n, size=i) for i, n in enumerate(names)]).execute()

    def picked(query: Any) -> list[str]:
        return sorted(r["rel_path"] for r in rows(query.execute()))

    assert picked(table.select("rel_path").ilike("rel_path", "%.txt")) == ["a.txt", "b.TXT"]
    assert picked(table.select("rel_path").in_("rel_path", ["c,d.md", "e.md"])) == [
        "c,d.md",
        "e.md",
    ]
    assert picked(table.select("rel_path").not_.like("rel_path", "*.md")) == ["a.txt", "b.TXT"]
    tree = table.select("rel_path").or_('size.eq.0,and(size.gte.2,rel_path.neq."c,d.md")')
    assert picked(tree) == ["a.txt", "e.md"]
    assert picked(table.select("rel_path").is_("storage_key", "null").lte("size", 1)) == [
        "a.txt",
        "b.TXT",
    ]
    with pytest.raises(APIError) as err:
        table.select("rel_path").eq("size", "ten").execute()
    assert err.value.code == "22P02"
    # Values are query parameters, never SQL text.
    hostile = "a.txt'; delete from public.hubsync_manifest; --"
    assert table.select("rel_path").eq("rel_path", hostile).execute().data == []
    assert picked(table.select("rel_path").in_("rel_path", [hostile, "a.txt"])) == ["a.txt"]
    assert len(rows(table.select("id").execute())) == len(names)


def test_update_and_delete_need_a_filter_and_return_what_they_did(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser, supabase_client: Client
) -> None:
    table = supabase_client.table("hubsync_manifest")
    table.insert([manifest_row("a"), manifest_row("b")]).execute()
    whole = rest(supabase_server, supabase_user, "PATCH", "hubsync_manifest", json={"size": 1})
    assert whole.status_code == 400
    assert whole.json()["message"] == "UPDATE requires a WHERE clause"
    minimal = rest(
        supabase_server,
        supabase_user,
        "PATCH",
        "hubsync_manifest",
        params={"rel_path": "eq.a"},
        headers={"Prefer": "return=minimal"},
        json={"size": 7},
    )
    assert minimal.status_code == 204 and minimal.content == b""
    deleted = table.delete().eq("size", 7).execute()
    assert [r["rel_path"] for r in rows(deleted)] == ["a"]
    assert [r["rel_path"] for r in supabase_server.rest.snapshot("hubsync_manifest")] == ["b"]


def test_standalone_server_uses_and_migrates_the_given_database(
    pg_cluster: PostgresCluster, pg_supabase_template: str
) -> None:
    """``python -m tests.supabase_server --database-url URL``: rows land in that database."""
    name = pg_cluster.create_database(template=pg_supabase_template)  # not migrated yet
    url = pg_cluster.conninfo(name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "tests.supabase_server", "--port", str(port)]
    command += ["--database-url", url, "--user", "dora@example.com:pw-dora-1"]
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(3))
            uid = proc.stdout.readline().strip().rpartition("uid=")[2]
            with httpx.Client(timeout=30) as http:
                client = create_client(
                    lines["SUPABASE_URL"],
                    lines["SUPABASE_ANON_KEY"],
                    ClientOptions(httpx_client=http, auto_refresh_token=False),
                )
                client.auth.sign_in_with_password(
                    {"email": "dora@example.com", "password": "pw-dora-1"}
                )
                client.table("hubsync_devices").insert({"device_id": "laptop"}).execute()
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
    with psycopg.connect(url) as conn:
        found = conn.execute("select user_id::text, device_id from public.hubsync_devices")
        assert found.fetchall() == [(uid, "laptop")]
        users = conn.execute("select id::text, email from auth.users").fetchall()
        assert users == [(uid, "dora@example.com")]
