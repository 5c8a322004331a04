"""One-off uploads of files outside the mirrored folders (the tray's drop window).

The files go to the hub (deduplicated like everything else) but are not
mirrored: no manifest rows, only ``file_metadata`` and an ``upload``
operation. Each item reports progress and ends with a link to share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent.control.payloads import LINK_LIFETIME, UploadEvent
from sync.errors import SyncError
from sync.hashing import hash_file
from sync.remotes.base import Operation, Remote, guess_content_type
from sync.scan import walk
from sync.transfer import RetryPolicy, with_retries

log = logging.getLogger("hubsync.oneoff")
Publish = Callable[[UploadEvent], object]


def expand(paths: list[Path]) -> list[tuple[Path, str]]:
    """Files to upload with the name they get: folders become their files, by relative path."""
    items: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for rel in sorted(walk(path).files):
                items.append((path / rel, f"{path.name}/{rel}"))
        else:
            items.append((path, path.name))
    return items


async def upload_one(
    remote: Remote, path: Path, name: str, publish: Publish, retry: RetryPolicy, link_ttl: int
) -> UploadEvent:
    started = time.time()
    item: UploadEvent = {"path": str(path), "name": name, "state": "hashing"}
    publish(item.copy())
    try:
        hashed = await asyncio.to_thread(hash_file, path)
        loop = asyncio.get_running_loop()
        sent = 0

        def moved_on_loop(n: int) -> None:
            nonlocal sent
            sent += n
            progress = item.copy()
            progress.update({"state": "uploading", "bytes_done": sent, "bytes_total": hashed.size})
            publish(progress)

        def moved(n: int) -> None:  # called by the hub from the thread doing the transfer
            loop.call_soon_threadsafe(moved_on_loop, n)

        known = await with_retries(lambda: remote.find_blobs([hashed.sha256]), retry)
        key = known.get(hashed.sha256)
        if key is None:
            key = await with_retries(
                lambda: remote.put_blob(
                    path,
                    hashed.sha256,
                    hashed.size,
                    path.name,
                    guess_content_type(path.name),
                    moved,
                ),
                retry,
            )
        await with_retries(lambda: remote.record([]), retry)
        link = await remote.signed_url(key, link_ttl)
        item.update(
            {
                "state": "done",
                "ok": True,
                "key": key,
                "sha256": hashed.sha256,
                "size": hashed.size,
                "link": link,
                "deduplicated": hashed.sha256 in known,
            }
        )
        status, error = "completed", None
    except SyncError as exc:
        item.update({"state": "failed", "ok": False, "error": exc.message, "kind": exc.kind})
        status, error = "failed", exc.message
    publish(item.copy())
    finished = time.time()
    op = Operation(
        operation="upload",
        status=status,
        key=item.get("key"),
        sha256=item.get("sha256"),
        bytes=item.get("size", 0),
        started_at=datetime.fromtimestamp(started, UTC).isoformat(),
        finished_at=datetime.fromtimestamp(finished, UTC).isoformat(),
        duration_ms=int((finished - started) * 1000),
        error=error,
        metadata={"source": "drop", "name": name},
    )
    try:
        await remote.log_operations([op])
    except SyncError as exc:  # the upload is what the user asked for; its log row is best effort
        log.warning("could not record the upload of %s: %s", name, exc.message)
    return item


async def upload_paths(
    remote: Remote,
    paths: list[Path],
    publish: Publish,
    retry: RetryPolicy | None = None,
    link_ttl: int = LINK_LIFETIME,
) -> list[UploadEvent]:
    retry = retry or RetryPolicy()
    results = []
    for path, name in expand(paths):
        results.append(await upload_one(remote, path, name, publish, retry, link_ttl))
    return results
