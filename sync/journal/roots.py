"""The mirrored folders (roots): each a folder on this device and the hub it goes to."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from sync.errors import UndecodableName
from sync.journal.hubs import HubsJournal
from sync.journal.records import Blob, HubVersion, Root
from sync.journal.states import FileState


def _check_decodable(path: Path) -> None:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise UndecodableName(path) from None


class RootsJournal(HubsJournal):
    def add_root(self, path: Path, hub: str, *, hub_asked: bool = False) -> Root:
        """Mirror ``path`` to ``hub``; a folder mirrored already stays as it is, unless
        ``hub_asked`` (the user named the hub) and it goes to another one: ValueError."""
        resolved = path.resolve()
        _check_decodable(resolved)
        existing = self.root_by_path(resolved)
        if existing is not None:
            if hub_asked and existing.hub != hub:
                raise ValueError(
                    f"{resolved} is mirrored to the {existing.hub} hub already; "
                    f"remove it first to mirror it to the {hub} hub"
                )
            return existing
        for other in self.roots():
            if resolved.is_relative_to(other.path) or other.path.is_relative_to(resolved):
                raise ValueError(f"{resolved} overlaps the mirrored folder {other.path}")
        root = Root(uuid.uuid4().hex, resolved, hub, False, None)
        with self.transaction():
            self._conn.execute(
                "INSERT INTO roots(id, path, hub, added_at, paused) VALUES(?, ?, ?, ?, 0)",
                (root.id, str(resolved), hub, time.time()),
            )
        return root

    def reattach(self, root: Root, old_id: str, hub: str, rows: Sequence[HubVersion]) -> Root:
        """``root`` (just added, nothing synced yet) is the folder this device mirrored
        before as ``old_id``: it takes that id back with the history the hub has
        (``rows``, every recorded version), its files as the newest versions say."""
        latest: dict[str, HubVersion] = {}
        for r in map(HubVersion._make, rows):
            if r.relpath not in latest or r.version > latest[r.relpath].version:
                latest[r.relpath] = r
        with self.transaction():
            self._conn.execute("DELETE FROM files WHERE root_id=?", (old_id,))
            self._conn.execute("DELETE FROM versions WHERE root_id=?", (old_id,))
            self._conn.execute("UPDATE roots SET id=? WHERE id=?", (old_id, root.id))
            self._conn.executemany(
                """INSERT OR REPLACE INTO versions(root_id, relpath, version, sha256, size,
                     mtime_ns, deleted, remote_key, recorded_at) VALUES(?,?,?,?,?,?,?,?,?)""",
                ((old_id, *r) for r in rows),
            )
            self._change_states(
                """INSERT INTO files(root_id, relpath, size, mtime_ns, inode, sha256, state,
                     version, remote_key, synced_at) VALUES(?, ?, ?, ?, 0, ?, ?, ?, ?, ?)""",
                (
                    (
                        *(old_id, r.relpath, r.size, r.mtime_ns, r.sha256),
                        FileState.DELETED if r.deleted else FileState.SYNCED,
                        *(r.version, r.key, r.recorded_at),
                    )
                    for r in latest.values()
                ),
            )
            self.add_blobs(
                hub, {Blob(r.sha256, r.size, r.key) for r in map(HubVersion._make, rows)}
            )
        self._stat_cache.pop(root.id, None)
        return Root(old_id, root.path, root.hub, root.paused, root.degraded)

    def remove_root(self, root_id: str) -> None:
        """Forget a folder locally; its versions stay in the hub."""
        self._stat_cache.pop(root_id, None)
        with self.transaction():
            for table in ("files", "versions", "skipped", "error_members"):
                self._conn.execute(f"DELETE FROM {table} WHERE root_id=?", (root_id,))
            self._conn.execute("DELETE FROM roots WHERE id=?", (root_id,))
            self._resolve_settled(time.time())

    def roots(self) -> list[Root]:
        rows = self._conn.execute(
            "SELECT id, path, hub, paused, degraded FROM roots ORDER BY path"
        ).fetchall()
        return [Root(r[0], Path(r[1]), r[2], bool(r[3]), r[4]) for r in rows]

    def root_by_path(self, path: Path) -> Root | None:
        for root in self.roots():
            if root.path == path:
                return root
        return None

    def root_for(self, path: Path) -> tuple[Root, str] | None:
        """The root holding ``path`` and the path's relative form inside it.

        ``..`` is folded first; a path reaching a root through a symbolic link (or
        /tmp for /private/tmp on macOS) is then tried with its links resolved.
        Raises :class:`UndecodableName` for a name that is not valid UTF-8.
        """
        _check_decodable(path)
        roots = self.roots()
        normal = Path(os.path.abspath(path))
        for candidate in (normal, normal.resolve()):
            for root in roots:
                if candidate == root.path or candidate.is_relative_to(root.path):
                    return root, candidate.relative_to(root.path).as_posix()
        return None

    def set_root_flags(
        self, root_id: str, *, paused: bool | None = None, degraded: str | bool | None = False
    ) -> None:
        with self.transaction():
            if paused is not None:
                self._conn.execute("UPDATE roots SET paused=? WHERE id=?", (int(paused), root_id))
            if degraded is not False:
                self._conn.execute("UPDATE roots SET degraded=? WHERE id=?", (degraded, root_id))
