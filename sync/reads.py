"""Recording reads of hub files: ``access_count``/``last_accessed`` and ``download`` rows.

Every file that ``get``/``pull`` brings out of the hub counts as one read on the
hub it belongs to (a cache hit too: the user read the file; the cache only saved
the transfer), or on the hub that served an offline copy. Recording is best
effort: a read that worked is not failed because its bookkeeping could not be
written; it is logged and left.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sync.errors import SyncError
from sync.remotes.base import ManifestEntry, Operation, ReadLog, Remote

log = logging.getLogger(__name__)


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat()


class ReadRecorder:
    """Collects the reads of one command and writes them per hub in one batch."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[Remote, list[Operation]]] = {}
        self._stamps: dict[float, str] = {}
        """ISO forms of the last times seen: a batch of files shares its two times."""

    def _iso(self, stamp: float) -> str:
        text = self._stamps.get(stamp)
        if text is None:
            if len(self._stamps) > 8:
                self._stamps.clear()
            text = self._stamps[stamp] = _iso(stamp)
        return text

    def add(
        self,
        hub: Remote | None,
        source: str,
        offline: bool,
        entry: ManifestEntry,
        started: float,
        finished: float = 0.0,
    ) -> None:
        """One read of ``entry`` from ``hub``, served from ``source`` (sync.routing.Served:
        the cache or a kind of hub; ``offline``: not the folder's hub); ``finished``
        (when it ended) defaults to now."""
        if hub is None:
            return  # the folder's hub is not connected and nothing else was asked
        finished = finished or time.time()
        operation = Operation(
            operation="download",
            status="completed",
            key=entry.key,
            sha256=entry.sha256,
            bytes=entry.size,
            started_at=self._iso(started),
            finished_at=self._iso(finished),
            duration_ms=int((finished - started) * 1000),
            metadata={
                "source": source,
                "offline_copy": "true" if offline else "false",
                "device_id": entry.device,
                "root_path": entry.root_path,
                "rel_path": entry.relpath,
                "version": str(entry.version),
            },
        )
        self._pending.setdefault(id(hub), (hub, []))[1].append(operation)

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for remote, operations in pending.values():
            if not isinstance(remote, ReadLog):
                continue
            try:
                await remote.record_reads(operations)
            except SyncError as exc:
                log.warning(
                    "%d reads could not be recorded on the %s hub: %s",
                    len(operations),
                    remote.kind,
                    exc.message,
                )


__all__ = ["ReadRecorder"]
