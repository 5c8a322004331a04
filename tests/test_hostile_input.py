"""Bad input gets a clear reason and loses nothing; the rest of the sync completes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import sync.passes.transfer
import sync.remotes.local.hub
from sync.hashing import Hashed, hash_file, read_small
from sync.keys import ascii_safe_name
from tests.fixtures.engine import Rig, assert_hub_mirrors, hub_latest, sha_of

T = TypeVar("T")


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


async def test_awkward_names_all_sync(rig: Rig) -> None:
    docs = rig.folder()
    names = [
        "résumé été.txt",
        "emoji 🎉🚀.md",
        "ctrl\x01\x1fchars.txt",
        "new\nline.txt",
        "#hash %percent ?question \\back.txt",
        "x" * 255,  # the longest name Linux allows (255 bytes)
        "é" * 127 + "x",  # 255 bytes in UTF-8
        "Case.txt",
        "case.txt",  # case-only difference
        "   spaces   ",
        "..dots..",
        "-leading-dash",
    ]
    for i, name in enumerate(names):
        write(docs / name, f"content {i}")
    deep = docs.joinpath(*[f"level{i}" for i in range(60)])
    write(deep / "deep.txt", "deep")
    write(docs / "zero.bin", b"")
    root = rig.add_root(docs)
    report = await rig.engine.sync_root(root)
    assert report.complete, report.errors
    assert_hub_mirrors(rig.hub.root, root.id, docs)
    for _, _, key in hub_latest(rig.hub.root, root.id).values():
        assert all(part not in ("", ".", "..") for part in key.split("/"))
        assert key.isascii() and len(key.split("/")[-1]) <= 120


def test_ascii_safe_names_stay_readable() -> None:
    assert ascii_safe_name("résumé été.txt") == "resume ete.txt"
    assert ascii_safe_name("🎉.md") == "file.md"
    assert ascii_safe_name("a#b%c?d\\e.txt") == "a_b_c_d_e.txt"
    assert ascii_safe_name("..") == "file"
    long = ascii_safe_name("y" * 300 + ".pdf")
    assert long.endswith(".pdf") and len(long) <= 120


def test_names_already_safe_are_kept_exactly_as_transliteration_would() -> None:
    """The shortcut for names already in the key alphabet never disagrees with the
    full transliteration (a disagreement would give one content two keys)."""
    import random

    from sync.keys import _transliterate

    rng = random.Random(5)
    alphabet = "aZ09_ .-()'+é#~"
    names = ["".join(rng.choices(alphabet, k=rng.randint(1, 9))) for _ in range(20_000)]
    names += ["a" * 118 + ".x", "a" * 121, "_.txt", "._", "x.", " x", "a__b", "Makefile"]
    for name in names:
        assert ascii_safe_name(name) == _transliterate(name, 120), name


async def test_links_fifos_and_loops_are_reported_not_followed(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "real.txt", "real")
    os.symlink(docs / "real.txt", docs / "link.txt")
    os.symlink(docs / "loop-b", docs / "loop-a")
    os.symlink(docs / "loop-a", docs / "loop-b")
    os.symlink(docs, docs / "self")  # a directory loop
    os.mkfifo(docs / "pipe")
    root = rig.add_root(docs)
    report = await asyncio.wait_for(rig.engine.sync_root(root), timeout=30)
    assert report.complete
    assert set(report.skipped) == {"link.txt", "loop-a", "loop-b", "self", "pipe"}
    assert "symbolic link" in report.skipped["loop-a"]
    assert "FIFO" in report.skipped["pipe"]
    assert_hub_mirrors(rig.hub.root, root.id, docs, {"real.txt": docs / "real.txt"})


BIG = 2 * 1024 * 1024
"""Above the local hub's ingest limit: hashed first, then copied into the hub."""


@pytest.mark.parametrize("size", [11, BIG], ids=["read-once", "hash-then-copy"])
async def test_file_deleted_between_scan_and_hash(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    docs = rig.folder()
    write(docs / "stays.txt", "stays")
    victim = write(docs / "vanishes.txt", os.urandom(size))
    root = rig.add_root(docs)

    def deleting_first(read: Callable[..., T]) -> Callable[..., T]:
        def wrapper(path: Path, *args: int) -> T:
            if path.name == "vanishes.txt":
                path.unlink()
            return read(path, *args)

        return wrapper

    # Small files are read once by the local hub (hashed and stored), big ones hashed
    # by the engine and copied later: the file vanishes right before either read.
    monkeypatch.setattr(sync.passes.transfer, "hash_file", deleting_first(hash_file))
    monkeypatch.setattr(sync.remotes.local.hub, "read_small", deleting_first(read_small))
    report = await rig.engine.sync_root(root)
    assert report.complete and report.recorded == 1
    assert not victim.exists()
    assert rig.journal.file(root.id, "vanishes.txt") is None
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_file_growing_while_hashed_is_retried_not_uploaded(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "other.txt", "other")
    growing = write(docs / "download.iso", os.urandom(8 * 1024 * 1024))
    root = rig.add_root(docs)
    stop = threading.Event()

    def append() -> None:
        with open(growing, "ab") as f:
            chunk = os.urandom(16 * 1024)
            for _ in range(4096):  # at most 64 MiB more, a write every ~0.2 ms
                if stop.wait(0.0002):
                    break
                f.write(chunk)
                f.flush()
            stop.wait()

    writer = threading.Thread(target=append)
    writer.start()
    try:
        await asyncio.sleep(0.02)
        report = await rig.engine.sync_root(root)
    finally:
        stop.set()
        writer.join()
    kind, reason = report.errors["download.iso"]
    assert kind == "changed"  # caught while hashing, or while copying into the hub
    assert "being written" in reason or "changed since it was hashed" in reason
    assert "download.iso" not in {
        k for k, v in hub_latest(rig.hub.root, root.id).items() if not v[1]
    }
    assert report.recorded == 1  # the rest went through
    report = await rig.engine.sync_root(root)  # writer stopped: stat changed, so hashed again
    assert report.complete
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_file_changing_between_hash_and_upload_is_not_stored_wrongly(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file big enough to be hashed first and copied later (small ones are read once)."""
    docs = rig.folder()
    target = write(docs / "edited.bin", os.urandom(BIG))
    root = rig.add_root(docs)

    def hash_then_edit(path: Path) -> Hashed:
        result = hash_file(path)
        st = path.stat()
        path.write_bytes(os.urandom(BIG))  # same size, new bytes
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even hide it from stat
        return result

    monkeypatch.setattr(sync.passes.transfer, "hash_file", hash_then_edit)
    report = await rig.engine.sync_root(root)
    assert report.errors["edited.bin"][0] == "changed"
    assert not any(p.is_file() for p in (rig.hub.root / "user-files").rglob("*"))
    monkeypatch.undo()
    os.utime(target)  # the editor's save bumps mtime
    report = await rig.engine.sync_root(root)
    assert report.complete
    assert_hub_mirrors(rig.hub.root, root.id, docs)


def _without_root_powers() -> list[str]:
    """As root, run without the capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux's setpriv is needed to test unreadable files as root"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def test_unreadable_file_is_reported_and_the_rest_syncs(tmp_path: Path) -> None:
    """The real CLI in a subprocess: an unreadable file and folder, the rest syncs."""
    docs = tmp_path / "docs"
    write(docs / "readable.txt", "fine")
    secret = write(docs / "secret.txt", "no access")
    write(docs / "locked" / "inside.txt", "cannot list")
    secret.chmod(0)
    (docs / "locked").chmod(0)
    env = {**os.environ, "HUBSYNC_HOME": str(tmp_path / "home")}
    cli = [*_without_root_powers(), sys.executable, "-m", "agent"]
    try:
        add = subprocess.run([*cli, "add", str(docs)], env=env, capture_output=True, text=True)
        assert add.returncode == 0, add.stderr
        run = subprocess.run(
            [*cli, "sync", "--once", "--json"], env=env, capture_output=True, text=True
        )
    finally:
        secret.chmod(0o600)
        (docs / "locked").chmod(0o700)
    assert run.returncode == 2, run.stderr
    report = json.loads(run.stdout)[0]
    assert report["errors"]["secret.txt"]["reason"] == "cannot read: permission denied"
    assert "folder cannot be read" in report["errors"]["locked"]["reason"]
    assert report["recorded"] == 1
    again = subprocess.run([*cli, "sync", "--once"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout  # readable again: it syncs, exit 0
    assert "every file is in the hub" in again.stdout


def test_hash_matches_sha256_of_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = write(tmp_path / "f", data)
    assert hash_file(path).sha256 == sha_of(path)
    assert hash_file(path, chunk=4096).sha256 == sha_of(path)


def test_content_types_are_the_ones_mimetypes_gives() -> None:
    """Content types are cached by suffix; the cache never answers differently from
    ``mimetypes`` itself, hidden files, double suffixes and URL-like names included."""
    import mimetypes
    import random

    from sync.remotes.base import guess_content_type

    suffixes = [*mimetypes.types_map, *mimetypes.encodings_map, *mimetypes.suffix_map]
    suffixes += [".TXT", ".Md", "", ".x", ".tar", "."]
    rng = random.Random(3)
    names = [
        rng.choice(["f", ".", "..", "data:", "a:b", ""])
        + "".join(rng.choices(suffixes, k=rng.randint(0, 3)))
        for _ in range(20_000)
    ]
    for name in names:
        kind, _ = mimetypes.guess_type(name, strict=False)
        assert guess_content_type(name) == (kind or "application/octet-stream"), name
