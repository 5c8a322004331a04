"""Compressed history on Supabase: the test server and the real Storage server.

What EXAI sees matters here: the current version keeps its raw object and its
``file_metadata`` row; a compressed version has neither, only an object under
``{uid}/history/`` that no ``file_metadata`` row names.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sync.compaction import Candidate, compact, packed_key
from sync.history_store import packed_history
from sync.remotes.base import ManifestEntry
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.history import download_stored
from sync.remotes.supabase.session import SupabaseSettings
from tests.fixtures.real_storage import RealStorage, start_real_gateway
from tests.fixtures.supabase import make_user
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in
from tests.history_helpers import read_back, save, text_version

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]


@pytest.fixture
async def real_remote(
    real_storage: RealStorage, memory_keyring: MemoryKeyring
) -> AsyncIterator[SupabaseRemote]:
    server = start_real_gateway(real_storage)
    try:
        user = make_user(server, "alice")
        settings = SupabaseSettings(url=server.url, anon_key=server.anon_key, requests_per_second=0)
        remote = SupabaseRemote(await sign_in(settings, user, memory_keyring))
        try:
            yield remote
        finally:
            await remote.close()
    finally:
        server.stop()


async def _metadata_paths(remote: SupabaseRemote) -> set[str]:
    response = await remote.session.client.table("file_metadata").select("path").execute()
    return {str(r["path"]) for r in response.data or []}


async def _stored(remote: SupabaseRemote, key: str, tmp: Path) -> bytes | None:
    dest = tmp / "stored"
    dest.unlink(missing_ok=True)
    return dest.read_bytes() if await download_stored(remote, key, dest) else None


async def _check_history(remote: SupabaseRemote, tmp: Path) -> None:
    entries: list[ManifestEntry] = []
    for f in range(2):
        for v in range(1, 4):
            entries.append(await save(remote, tmp, f"docs/f{f}.md", text_version(f"f{f}", v), v))
    history = packed_history(remote)
    assert history is not None
    report = await compact(history)
    assert report.compressed == 4 and report.saved > report.bytes_before // 2
    rows = await _metadata_paths(remote)
    for e in entries:
        expected = text_version(e.relpath[5:7], e.version)
        assert await read_back(remote, e, tmp) == expected  # byte for byte
        raw = await _stored(remote, e.key, tmp)
        packed = [
            await _stored(remote, packed_key(remote.user_id, e.sha256, enc), tmp)
            for enc in ("zstd", "gzip")
        ]
        if e.version == 3:  # current: raw, its bytes hash to its key, still in file_metadata
            assert raw is not None and hashlib.sha256(raw).hexdigest() == e.sha256
            assert e.key in rows and packed == [None, None]
        else:
            assert raw is None and e.key not in rows
            assert any(p is not None for p in packed)
    assert not any("/history/" in path for path in rows)  # EXAI never meets them
    assert (await compact(history)).compressed == 0


async def test_history_is_compressed_and_read_back_on_the_test_server(
    hub_remote: SupabaseRemote, tmp_path: Path
) -> None:
    await _check_history(hub_remote, tmp_path)


async def test_history_is_compressed_and_read_back_on_real_storage(
    real_remote: SupabaseRemote, tmp_path: Path
) -> None:
    await _check_history(real_remote, tmp_path)


async def test_a_revived_version_is_stored_raw_again(
    hub_remote: SupabaseRemote, tmp_path: Path
) -> None:
    first = await save(hub_remote, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub_remote, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub_remote)
    assert history is not None
    assert (await compact(history)).compressed == 1
    again = ManifestEntry(
        **{**{n: getattr(first, n) for n in first.__dataclass_fields__}, "version": 3}
    )
    await hub_remote.record([again])  # a journal that still knew the raw key
    assert await read_back(hub_remote, again, tmp_path) == text_version("a", 1)
    assert (await compact(history)).revived == 1
    raw = await _stored(hub_remote, first.key, tmp_path)
    assert raw == text_version("a", 1)
    assert (
        await _stored(hub_remote, packed_key(hub_remote.user_id, first.sha256, "zstd"), tmp_path)
        is None
    )


async def test_incompressible_history_stays_raw(hub_remote: SupabaseRemote, tmp_path: Path) -> None:
    import os

    old = await save(hub_remote, tmp_path, "n.bin", os.urandom(40_000), 1)
    await save(hub_remote, tmp_path, "n.bin", os.urandom(40_000), 2)
    history = packed_history(hub_remote)
    assert history is not None
    report = await compact(history)
    assert (report.compressed, report.left_raw) == (0, 1)
    raw = await _stored(hub_remote, old.key, tmp_path)
    assert raw is not None and hashlib.sha256(raw).hexdigest() == old.sha256


class Killed(BaseException):
    """Stands for kill -9."""


@pytest.mark.parametrize("step", ["read", "stored", "verified", "switched", "dropped"])
async def test_a_killed_round_is_finished_by_the_next(
    hub_remote: SupabaseRemote, tmp_path: Path, step: str
) -> None:
    first = await save(hub_remote, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub_remote, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub_remote)
    assert history is not None

    async def kill(at: str, _c: Candidate) -> None:
        if at == step:
            raise Killed

    with pytest.raises(Killed):
        await compact(history, after_step=kill)
    assert await read_back(hub_remote, first, tmp_path) == text_version("a", 1)
    await compact(history)
    assert await _stored(hub_remote, first.key, tmp_path) is None
    assert await read_back(hub_remote, first, tmp_path) == text_version("a", 1)


async def test_an_object_a_dropped_file_uses_stays_raw(
    hub_remote: SupabaseRemote, tmp_path: Path
) -> None:
    from sync.remotes.base import Operation

    dropped = await save(hub_remote, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub_remote, tmp_path, "a.txt", text_version("a", 2), 2)
    await hub_remote.log_operations(
        [Operation("upload", "completed", dropped.key, metadata={"source": "drop"})]
    )
    history = packed_history(hub_remote)
    assert history is not None
    assert (await compact(history)).compressed == 0
    assert await _stored(hub_remote, dropped.key, tmp_path) == text_version("a", 1)


async def test_a_version_stored_as_gzip_reads_back(
    hub_remote: SupabaseRemote, tmp_path: Path
) -> None:
    import gzip

    old = await save(hub_remote, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub_remote, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub_remote)
    assert history is not None
    packed = tmp_path / "a.gz"
    packed.write_bytes(gzip.compress(text_version("a", 1)))
    await history.put_packed(old.sha256, "gzip", packed)
    assert await history.switch(old.sha256, old.key, "gzip", packed.stat().st_size)
    await history.drop_raw(old.key, old.sha256)
    assert await _stored(hub_remote, old.key, tmp_path) is None
    assert await read_back(hub_remote, old, tmp_path) == text_version("a", 1)
    stats = await history.stats()
    assert stats.blobs == 1 and stats.stored_bytes == packed.stat().st_size
