"""Finding files on the Supabase hub when the manifest is read in several pages.

PostgREST pages are LIMIT/OFFSET queries: unless their order is unique, Postgres
may order equal rows differently from one page to the next, so rows are read
twice and others never. A path whose newest version was skipped would then look
older than it is and drop out of the results.
"""

from __future__ import annotations

import psycopg

from sync.find import FindQuery
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.files import ROW_BATCH
from tests.fixtures.supabase import SupabaseUser

SHORT, LONG = {f"a{p:02}.txt": 6 for p in range(50)}, {f"b{p:02}.txt": 20 for p in range(45)}
"""1,200 versions of 95 paths (one batch of paths): the first page of 500 rows ends
among the version-6 rows, the newest of the ``SHORT`` paths. Over 1,000 rows, Postgres
sorts the first page (LIMIT 500) with a bounded heap and the next with a full sort,
which order equal versions differently."""


async def test_find_keeps_every_file_across_pages_of_versions(
    hub_remote: SupabaseRemote, supabase_database: str, supabase_user: SupabaseUser
) -> None:
    newest = SHORT | LONG
    assert ROW_BATCH == 500
    rows = [
        (supabase_user.uid, "laptop", "root-1", "/docs", path, f"{v:064x}", v)
        for path, count in newest.items()
        for v in range(1, count + 1)
    ]
    with psycopg.connect(supabase_database) as conn:
        conn.cursor().executemany(
            "insert into public.hubsync_manifest"
            " (user_id, device_id, root_id, root_path, rel_path, sha256, version)"
            " values (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    found = await hub_remote.find(FindQuery())
    assert {e.relpath: e.version for e in found} == newest
    assert len(found) == len(newest)
