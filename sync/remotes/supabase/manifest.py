"""Reading the hub's manifest for :class:`~.remote.SupabaseRemote`: a file's
history, the devices, and ``find`` over the newest versions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sync.devices import DeviceInfo, summarize
from sync.find import FindQuery
from sync.remotes.base import ManifestEntry
from sync.remotes.supabase.files import HASH_BATCH, ROW_BATCH
from sync.remotes.supabase.rows import MANIFEST_COLUMNS, chunks, manifest_entry
from sync.remotes.supabase.session import SupabaseSession


class ManifestReads:
    session: SupabaseSession
    user_id: str

    async def history(self, device: str, root_id: str, relpath: str) -> list[ManifestEntry]:
        response = await self.session.call(
            "reading history",
            lambda: (
                self.session.client.table("hubsync_manifest")
                .select(MANIFEST_COLUMNS)
                .eq("user_id", self.user_id)
                .eq("device_id", device)
                .eq("root_id", root_id)
                .eq("rel_path", relpath)
                .order("version")
                .execute()
            ),
        )
        return [manifest_entry(row) for row in response.data or [] if isinstance(row, dict)]

    async def devices(self) -> list[DeviceInfo]:
        devices = await self._select_all(
            "listing devices", "hubsync_devices", "device_id,name,last_seen", "device_id"
        )
        rows = await self._select_all(
            "listing devices",
            "hubsync_manifest",
            "device_id,root_id,root_path,rel_path,version,size,deleted",
            "device_id,root_id,rel_path,version",
        )
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in rows:  # ordered by version: the last one of each path wins
            latest[(row["device_id"], row["root_id"], row["rel_path"])] = row
        current = [
            (r["device_id"], r["root_id"], r["root_path"], int(r["size"]))
            for r in latest.values()
            if not r["deleted"]
        ]
        return summarize(
            ((d["device_id"], d.get("name") or "", str(d.get("last_seen") or "")) for d in devices),
            current,
        )

    async def find(self, query: FindQuery) -> list[ManifestEntry]:
        """Matching rows are filtered by PostgREST (paged); of those, only paths whose
        newest version is the matching one are kept (asked in batches of paths)."""

        def narrow(q: Any) -> Any:
            if query.device:
                q = q.eq("device_id", query.device)
            if query.folder:
                q = q.eq("root_path", query.folder)
            if (like := query.like()) is not None:
                q = q.like("rel_path", like)
            if query.suffix:
                q = q.ilike("rel_path", f"%{query.suffix}")
            if query.sha256:
                q = q.eq("sha256", query.sha256.lower())
            if query.larger is not None:
                q = q.gt("size", query.larger)
            if query.smaller is not None:
                q = q.lt("size", query.smaller)
            if query.since_ns is not None:
                q = q.gte("mtime_ns", query.since_ns)
            if query.until_ns is not None:
                q = q.lte("mtime_ns", query.until_ns)
            if query.at:
                q = q.lte("recorded_at", query.at)
            return q.eq("deleted", query.deleted)

        rows = await self._select_all(
            "finding files",
            "hubsync_manifest",
            MANIFEST_COLUMNS,
            "device_id,root_id,rel_path,version",
            narrow,
        )
        candidates: dict[tuple[str, str, str], ManifestEntry] = {}
        for entry in map(manifest_entry, rows):
            if query.matches(entry):
                candidates[(entry.device, entry.root_id, entry.relpath)] = entry
        newest = await self._newest_versions(list(candidates), query.at)
        found = [e for k, e in candidates.items() if newest.get(k, e.version) == e.version]
        return sorted(found, key=lambda e: (e.device, e.root_path, e.relpath))

    async def _newest_versions(
        self, paths: Sequence[tuple[str, str, str]], at: str
    ) -> dict[tuple[str, str, str], int]:
        """The newest version of each path (recorded up to ``at``, when given)."""
        by_root: dict[tuple[str, str], list[str]] = {}
        for device, root_id, rel in paths:
            by_root.setdefault((device, root_id), []).append(rel)
        newest: dict[tuple[str, str, str], int] = {}
        for (device, root_id), rels in by_root.items():
            for batch in chunks(rels, HASH_BATCH):

                def narrow(
                    q: Any, device: str = device, root_id: str = root_id, batch: Any = batch
                ) -> Any:
                    q = q.eq("device_id", device).eq("root_id", root_id).in_("rel_path", batch)
                    return q.lte("recorded_at", at) if at else q

                # Pages need a unique order, or equal versions of two paths may swap
                # between pages: one read twice, the other (maybe a newest) never.
                for row in await self._select_all(
                    "finding files",
                    "hubsync_manifest",
                    "rel_path,version",
                    "rel_path,version",
                    narrow,
                ):
                    key = (device, root_id, str(row["rel_path"]))
                    newest[key] = max(newest.get(key, 0), int(row["version"]))
        return newest

    async def _select_all(
        self,
        what: str,
        table: str,
        columns: str,
        order: str,
        narrow: Callable[[Any], Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of ``table`` for this user, read in pages of ROW_BATCH (LIMIT/OFFSET:
        ``order`` must place each row uniquely, or rows may be skipped between pages)."""
        out: list[dict[str, Any]] = []
        while True:
            start = len(out)

            def page(start: int = start) -> Any:
                query = self.session.client.table(table).select(columns).eq("user_id", self.user_id)
                if narrow is not None:
                    query = narrow(query)
                for column in order.split(","):
                    query = query.order(column)
                return query.range(start, start + ROW_BATCH - 1).execute()

            response = await self.session.call(what, page)
            batch = [row for row in response.data or [] if isinstance(row, dict)]
            out.extend(batch)
            if len(batch) < ROW_BATCH:
                return out
