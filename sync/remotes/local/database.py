"""What the parts of :class:`~sync.remotes.local.hub.LocalHub` that read and write
rows share: one connection, its lock and the thread it is used on."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sync.disk_space import disk_full
from sync.errors import TransientError

T = TypeVar("T")


class HubDatabase:
    """The hub's SQLite connection; :class:`LocalHub` opens it."""

    root: Path
    user_id: str
    device_name: str
    _db: sqlite3.Connection
    _db_lock: threading.Lock
    _db_pool: ThreadPoolExecutor

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction for a batch of rows: without it, sqlite3's autocommit mode
        commits each row of an ``executemany`` on its own (a WAL commit per row)."""
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # (a failed COMMIT leaves it open)
                    self._db.execute("ROLLBACK")
                raise

    async def _run_db(self, fn: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return fn()
            except sqlite3.Error as exc:  # locked by another writer, disk full, damaged...
                full = disk_full(exc, self.root, whose="hub")
                raise full or TransientError(f"the hub's database: {exc}") from None

        return await asyncio.get_running_loop().run_in_executor(self._db_pool, guarded)
