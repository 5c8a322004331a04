"""Which hub each name meant when last opened, and the blobs known to be in a hub."""

from __future__ import annotations

from collections.abc import Iterable

from sync.journal.files import FilesJournal
from sync.journal.records import Blob
from sync.journal.states import FileState

_S = FileState


class HubsJournal(FilesJournal):
    def hub_seen(self, hub: str) -> tuple[str | None, str | None]:
        """(id, folder) of the hub ``hub`` was last opened as; (None, None) if never."""
        return self.get_meta(f"hub.{hub}.id"), self.get_meta(f"hub.{hub}.path")

    def remember_hub(self, hub: str, hub_id: str, folder: str) -> None:
        with self.transaction():
            self.set_meta(f"hub.{hub}.id", hub_id)
            self.set_meta(f"hub.{hub}.path", folder)

    def hub_in_use(self, hub: str) -> bool:
        """Whether this journal put anything in ``hub``: a blob, or a file recorded there."""
        found = self._conn.execute(
            """SELECT 1 FROM blobs WHERE hub=:hub
               UNION ALL
               SELECT 1 FROM files WHERE sha256 IS NOT NULL
                 AND root_id IN (SELECT id FROM roots WHERE hub=:hub)
               LIMIT 1""",
            {"hub": hub},
        ).fetchone()
        return found is not None

    def rebase_hub(self, hub: str, hub_id: str, where: str) -> int:
        """``hub`` is now the hub ``hub_id``: forget what the old one held, send every
        file mirrored to it back to seen so the next pass uploads it there, and
        remember the new one, all at once. Returns how many files will go up.

        A deletion held for the old hub has nothing to delete in the new one: the
        file is gone, so it is marked deleted (its versions stay in the history).
        """
        in_hub = "root_id IN (SELECT id FROM roots WHERE hub=?)"
        with self.transaction():
            self._conn.execute("DELETE FROM blobs WHERE hub=?", (hub,))
            if hub == "supabase":  # resumable uploads point into the old project
                self._conn.execute("DELETE FROM resume")
            self._change_states(
                f"UPDATE files SET state=? WHERE state=? AND {in_hub}",
                [(_S.DELETED, _S.HELD, hub)],
            )
            files = self._change_states(
                f"""UPDATE files SET state=?, attempts=0, next_retry=NULL,
                      error_kind=NULL, last_error=NULL
                    WHERE state IN (?, ?) AND {in_hub}""",
                [(_S.SEEN, _S.SYNCED, _S.ERROR, hub)],
            )
            # Waiting to be recorded in the old hub: waiting for the new one (and not
            # counted: it was going up anyway).
            self._change_states(
                f"UPDATE files SET state=? WHERE state=? AND {in_hub}",
                [(_S.SEEN, _S.RECORDING, hub)],
            )
            self.remember_hub(hub, hub_id, where)
        return files

    # -- blobs ------------------------------------------------------------------------

    def known_blobs(self, hub: str, hashes: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        batch = list(hashes)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = self._conn.execute(
                f"SELECT sha256, remote_key FROM blobs WHERE hub=? AND sha256 IN ({marks})",
                (hub, *chunk),
            )
            found.update({r[0]: r[1] for r in cur})
        return found

    def add_blobs(self, hub: str, blobs: Iterable[Blob]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO blobs(hub, sha256, size, remote_key) VALUES(?, ?, ?, ?)",
            ((hub, *b) for b in blobs),
        )
