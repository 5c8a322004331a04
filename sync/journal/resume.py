"""Resumable-upload state (TUS URL and offset) kept in the journal across restarts."""

from __future__ import annotations

from sync.journal.store import JournalStore


class ResumeJournal(JournalStore):
    def resume_get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM resume WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def resume_set(self, key: str, value: str) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO resume(key, value) VALUES(?, ?)", (key, value)
            )

    def resume_remove(self, key: str) -> None:
        with self.transaction():
            self._conn.execute("DELETE FROM resume WHERE key=?", (key,))


class JournalResumeStore:
    """The journal as a resume store (``get_item``, ``set_item``, ``remove_item``)."""

    def __init__(self, journal: ResumeJournal) -> None:
        self._journal = journal

    def get_item(self, key: str) -> str | None:
        return self._journal.resume_get(key)

    def set_item(self, key: str, value: str) -> None:
        self._journal.resume_set(key, value)

    def remove_item(self, key: str) -> None:
        self._journal.resume_remove(key)
