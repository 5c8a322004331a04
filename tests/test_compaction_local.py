"""Compressed history on the local hub: what is compressed, what stays raw, crash safety."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sync.compaction import Candidate, compact, packed_key
from sync.history_store import packed_history
from sync.remotes.base import ManifestEntry
from sync.remotes.local import LocalHub
from tests.history_helpers import read_back, save, text_version


@pytest.fixture
async def hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    hub = LocalHub(tmp_path / "hub")
    yield hub
    await hub.close()


async def _history(
    hub: LocalHub, tmp: Path, files: int = 3, versions: int = 4
) -> list[ManifestEntry]:
    entries = []
    for f in range(files):
        for v in range(1, versions + 1):
            entries.append(await save(hub, tmp, f"docs/file{f}.txt", text_version(f"f{f}", v), v))
    return entries


def _raw_hashes_to_key(hub: LocalHub, entry: ManifestEntry) -> bool:
    path = hub.blob_file(entry.key)
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256


def _packed(hub: LocalHub, sha: str) -> list[Path]:
    return [
        p
        for e in ("zstd", "gzip")
        if (p := hub.blob_file(packed_key(hub.user_id, sha, e))).is_file()
    ]


def _stored_bytes(hub: LocalHub) -> int:
    folder = hub.root / "user-files"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def test_superseded_versions_are_compressed_and_read_back_byte_for_byte(
    hub: LocalHub, tmp_path: Path
) -> None:
    entries = await _history(hub, tmp_path)
    before = _stored_bytes(hub)
    history = packed_history(hub)
    assert history is not None
    report = await compact(history)
    assert report.compressed == 9 and report.saved > 0
    assert _stored_bytes(hub) < before * 0.5
    for e in entries:
        assert await read_back(hub, e, tmp_path) == text_version(
            e.relpath[5:10].replace("file", "f"), e.version
        )
        current = e.version == 4
        assert _raw_hashes_to_key(hub, e) is current
        assert bool(_packed(hub, e.sha256)) is not current
    # A second round finds nothing left to do.
    again = await compact(history)
    assert (again.compressed, again.left_raw, again.revived) == (0, 0, 0)


async def test_incompressible_and_already_compressed_contents_stay_raw(
    hub: LocalHub, tmp_path: Path
) -> None:
    noise = [await save(hub, tmp_path, "bin/noise.dat", os.urandom(50_000), v) for v in (1, 2)]
    # Text in a file named like a PNG is never even tried.
    png = [await save(hub, tmp_path, "img/pic.png", text_version("png", v), v) for v in (1, 2)]
    history = packed_history(hub)
    assert history is not None
    report = await compact(history)
    assert report.compressed == 0 and report.left_raw == 2
    for e in (*noise, *png):
        assert _raw_hashes_to_key(hub, e)
        assert not _packed(hub, e.sha256)
    assert (await compact(history)).left_raw == 0  # looked at once, not again


async def test_a_blob_current_in_another_folder_is_never_compressed(
    hub: LocalHub, tmp_path: Path
) -> None:
    old = await save(hub, tmp_path, "a.txt", text_version("shared", 1), 1)
    await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
    elsewhere = await save(hub, tmp_path, "copy.txt", text_version("shared", 1), 1, device="dev-2")
    history = packed_history(hub)
    assert history is not None
    report = await compact(history)
    assert report.compressed == 0
    assert _raw_hashes_to_key(hub, old) and _raw_hashes_to_key(hub, elsewhere)


async def test_content_current_again_is_stored_raw_again(hub: LocalHub, tmp_path: Path) -> None:
    first = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub)
    assert history is not None
    assert (await compact(history)).compressed == 1
    assert not hub.blob_file(first.key).exists()
    # Restored by a device whose journal still knows the old key: recorded, not uploaded.
    restored = ManifestEntry(**{**_fields(first), "version": 3, "mtime_ns": 3})
    await hub.record([restored])
    assert await read_back(hub, restored, tmp_path) == text_version("a", 1)  # readable at once
    report = await compact(history)
    assert report.revived == 1
    assert _raw_hashes_to_key(hub, restored)
    assert not _packed(hub, first.sha256)
    assert await read_back(hub, first, tmp_path) == text_version("a", 1)


def _fields(entry: ManifestEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in entry.__dataclass_fields__}


class Killed(BaseException):
    """Stands for kill -9: nothing of the round runs after it."""


@pytest.mark.parametrize("step", ["read", "stored", "verified", "switched", "dropped"])
async def test_a_round_killed_after_any_step_loses_nothing_and_is_finished_later(
    hub: LocalHub, tmp_path: Path, step: str
) -> None:
    entries = await _history(hub, tmp_path, files=2, versions=3)
    history = packed_history(hub)
    assert history is not None

    async def kill(at: str, _c: Candidate) -> None:
        if at == step:
            raise Killed

    with pytest.raises(Killed):
        await compact(history, after_step=kill)
    for e in entries:  # every version readable between the two rounds
        assert hashlib.sha256(await read_back(hub, e, tmp_path)).hexdigest() == e.sha256
    await compact(history)
    for e in entries:
        assert hashlib.sha256(await read_back(hub, e, tmp_path)).hexdigest() == e.sha256
        assert _raw_hashes_to_key(hub, e) is (e.version == 3)
        assert bool(_packed(hub, e.sha256)) is (e.version != 3)


async def test_a_damaged_compressed_blob_is_refused(hub: LocalHub, tmp_path: Path) -> None:
    first = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub)
    assert history is not None
    await compact(history)
    (packed,) = _packed(hub, first.sha256)
    data = bytearray(packed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    packed.write_bytes(bytes(data))
    from sync.errors import IntegrityError

    with pytest.raises(IntegrityError):
        await read_back(hub, first, tmp_path)


_KILLED_ROUND = """
import asyncio, sys, time
from pathlib import Path
from sync.compaction import compact
from sync.history_store import packed_history
from sync.remotes.local import LocalHub

async def main() -> None:
    hub = LocalHub(Path(sys.argv[1]))
    async def stop(at, _c):
        if at == sys.argv[2]:
            print(at, flush=True)
            time.sleep(60)  # killed here
    await compact(packed_history(hub), after_step=stop)

asyncio.run(main())
"""


@pytest.mark.parametrize("step", ["read", "stored", "verified", "switched", "dropped"])
async def test_kill_9_at_a_step_boundary_loses_nothing(tmp_path: Path, step: str) -> None:
    import subprocess
    import sys

    root = tmp_path / "hub"
    hub = LocalHub(root)
    entries = await _history(hub, tmp_path, files=2, versions=3)
    await hub.close()
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_ROUND, str(root), step], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == step
    finally:
        child.kill()  # SIGKILL
        child.wait()
    hub = LocalHub(root)
    try:
        for e in entries:
            assert hashlib.sha256(await read_back(hub, e, tmp_path)).hexdigest() == e.sha256
        history = packed_history(hub)
        assert history is not None
        await compact(history)
        for e in entries:
            assert hashlib.sha256(await read_back(hub, e, tmp_path)).hexdigest() == e.sha256
            assert _raw_hashes_to_key(hub, e) is (e.version == 3)
            assert bool(_packed(hub, e.sha256)) is (e.version != 3)
    finally:
        await hub.close()


async def test_an_object_a_dropped_file_or_exai_uses_stays_raw(
    hub: LocalHub, tmp_path: Path
) -> None:
    from sync.remotes.base import Operation

    dropped = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
    sent = await save(hub, tmp_path, "b.txt", text_version("b", 1), 1)
    await save(hub, tmp_path, "b.txt", text_version("b", 2), 2)
    await hub.log_operations(
        [
            Operation("upload", "completed", dropped.key, metadata={"source": "drop"}),
            Operation("process", "completed", sent.key),
        ]
    )
    history = packed_history(hub)
    assert history is not None
    assert (await compact(history)).compressed == 0
    assert _raw_hashes_to_key(hub, dropped) and _raw_hashes_to_key(hub, sent)


async def test_a_version_stored_as_gzip_reads_back(hub: LocalHub, tmp_path: Path) -> None:
    import gzip

    old = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub)
    assert history is not None
    packed = tmp_path / "a.gz"
    packed.write_bytes(gzip.compress(text_version("a", 1)))
    await history.put_packed(old.sha256, "gzip", packed)
    assert await history.switch(old.sha256, old.key, "gzip", packed.stat().st_size)
    await history.drop_raw(old.key, old.sha256)
    assert await read_back(hub, old, tmp_path) == text_version("a", 1)
    assert (await history.stats()).blobs == 1


async def test_a_blob_current_again_after_the_switch_keeps_its_raw_object(
    hub: LocalHub, tmp_path: Path
) -> None:
    """A device records the content as current between the row switch and the deletion
    of the raw object: the deletion does not happen (it is decided in one transaction)."""
    old = await save(hub, tmp_path, "a.txt", text_version("a", 1), 1)
    await save(hub, tmp_path, "a.txt", text_version("a", 2), 2)
    history = packed_history(hub)
    assert history is not None

    async def record_meanwhile(at: str, c: Candidate) -> None:
        if at == "switched":
            await hub.record([ManifestEntry(**{**_fields(old), "relpath": "b.txt"})])

    await compact(history, after_step=record_meanwhile)
    assert _raw_hashes_to_key(hub, old)
    await compact(history)  # the next round puts the rows right and drops the copy
    assert not _packed(hub, old.sha256)
    assert (await history.stats()).blobs == 0
