"""The PostgreSQL database behind /rest/v1: a given one, or the server's own.

``apply_migrations`` runs the project's migrations (resources/supabase/
migrations, idempotent) as ``supabase db push`` would. :class:`OwnDatabase`
starts a private cluster with the test fixture's code
(tests/fixtures/postgres.py), prepares a database like an empty Supabase
project (tests/pg_bootstrap.sql) and migrates it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg

from sync.remotes.supabase.schema import migration_files
from tests.fixtures.postgres import BOOTSTRAP_SQL, PostgresCluster, find_bindir


def apply_migrations(conninfo: str) -> None:
    """Apply each migration file in order, each as one script."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for path in migration_files():
            conn.execute(path.read_text(encoding="utf-8").encode())


class OwnDatabase:
    """A private cluster with one migrated database; :meth:`close` removes it all."""

    def __init__(self) -> None:
        self._cluster = PostgresCluster(find_bindir(), Path(tempfile.mkdtemp(prefix="hubsync-pg-")))
        try:
            self._cluster.init()
            self._cluster.start()
            name = self._cluster.create_database()
            self._cluster.run_sql(name, BOOTSTRAP_SQL.read_text(encoding="utf-8"))
            self.url = self._cluster.conninfo(name)
            apply_migrations(self.url)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._cluster.stop()
        shutil.rmtree(self._cluster.base, ignore_errors=True)
