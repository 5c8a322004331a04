"""Bytes in and out of Storage for :class:`~.remote.SupabaseRemote`: downloads
resumed from what a file on disk keeps, and uploads read once and verified."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import httpx

from sync.errors import FileChangedError, LocalFileError
from sync.remotes.base import PartialBlob, ProgressFn

DOWNLOAD_BLOCK = 1024 * 1024


def forget_partial(_partial: PartialBlob) -> None:
    """A one-shot download keeps nothing across restarts."""


def size_on_disk(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def range_start(content_range: str | None) -> int:
    """The first byte of ``bytes A-B/N``; 0 without one (a whole-object answer)."""
    if not content_range or not content_range.startswith("bytes "):
        return 0
    first = content_range[len("bytes ") :].split("-", 1)[0]
    return int(first) if first.isdigit() else -1


def total_size(response: httpx.Response, have: int) -> int:
    total = (response.headers.get("content-range") or "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = response.headers.get("content-length", "")
    return have + int(length) if length.isdigit() else -1


async def append_body(
    response: httpx.Response, dest: Path, offset: int, progress: ProgressFn | None
) -> None:
    """The body after the ``offset`` bytes ``dest`` keeps (all of it replaced at 0)."""
    handle = await asyncio.to_thread(open, dest, "r+b" if offset else "wb")
    try:
        await asyncio.to_thread(handle.truncate, offset)
        await asyncio.to_thread(handle.seek, offset)
        async for block in response.aiter_bytes(DOWNLOAD_BLOCK):
            await asyncio.to_thread(handle.write, block)
            if progress is not None:
                progress(len(block))
    finally:
        await asyncio.to_thread(handle.close)


async def write_small(response: httpx.Response, dest: Path, progress: ProgressFn | None) -> str:
    """A body smaller than a block: gathered in memory, then written and hashed in one
    trip to a thread (a thread hop per open, write and close cost more than the bytes);
    returns its SHA-256."""
    blocks: list[bytes] = []
    async for block in response.aiter_bytes(DOWNLOAD_BLOCK):
        blocks.append(block)
        if progress is not None:
            progress(len(block))
    return await asyncio.to_thread(write_hashed, dest, b"".join(blocks))


def write_hashed(dest: Path, data: bytes) -> str:
    with open(dest, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    """The whole file's hash, prefix from before a restart included."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(DOWNLOAD_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def info_size(info: Any) -> int | None:
    if not isinstance(info, dict):
        return None
    for holder in (info, info.get("metadata") or {}):
        for name in ("size", "contentLength", "content_length"):
            value = holder.get(name)
            if isinstance(value, int):
                return value
    return None


def read_verified(source: Path, sha256: str, size: int) -> bytes:
    """The file's bytes, provided they are still the ones that were hashed."""
    try:
        with open(source, "rb") as handle:
            data = handle.read(size + 1)
    except FileNotFoundError:
        raise FileChangedError("the file vanished before it was uploaded") from None
    except OSError as exc:
        raise LocalFileError(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise FileChangedError("the file changed since it was hashed")
    return data
