"""Downloads into the cache that survive a crash: ``partial/<sha>.part`` beside a note of
what the hub said about the object, under a lock the kernel drops when the process ends."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

try:
    import fcntl
except ImportError:  # Windows: one process per cache is assumed there
    fcntl = None  # type: ignore[assignment]

from sync.errors import IntegrityError
from sync.remotes.base import PartialBlob, ProgressFn, ResumableGet

if TYPE_CHECKING:
    from sync.cache import BlobCache


async def download_resuming(
    cache: BlobCache,
    remote: ResumableGet,
    key: str,
    sha256: str,
    bucket: str,
    progress: ProgressFn | None,
) -> Path:
    """Download into ``partial/<sha>.part``, which survives a crash together with
    ``<sha>.json`` (what the hub said about the object): the next attempt, in this
    process or the next, asks only for the rest."""
    part = cache.partial_dir / f"{sha256}.part"
    note = part.with_suffix(".json")
    with _PartLock(part) as locked:
        if not locked:  # another process is downloading it: a download of our own
            temp = cache.tmp_dir / f"{uuid.uuid4().hex}.part"
            try:
                await remote.resume_blob(key, sha256, temp, None, _keep_nothing, progress, bucket)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            return cache.admit(temp, sha256)
        known = _read_note(note, key, sha256)
        try:
            await remote.resume_blob(
                key, sha256, part, known, functools.partial(_write_note, note), progress, bucket
            )
        except IntegrityError:
            note.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
            raise
        path = cache.admit(part, sha256)
        note.unlink(missing_ok=True)
        return path


def _keep_nothing(_partial: PartialBlob) -> None:
    """A download that is not kept across restarts."""


def _read_note(note: Path, key: str, sha256: str) -> PartialBlob | None:
    """What a previous attempt learnt about the object; None when absent or not this one."""
    try:
        known = PartialBlob(**json.loads(note.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return known if (known.key, known.sha256) == (key, sha256) else None


def _write_note(note: Path, known: PartialBlob) -> None:
    temp = note.with_suffix(".json.tmp")
    temp.write_text(json.dumps(dataclasses.asdict(known)), encoding="utf-8")
    os.replace(temp, note)


class _PartLock:
    """An exclusive, non-blocking ``flock`` on ``<part>.lock``; the kernel drops it
    when the process ends, however it ends. Entering gives False when it is held."""

    def __init__(self, part: Path) -> None:
        self._path = part.with_suffix(".lock")
        self._fd = -1

    def __enter__(self) -> bool:
        if fcntl is None:
            return True
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = -1
            return False
        return True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
