"""``public.hubsync_record_reads`` (the reads migration) on a real PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.test_migrations_postgres import acting, db, migrated_template, new_uid

if TYPE_CHECKING:
    from tests.fixtures.postgres import PostgresCluster

pytest_plugins = ["tests.fixtures.postgres"]
pytestmark = pytest.mark.postgres
__all__ = ["db", "migrated_template"]

COUNT = "SELECT access_count, last_accessed IS NOT NULL FROM public.file_metadata WHERE path = %s"
CALL = "SELECT public.hubsync_record_reads('user-files', %s::text[])"


def test_reads_raise_access_count_of_own_rows_only(pg_cluster: PostgresCluster, db: str) -> None:
    me, other = new_uid(), new_uid()
    for uid, path in ((me, f"{me}/ab/x/a.md"), (other, f"{other}/ab/x/b.md")):
        with acting(pg_cluster, db, "authenticated", uid) as actor:
            actor.insert(
                "file_metadata",
                {"file_id": path, "path": path, "user_id": uid, "bucket_id": "user-files"},
            )
    mine, theirs = f"{me}/ab/x/a.md", f"{other}/ab/x/b.md"
    with acting(pg_cluster, db, "authenticated", me) as actor:
        touched = actor.conn.execute(CALL, [[mine, mine, theirs]]).fetchone()
        assert touched == (1,)
        assert actor.conn.execute(COUNT, [mine]).fetchone() == (2, True)
    with acting(pg_cluster, db, "service_role") as actor:
        assert actor.conn.execute(COUNT, [theirs]).fetchone() == (0, False)
    with acting(pg_cluster, db, "anon") as actor, pytest.raises(Exception, match="permission"):
        actor.conn.execute(CALL, [[mine]])
