"""The journal's connection and what every part of it shares: transactions, the meta
table, the device id, and the cached stat indexes with their snapshot file."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sync.journal.schema import ILLEGAL_TRANSITION, MIGRATIONS, SCHEMA_VERSION, install_transitions
from sync.journal.sqlite_db import Database
from sync.journal.stat_index import StatIndex
from sync.journal.stat_snapshot import read as read_snapshot
from sync.journal.states import IllegalTransition

log = logging.getLogger("hubsync.journal")


class JournalStore:
    """One SQLite connection (WAL, ``synchronous=NORMAL``), migrated when opened."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db = Database(conn)
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA temp_store=MEMORY")
        self._in_tx = False
        self._lock = threading.RLock()
        self._stat_cache: dict[str, tuple[int, StatIndex]] = {}
        self._migrate()
        self._snapshot_path = path.with_name(path.name + ".stat")
        generation = self._files_generation()
        self._snapshot = read_snapshot(self._snapshot_path, generation)
        self._snapshot_generation = None if self._snapshot is None else generation

    # -- plumbing -----------------------------------------------------------------

    def _migrate(self) -> None:
        with self.transaction():
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            current = int(self.get_meta("schema_version") or 0)
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"journal {self.path} has schema {current}, newer than this HubSync "
                    f"({SCHEMA_VERSION}); upgrade HubSync"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](self._db)
                self.set_meta("schema_version", str(version))
            install_transitions(self._conn)
            if self.get_meta("device_id") is None:
                self.set_meta("device_id", self._kept_device_id() or uuid.uuid4().hex)
        self._keep_device_id()

    @property
    def _device_file(self) -> Path:
        """The device's id kept beside the journal: a journal moved aside (the advised
        recovery) and made anew is still this device, whose history the hub keeps."""
        return self.path.with_name(self.path.name + ".device")

    def _kept_device_id(self) -> str | None:
        try:
            text = self._device_file.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if len(text) == 32 and text.isalnum() else None

    def _keep_device_id(self) -> None:
        if self._kept_device_id() != self.get_meta("device_id"):
            try:
                self._device_file.write_text(f"{self.get_meta('device_id')}\n", "ascii")
            except OSError:
                log.warning("could not keep the device id beside %s", self.path)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit; nested calls join the outer transaction.

        Never hold one across an ``await``: the lock only guards against the
        few calls made from worker threads (resumable-upload state).
        """
        with self._lock:
            if self._in_tx:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (the disk is full) leaves the transaction open: roll it
                # back, so that the journal stays as it was and the next one can begin.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._in_tx = False

    def _change_states(self, sql: str, params: Iterable[Sequence[object]]) -> int:
        """Run a write that changes file states (once per parameter row); the
        triggers' refusal of a move comes out as :class:`IllegalTransition`."""
        try:
            return self._conn.executemany(sql, params).rowcount
        except sqlite3.IntegrityError as exc:
            if ILLEGAL_TRANSITION not in str(exc):
                raise
            raise IllegalTransition(
                "a write moved a file between states that do not follow one another"
                " (see sync/journal/states.py)"
            ) from exc

    def _files_generation(self) -> int:
        return int(self._conn.execute("SELECT n FROM files_generation").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    @property
    def device_id(self) -> str:
        value = self.get_meta("device_id")
        assert value is not None
        return value

    def metrics_connection(self) -> sqlite3.Connection:
        """The connection, for the agent's metrics store alone: its rows (the ``metrics``
        table made here) join the journal's open transaction."""
        return self._conn

    def integrity_check(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
