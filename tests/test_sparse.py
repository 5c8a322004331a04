"""Sparse files keep their holes in the local hub, the download cache and a restore
(issue 14, defect 14), and their hash is still that of every byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sync.sparse import ZEROS
from tests.test_cli import hubsync

SIZE = 200 * 2**20
EXTENTS = (0, 70 * 2**20, 150 * 2**20)  # 64 KiB of data at each; the file ends in a hole
ALLOCATED_AT_MOST = 8 * 2**20


def _sparse_file(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for at in EXTENTS:
            f.seek(at)
            f.write(os.urandom(65536))


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_sparse_file_stays_sparse_in_the_hub_and_when_restored(tmp_path: Path) -> None:
    home, docs, out = tmp_path / "home", tmp_path / "docs", tmp_path / "out"
    docs.mkdir()
    sparse, dense = docs / "disk.img", docs / "dense.bin"
    _sparse_file(sparse)
    if _allocated(sparse) > ALLOCATED_AT_MOST:
        pytest.skip("this filesystem does not keep holes")
    dense.write_bytes(os.urandom(3 * 2**20) + ZEROS)  # zeros written as data: not a hole
    want = {p.name: _sha(p) for p in (sparse, dense)}
    assert hubsync(home, "add", str(docs)).returncode == 0
    synced = hubsync(home, "sync", "--once")
    assert synced.returncode == 0, synced.stderr

    blobs = home / "data" / "hub" / "user-files" / "local"
    hub_sparse = next(blobs.glob(f"*/{want['disk.img']}/*"))
    assert hub_sparse.stat().st_size == SIZE
    assert _allocated(hub_sparse) <= ALLOCATED_AT_MOST  # was 200 MB
    assert _sha(hub_sparse) == want["disk.img"]
    hub_dense = next(blobs.glob(f"*/{want['dense.bin']}/*"))
    assert _sha(hub_dense) == want["dense.bin"]
    assert _allocated(hub_dense) >= 4 * 2**20  # a dense file is stored as it is

    for name in want:
        done = hubsync(home, "restore", str(docs / name), "--to", str(out))
        assert done.returncode == 0, done.stderr
        assert _sha(out / name) == want[name]
    assert (out / "disk.img").stat().st_size == SIZE
    assert _allocated(out / "disk.img") <= ALLOCATED_AT_MOST
    cached = [p for p in (home / "cache" / "blobs").rglob("*") if p.stat().st_size == SIZE]
    assert len(cached) == 1 and _allocated(cached[0]) <= ALLOCATED_AT_MOST
