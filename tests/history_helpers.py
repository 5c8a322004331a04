"""Versions recorded straight through a hub's API, for the compressed-history tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sync.remotes.base import ManifestEntry, Remote

DEVICE = "dev-1"
ROOT = "root-1"


def text_version(name: str, n: int, lines: int = 400) -> bytes:
    """A text that compresses well, different for each version ``n``."""
    body = "".join(
        f"{name}: line {i} of version {n}, the quick brown fox jumps over the lazy dog\n"
        for i in range(lines)
    )
    return body.encode()


async def save(
    hub: Remote, tmp: Path, relpath: str, data: bytes, version: int, device: str = DEVICE
) -> ManifestEntry:
    """Store ``data`` and record it as ``version`` of ``relpath`` (the engine's order)."""
    sha = hashlib.sha256(data).hexdigest()
    source = tmp / f"{sha}.src"
    source.write_bytes(data)
    name = relpath.rsplit("/", 1)[-1]
    known = await hub.find_blobs([sha])
    key = known.get(sha) or await hub.put_blob(source, sha, len(data), name, "text/plain")
    entry = ManifestEntry(
        device=device,
        root_id=ROOT,
        root_path="/home/u/docs",
        relpath=relpath,
        sha256=sha,
        size=len(data),
        mtime_ns=version,
        version=version,
        key=key,
        content_type="text/plain",
    )
    await hub.record([entry])
    return entry


async def read_back(hub: Remote, entry: ManifestEntry, tmp: Path) -> bytes:
    dest = tmp / f"read-{entry.sha256}-{entry.version}"
    dest.unlink(missing_ok=True)
    await hub.get_blob(entry.key, entry.sha256, dest)
    data = dest.read_bytes()
    dest.unlink()
    return data
