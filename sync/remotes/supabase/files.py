"""``file_metadata`` and ``file_operations``: the tables HubSync shares with EXAI.

A project that runs the EXAI server already has them, in its own shape
(:class:`~sync.remotes.supabase.rows.HubSchema`): no unique key on ``file_id``
(EXAI adds a row per dedup hit), ``file_id`` a uuid referencing
``storage.objects`` or a text path, fewer ``file_operations`` columns. So
HubSync never updates their rows: it inserts rows shaped to what the
``hubsync_schema`` view reports, adds a ``file_metadata`` row only for an object
that has none yet (asked by hash; its id is derived from the object, so two
devices adding it at once still add one), and reads the ids of its objects through the
``hubsync_storage_objects`` view when the schema wants them. Ids and existing
rows are asked afresh for every write: a deleted object takes its rows with it
(``on delete cascade``), so nothing remembered here could go stale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from postgrest.exceptions import APIError
from postgrest.types import ReturnMethod

from sync.remotes.base import BUCKET_FILES, Operation
from sync.remotes.supabase.rows import (
    LEGACY_SCHEMA,
    HubSchema,
    chunks,
    operation_row,
    with_file_id,
)
from sync.remotes.supabase.session import SupabaseSession

log = logging.getLogger(__name__)

HASH_BATCH = 100
"""Hashes per ``in.(...)`` filter: 100 keep the URL under the common 8 KiB line limit."""
KEY_BATCH = 15
"""Storage keys per ``in.(...)`` filter, for the same limit: a key has up to ~230
characters, and quoting and URL-encoding may double that."""
ROW_BATCH = 500
_MISSING_RELATION = {"42P01", "PGRST205"}

Row = dict[str, Any]


class SharedTables:
    """Reads and writes of the EXAI-shared tables for one signed-in session."""

    def __init__(self, session: SupabaseSession) -> None:
        self.session = session
        self._schema: HubSchema | None = None
        self._schema_lock = asyncio.Lock()

    @property
    def user_id(self) -> str:
        return self.session.user_id

    async def schema(self) -> HubSchema:
        """The project's table shape, read once per session."""
        async with self._schema_lock:
            if self._schema is None:
                self._schema = await self._read_schema()
            return self._schema

    async def _read_schema(self) -> HubSchema:
        async def query() -> HubSchema | None:
            try:
                response = (
                    await self.session.client.table("hubsync_schema").select("*").limit(1).execute()
                )
            except APIError as exc:
                if exc.code in _MISSING_RELATION:
                    return None
                raise
            rows = [row for row in response.data or [] if isinstance(row, dict)]
            return HubSchema.from_row(rows[0]) if rows else None

        schema = await self.session.call("reading the hub's table shapes", query)
        if schema is None:
            log.warning(
                "the hub has no hubsync_schema view (migrations older than this HubSync); "
                "assuming HubSync's own tables. Apply `hubsync supabase schema` to update them"
            )
            return LEGACY_SCHEMA
        return schema

    async def rows_by_hash(self, hashes: Collection[str], bucket: str) -> list[Row]:
        """This user's ``file_metadata`` rows (path, sha256_hash) in ``bucket`` for the hashes."""
        out: list[Row] = []
        for batch in chunks(sorted(set(hashes)), HASH_BATCH):

            def query(batch: Sequence[str] = batch) -> Any:
                return (
                    self.session.client.table("file_metadata")
                    .select("path,sha256_hash")
                    .in_("sha256_hash", list(batch))
                    .eq("bucket_id", bucket)
                    .eq("user_id", self.user_id)
                    .execute()
                )

            response = await self.session.call("looking up hashes", query)
            out.extend(row for row in response.data or [] if isinstance(row, dict))
        return out

    async def object_ids(self, bucket: str, keys: Iterable[str]) -> dict[str, str]:
        """``storage.objects.id`` of each of this user's keys that exists in ``bucket``."""
        found: dict[str, str] = {}
        for batch in chunks(sorted(set(keys)), KEY_BATCH):

            def query(batch: Sequence[str] = batch) -> Any:
                return (
                    self.session.client.table("hubsync_storage_objects")
                    .select("id,name")
                    .eq("bucket_id", bucket)
                    .in_("name", list(batch))
                    .execute()
                )

            response = await self.session.call("looking up stored objects", query)
            for row in response.data or []:
                if isinstance(row, dict) and row.get("id") and isinstance(row.get("name"), str):
                    found[row["name"]] = str(row["id"])
        return found

    async def write_metadata(self, rows: Sequence[Row]) -> None:
        """Insert the ``file_metadata`` rows (from :func:`metadata_row`) whose object has
        no row of this user yet; rows repeating an object are merged (last wins)."""
        unique = {(row["bucket_id"], row["path"]): row for row in rows}
        missing: list[Row] = []
        for bucket in sorted({b for b, _ in unique}):
            wanted = {path: row for (b, path), row in unique.items() if b == bucket}
            hashes = {row["sha256_hash"] for row in wanted.values()}
            present = {row.get("path") for row in await self.rows_by_hash(hashes, bucket)}
            missing.extend(row for path, row in wanted.items() if path not in present)
        if not missing:
            return
        schema = await self.schema()
        ids: dict[tuple[str, str], str] = {}
        if schema.metadata_file_id_uuid:
            for bucket in sorted({row["bucket_id"] for row in missing}):
                keys = [row["path"] for row in missing if row["bucket_id"] == bucket]
                for key, object_id in (await self.object_ids(bucket, keys)).items():
                    ids[(bucket, key)] = object_id
        shaped = [
            with_file_id(row, schema, ids.get((row["bucket_id"], row["path"]))) for row in missing
        ]
        await self._insert("file_metadata", shaped, "recording file metadata")

    async def log_operations(self, operations: Sequence[Operation]) -> None:
        """Append ``file_operations`` rows; a key names an object in ``user-files``."""
        if not operations:
            return
        schema = await self.schema()
        ids: dict[str, str] = {}
        if schema.operations_file_id_uuid:
            ids = await self.object_ids(BUCKET_FILES, [op.key for op in operations if op.key])
        rows = [
            operation_row(schema, self.user_id, op, ids.get(op.key) if op.key else None)
            for op in operations
        ]
        await self._insert("file_operations", rows, "logging operations")

    async def _insert(self, table: str, rows: Sequence[Row], what: str) -> None:
        """Insert rows that carry their own ``id``; a retry after a lost response
        skips what the first attempt wrote (ON CONFLICT (id) DO NOTHING)."""
        for batch in chunks(rows, ROW_BATCH):

            async def send(batch: Sequence[Row] = batch) -> None:
                builder = self.session.client.table(table)
                request = builder.upsert(
                    list(batch),
                    on_conflict="id",
                    ignore_duplicates=True,
                    returning=ReturnMethod.minimal,
                )
                await request.execute()

            await self.session.call(what, send)
