"""The Supabase hub's side of compressed history (see :mod:`sync.compaction`).

Compressed objects lie in ``user-files`` at ``{uid}/history/{sha[:2]}/{sha}.zst``
(or ``.gz``) with no ``file_metadata`` row: EXAI finds files through that table
and by their own keys, so it never meets them. Which blobs are superseded or
current again, and the guarded row switch, are SQL functions of the migration
``20261203100000_hubsync_compressed_history.sql`` (the query runs where the
data is). A device recording a blob between the switch and the deletion of its
raw object leaves a current version that is only stored compressed: readers
still get it (they fall back to the compressed object), and the next round
stores it raw again.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage3.types import FileOptions
from yarl import URL

from sync.compaction import Candidate, HistoryStats, packed_key
from sync.compression import SUFFIX, decode_file
from sync.errors import PermanentError
from sync.remotes.base import BUCKET_FILES, ProgressFn
from sync.remotes.supabase.errors import NotFound
from sync.remotes.supabase.rows import metadata_row_id
from sync.remotes.supabase.tus import upload_resumable

if TYPE_CHECKING:
    from sync.remotes.supabase.remote import SupabaseRemote

_BLOCK = 1024 * 1024


async def download_stored(remote: SupabaseRemote, key: str, dest: Path) -> bool:
    """The object's bytes as stored into ``dest`` (no hash to check: the caller checks
    the plaintext); False when there is no such object."""
    session = remote.session
    url = str(URL(session.settings.storage_url).joinpath("object", BUCKET_FILES, *key.split("/")))

    async def get() -> None:
        async with session.http.stream("GET", url, headers=session.headers()) as r:
            if not r.is_success:
                await r.aread()
                r.raise_for_status()
            handle = await asyncio.to_thread(open, dest, "wb")
            try:
                async for block in r.aiter_bytes(_BLOCK):
                    await asyncio.to_thread(handle.write, block)
            finally:
                await asyncio.to_thread(handle.close)

    try:
        await session.call("downloading compressed history", get)
    except NotFound:
        await asyncio.to_thread(dest.unlink, missing_ok=True)
        return False
    return True


async def read_packed_copy(
    remote: SupabaseRemote, sha256: str, dest: Path, progress: ProgressFn | None
) -> bool:
    """Decode the compressed object of ``sha256`` into ``dest`` (hash-checked, ``dest``
    replaced); False when there is none. The read path of ``get_blob``/``resume_blob``
    once the raw object is not found."""
    stored = dest.with_name(dest.name + ".stored")
    for encoding in SUFFIX:
        try:
            if not await download_stored(
                remote, packed_key(remote.user_id, sha256, encoding), stored
            ):
                continue
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            size = await asyncio.to_thread(decode_file, stored, dest, encoding, sha256)
        finally:
            await asyncio.to_thread(stored.unlink, missing_ok=True)
        if progress is not None and size:
            progress(size)
        return True
    return False


class SupabaseHistory:
    """:class:`sync.compaction.PackedHistory` on a :class:`SupabaseRemote`."""

    def __init__(self, remote: SupabaseRemote) -> None:
        self.remote = remote
        self.session = remote.session

    async def _rpc(self, what: str, name: str, args: dict[str, Any]) -> Any:
        args = {**args, "p_user": self.remote.user_id}

        async def call() -> Any:
            return (await self.session.client.rpc(name, args).execute()).data

        return await self.session.call(what, call)

    async def _candidates(self, name: str, limit: int) -> list[Candidate]:
        rows = await self._rpc("listing history to compress", name, {"p_limit": limit})
        return [
            Candidate(
                str(r["sha256"]),
                str(r["storage_key"]),
                int(r["size"] or 0),
                str(r.get("content_type") or "application/octet-stream"),
                str(r.get("encoding") or ""),
            )
            for r in rows or []
            if isinstance(r, dict)
        ]

    async def superseded(self, limit: int) -> list[Candidate]:
        return await self._candidates("hubsync_history_superseded", limit)

    async def revived(self, limit: int) -> list[Candidate]:
        return await self._candidates("hubsync_history_revived", limit)

    async def read_raw(self, key: str, sha256: str, dest: Path) -> bool:
        stored = await download_stored(self.remote, key, dest)
        if stored and await asyncio.to_thread(_sha256_of, dest) != sha256:
            await asyncio.to_thread(dest.unlink)
            raise PermanentError(f"the raw object {key} does not match its SHA-256")
        return stored

    async def read_packed(self, sha256: str, encoding: str, dest: Path) -> bool:
        return await download_stored(
            self.remote, packed_key(self.remote.user_id, sha256, encoding), dest
        )

    async def put_packed(self, sha256: str, encoding: str, source: Path) -> None:
        key = packed_key(self.remote.user_id, sha256, encoding)
        size = await asyncio.to_thread(lambda: source.stat().st_size)
        content_type = "application/octet-stream"
        if size >= self.remote.tus_threshold:
            await upload_resumable(
                self.session,
                self.remote.resume_store,
                source,
                sha256=await asyncio.to_thread(_sha256_of, source),
                size=size,
                bucket=BUCKET_FILES,
                key=key,
                content_type=content_type,
            )
            return
        data = await asyncio.to_thread(source.read_bytes)
        options: FileOptions = {"content-type": content_type, "x-upsert": "true"}
        await self.session.call(
            "storing compressed history",
            lambda: self.session.client.storage.from_(BUCKET_FILES).upload(key, data, options),
        )

    async def switch(self, sha256: str, key: str, encoding: str, stored_size: int) -> bool:
        args = {"p_sha": sha256, "p_key": key, "p_encoding": encoding, "p_stored_size": stored_size}
        return bool(await self._rpc("switching history rows", "hubsync_history_switch", args))

    async def drop_raw(self, key: str, sha256: str) -> None:
        if await self._rpc("checking a blob", "hubsync_blob_is_current", {"p_sha": sha256}):
            return  # current again since the switch: the next round unpacks it
        await self._remove([key])
        row_id = metadata_row_id(self.remote.user_id, BUCKET_FILES, key)
        await self.session.call(
            "removing the row of a compressed blob",
            lambda: self.session.client.table("file_metadata").delete().eq("id", row_id).execute(),
        )

    async def _remove(self, keys: list[str]) -> None:
        await self.session.call(
            "removing stored objects",
            lambda: self.session.client.storage.from_(BUCKET_FILES).remove(keys),
        )

    async def put_raw(self, candidate: Candidate, source: Path) -> None:
        await self.remote.put_blob(
            source, candidate.sha256, candidate.size, candidate.filename, candidate.content_type
        )

    async def unpack(self, sha256: str) -> None:
        uid = self.remote.user_id
        await self.session.call(
            "switching history rows back",
            lambda: (
                self.session.client.table("hubsync_manifest")
                .update({"encoding": "", "stored_size": None})
                .eq("user_id", uid)
                .eq("sha256", sha256)
                .execute()
            ),
        )
        await self._remove([packed_key(uid, sha256, e) for e in SUFFIX])

    async def stats(self) -> HistoryStats:
        row = await self._rpc("reading history savings", "hubsync_history_stats", {})
        if not isinstance(row, dict):
            return HistoryStats()
        return HistoryStats(
            int(row.get("blobs") or 0),
            int(row.get("raw_bytes") or 0),
            int(row.get("stored_bytes") or 0),
        )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
