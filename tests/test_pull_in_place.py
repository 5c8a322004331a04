"""pull from the local hub copies each blob where it lies: hash-checked before the file
gets its name, never over a different local file, and the cache when a blob is gone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sync.cache import BlobCache
from sync.errors import IntegrityError
from sync.pull import pull_entries
from sync.remotes.base import ManifestEntry
from sync.remotes.local import LocalHub

FILES = {"a.txt": b"alpha" * 100, "sub/b.txt": b"beta" * 1000, "sub/c.txt": b"gamma"}


async def _hub_with_files(tmp_path: Path) -> tuple[LocalHub, list[ManifestEntry]]:
    hub = LocalHub(tmp_path / "hub")
    entries = []
    for relpath, data in FILES.items():
        source = tmp_path / "src" / relpath
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        key = await hub.put_blob(source, sha, len(data), source.name, "text/plain")
        entries.append(
            ManifestEntry(
                device="laptop",
                root_id="r",
                root_path="/docs",
                relpath=relpath,
                sha256=sha,
                size=len(data),
                mtime_ns=1_700_000_000_000_000_000,
                version=1,
                key=key,
            )
        )
    await hub.record(entries)
    return hub, entries


def _leftovers(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*") if p.name.startswith(".hubsync-")]


async def test_a_blob_that_does_not_match_never_gets_its_name(tmp_path: Path) -> None:
    hub, entries = await _hub_with_files(tmp_path)
    cache = BlobCache(tmp_path / "cache")
    bad = next(e for e in entries if e.relpath == "sub/b.txt")
    blob = hub.blob_file(bad.key)
    blob.write_bytes(b"Beta" + FILES["sub/b.txt"][4:])  # same size, other bytes
    dest = tmp_path / "out"
    with pytest.raises(IntegrityError):
        await pull_entries(hub, cache, entries, dest)
    assert not (dest / "sub/b.txt").exists() and not _leftovers(dest)
    cache.close()
    await hub.close()


async def test_pull_keeps_a_different_local_file_and_reuses_an_identical_one(
    tmp_path: Path,
) -> None:
    hub, entries = await _hub_with_files(tmp_path)
    cache = BlobCache(tmp_path / "cache")
    dest = tmp_path / "out"
    (dest / "sub").mkdir(parents=True)
    (dest / "a.txt").write_bytes(b"mine, different")
    (dest / "sub/c.txt").write_bytes(FILES["sub/c.txt"])
    pulled = {p.relpath: p for p in await pull_entries(hub, cache, entries, dest)}
    assert (dest / "a.txt").read_bytes() == b"mine, different"
    assert pulled["a.txt"].kept_both and pulled["a.txt"].path.read_bytes() == FILES["a.txt"]
    assert pulled["sub/c.txt"].identical and not pulled["sub/c.txt"].kept_both
    assert (dest / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert {p.source for p in pulled.values()} == {"local"}
    stats = cache.stats()  # the file already there is a hit; the copied ones are linked
    assert (stats.hits, stats.misses, stats.bytes_served) == (1, 2, len(FILES["sub/c.txt"]))
    assert (stats.entries, stats.linked, stats.size_bytes) == (2, 2, 0)
    assert not _leftovers(dest)
    cache.close()
    await hub.close()


async def test_a_second_pull_into_a_new_folder_is_served_from_the_cache(tmp_path: Path) -> None:
    hub, entries = await _hub_with_files(tmp_path)
    cache = BlobCache(tmp_path / "cache", size_limit=1)
    await pull_entries(hub, cache, entries, tmp_path / "first")
    assert cache.stats().linked == 3  # links to the hub's blobs: outside the size limit
    replaced = next(e for e in entries if e.relpath == "sub/b.txt")
    blob = hub.blob_file(replaced.key)
    (tmp_path / "new").write_bytes(blob.read_bytes())
    (tmp_path / "new").replace(blob)  # the hub rewrote it: the linked entry is stale
    again = {p.relpath: p for p in await pull_entries(hub, cache, entries, tmp_path / "again")}
    assert {r: p.source for r, p in again.items()} == {
        "a.txt": "cache",
        "sub/b.txt": "local",
        "sub/c.txt": "cache",
    }
    assert all((tmp_path / "again" / r).read_bytes() == data for r, data in FILES.items())
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 4) and stats.entries == 3
    cache.close()
    await hub.close()


async def test_a_blob_gone_from_the_hub_is_served_by_the_cache(tmp_path: Path) -> None:
    hub, entries = await _hub_with_files(tmp_path)
    cache = BlobCache(tmp_path / "cache")
    gone = next(e for e in entries if e.relpath == "a.txt")
    (tmp_path / "kept").write_bytes(FILES["a.txt"])
    cache.admit(tmp_path / "kept", gone.sha256)
    hub.blob_file(gone.key).unlink()
    dest = tmp_path / "out"
    pulled = {p.relpath: p for p in await pull_entries(hub, cache, entries, dest)}
    assert pulled["a.txt"].source == "cache" and (dest / "a.txt").read_bytes() == FILES["a.txt"]
    assert pulled["sub/b.txt"].source == "local"
    cache.close()
    await hub.close()
