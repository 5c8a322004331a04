"""The compaction step: superseded versions stored compressed, revived ones raw again.

A blob (one content, keyed by its plaintext SHA-256) is *superseded* when no
path of any device and folder has it as its newest, live version: only then may
it be stored compressed, since EXAI and every other client read a current
version as is. Each blob goes through steps whose order makes a crash (kill -9)
at any point harmless, the hub's state being the only memory:

1. read the raw object (hash-checked) and pick a codec (:mod:`sync.compression`);
   content that does not shrink by 10% has its rows marked ``none`` (looked at,
   left raw) and is not tried again;
2. store the compressed object (``{user}/history/{sha[:2]}/{sha}.zst|.gz``) and
   make it durable;
3. read it back and check the plaintext's hash;
4. switch the manifest rows of the blob to the encoding, provided it is still
   not current anywhere (in one statement where the data is);
5. delete the raw object and its ``file_metadata`` row (EXAI never sees the
   compressed object: it has no row of its own).

A repeat after a crash picks up where the rows say: rows still ``''`` start
again at 1 (the raw object gone means 4 is what is left), rows switched while the
raw object remains go on at 5. Readers never depend on the rows: a hub that finds
no raw object reads the compressed one (``get``, ``pull`` and ``restore`` all do).

A blob that becomes current again (an old version restored, the same bytes saved
again by a device whose journal still knew the raw key) is *revived*: decoded,
stored raw under its key, its rows switched back and the compressed object
removed. Each call does a bounded amount of work; what is left waits for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from sync.compression import SUFFIX, decode_file, encode_file
from sync.errors import SyncError

log = logging.getLogger(__name__)

LEFT_RAW = "none"
"""The encoding of rows whose blob was looked at and is better left raw."""
BATCH = 64
"""Blobs asked for per query."""
STALE_WORK = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One stored object of a blob, as its manifest rows describe it."""

    sha256: str
    key: str
    size: int
    content_type: str
    encoding: str
    """'' while some row is not switched yet; else the encoding rows were switched to."""

    @property
    def filename(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@runtime_checkable
class PackedHistory(Protocol):
    """What a hub offers the compaction step (both hubs, see ``*_history`` modules)."""

    async def superseded(self, limit: int) -> list[Candidate]:
        """Blobs current nowhere whose rows are not switched yet, or whose raw object
        outlived the switch."""
        ...

    async def revived(self, limit: int) -> list[Candidate]:
        """Blobs current somewhere that have rows switched to a compressed encoding
        (the key is the current row's)."""
        ...

    async def read_raw(self, key: str, sha256: str, dest: Path) -> bool:
        """The raw object, hash-checked, into ``dest``; False when there is none."""
        ...

    async def read_packed(self, sha256: str, encoding: str, dest: Path) -> bool:
        """The compressed object's stored bytes into ``dest``; False when there is none."""
        ...

    async def put_packed(self, sha256: str, encoding: str, source: Path) -> None:
        """Store the compressed object durably (idempotent)."""
        ...

    async def switch(self, sha256: str, key: str, encoding: str, stored_size: int) -> bool:
        """Rows of (sha256, key) to ``encoding``, unless the blob is current somewhere
        (then False and nothing changes)."""
        ...

    async def drop_raw(self, key: str, sha256: str) -> None:
        """Delete the raw object and its file_metadata row (idempotent)."""
        ...

    async def put_raw(self, candidate: Candidate, source: Path) -> None:
        """Store ``source`` (the plaintext) raw under ``candidate.key``."""
        ...

    async def unpack(self, sha256: str) -> None:
        """Every row of the blob back to raw, then the compressed objects removed."""
        ...

    async def stats(self) -> HistoryStats:
        """What compressed history saves in this hub."""
        ...


@dataclass(frozen=True, slots=True)
class HistoryStats:
    blobs: int = 0
    """Contents stored compressed."""
    raw_bytes: int = 0
    stored_bytes: int = 0

    @property
    def saved(self) -> int:
        return self.raw_bytes - self.stored_bytes


@dataclass(slots=True)
class CompactionReport:
    compressed: int = 0
    left_raw: int = 0
    revived: int = 0
    bytes_before: int = 0
    """Raw size of the blobs compressed in this call."""
    bytes_after: int = 0
    """Their compressed size."""
    failed: int = 0

    @property
    def saved(self) -> int:
        return self.bytes_before - self.bytes_after


StepHook = Callable[[str, Candidate], Awaitable[None]]
"""Called after each step (its name, the blob): tests stop the step there."""


async def _no_hook(_step: str, _candidate: Candidate) -> None:
    return None


async def compact(
    hub: PackedHistory,
    *,
    max_blobs: int = BATCH,
    max_bytes: int = 256 * 1024 * 1024,
    work_dir: Path | None = None,
    after_step: StepHook = _no_hook,
    revive_only: bool = False,
) -> CompactionReport:
    """One bounded round: revive what is current again, then (unless ``revive_only``)
    compress up to ``max_blobs`` superseded blobs or ``max_bytes`` of their raw size.
    Copies being worked on go to a temp folder in ``work_dir`` (a disk, not a RAM-backed
    /tmp)."""
    report = CompactionReport()
    work = await asyncio.to_thread(_new_work_dir, work_dir)
    try:
        for candidate in await hub.revived(max_blobs):
            try:
                await _revive(hub, candidate, work, after_step)
                report.revived += 1
            except SyncError as exc:
                report.failed += 1
                log.warning("could not store %s raw again: %s", candidate.sha256, exc.message)
        budget = 0 if revive_only else max_bytes
        for candidate in [] if revive_only else await hub.superseded(max_blobs):
            if budget <= 0:
                break
            budget -= candidate.size
            try:
                await _compress(hub, candidate, work, report, after_step)
            except SyncError as exc:
                report.failed += 1
                log.warning("could not compress %s: %s", candidate.sha256, exc.message)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
    return report


def _new_work_dir(parent: Path | None) -> Path:
    """A temp folder for one round; those of rounds killed a day ago or more are removed
    (a round that is still running is never that old)."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
        stale = time.time() - STALE_WORK
        for old in parent.glob("hubsync-compact-*"):
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < stale:
                    shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="hubsync-compact-", dir=parent))


async def _compress(
    hub: PackedHistory,
    c: Candidate,
    work: Path,
    report: CompactionReport,
    after_step: StepHook,
) -> None:
    if c.encoding in SUFFIX:  # switched before a crash: only the raw object is left to go
        if await _verified_packed(hub, c.sha256, c.encoding, work) is not None:
            await hub.drop_raw(c.key, c.sha256)
            await after_step("dropped", c)
        return
    raw = work / "raw"
    raw.unlink(missing_ok=True)
    if not await hub.read_raw(c.key, c.sha256, raw):
        await _adopt_packed(hub, c, work)  # killed after the raw object went: step 4
        return
    await after_step("read", c)
    encoded = await asyncio.to_thread(encode_file, raw, c.filename, work)
    if encoded is None:
        await hub.switch(c.sha256, c.key, LEFT_RAW, c.size)
        report.left_raw += 1
        return
    await hub.put_packed(c.sha256, encoded.encoding, encoded.path)
    await after_step("stored", c)
    encoded.path.unlink()
    if await _verified_packed(hub, c.sha256, encoded.encoding, work) is None:
        return
    await after_step("verified", c)
    if not await hub.switch(c.sha256, c.key, encoded.encoding, encoded.size):
        return  # current again meanwhile: it stays raw
    await after_step("switched", c)
    await hub.drop_raw(c.key, c.sha256)
    await after_step("dropped", c)
    report.compressed += 1
    report.bytes_before += c.size
    report.bytes_after += encoded.size


async def _verified_packed(
    hub: PackedHistory, sha256: str, encoding: str, work: Path
) -> int | None:
    """The stored size of the compressed object when it decodes to ``sha256``."""
    packed, plain = work / "packed", work / "plain"
    packed.unlink(missing_ok=True)
    plain.unlink(missing_ok=True)
    if not await hub.read_packed(sha256, encoding, packed):
        return None
    await asyncio.to_thread(decode_file, packed, plain, encoding, sha256)  # IntegrityError
    plain.unlink()
    return packed.stat().st_size


async def _adopt_packed(hub: PackedHistory, c: Candidate, work: Path) -> None:
    """The raw object is gone: the rows take the compressed object that replaced it."""
    for encoding in SUFFIX:
        stored = await _verified_packed(hub, c.sha256, encoding, work)
        if stored is not None:
            await hub.switch(c.sha256, c.key, encoding, stored)
            return
    log.warning("the hub has neither a raw nor a compressed copy of %s", c.sha256)


async def _revive(hub: PackedHistory, c: Candidate, work: Path, after_step: StepHook) -> None:
    packed, plain = work / "packed", work / "plain"
    packed.unlink(missing_ok=True)
    plain.unlink(missing_ok=True)
    if not await hub.read_raw(c.key, c.sha256, plain):
        if not await hub.read_packed(c.sha256, c.encoding, packed):
            log.warning("the hub has no copy of %s to store raw again", c.sha256)
            return
        await asyncio.to_thread(decode_file, packed, plain, c.encoding, c.sha256)
        await hub.put_raw(c, plain)
        await after_step("raw again", c)
    await hub.unpack(c.sha256)
    await after_step("unpacked", c)


def packed_key(user_id: str, sha256: str, encoding: str) -> str:
    """Where the compressed object of a blob lies: not under the blob's own folder, so
    nothing that lists or reads raw objects (EXAI, dedup probes) ever meets it."""
    return f"{user_id}/history/{sha256[:2]}/{sha256}{SUFFIX[encoding]}"
