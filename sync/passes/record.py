"""The record phase: a chunk whose blobs are in the hub is recorded in the hub's
manifest, then in the journal (the order of truth: blob → hub rows → journal)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sync.errors import AuthError, HubSwitched, LocalFileError, SyncError, TransientError
from sync.journal import Failure, FileRow, Logged, Recording, SyncedFile
from sync.journal.log import UPLOAD
from sync.journal.states import GONE
from sync.passes.context import PassContext
from sync.passes.items import Item, Sent
from sync.remotes.base import ManifestEntry, Operation, guess_content_type
from sync.transfer import retry_delay, with_retries

log = logging.getLogger("hubsync.engine")


class Recorder:
    def __init__(self, ctx: PassContext, rows: Mapping[str, FileRow]) -> None:
        self.ctx = ctx
        self.rows = rows
        """The rows of the pass's files as it found them."""

    async def record(self, sent: Sent) -> list[str]:
        """Record an uploaded chunk in the hub and the journal; returns paths that vanished."""
        chunk, hub_keys, uploads = sent.chunk, sent.hub_keys, sent.uploads
        # Equal content elsewhere in the chunk rides on the uploaded blob.
        recordable: list[Item] = []
        for item in sent.hashed:
            assert item.hashed is not None
            key = hub_keys.get(item.hashed.sha256)
            if key is None:
                first = uploads.get(item.hashed.sha256)
                if first is not None and first.relpath in chunk.failed and first is not item:
                    chunk.fail_with(item.relpath, first.relpath)
                continue
            if chunk.lost(item.relpath):
                continue
            item.key = key
            recordable.append(item)
        rejected = await self._record(recordable)
        chunk.reject(rejected)
        await log_operations(self.ctx, sent.operations)
        self._record_failures(chunk.failed)
        self.ctx.progress.flush()
        self.ctx.emit(self.ctx.state)
        return chunk.vanished

    async def _record(self, items: Sequence[Item]) -> dict[str, SyncError]:
        """Record ``items`` in the hub, then the journal; returns those the hub rejected."""
        if not items:
            return {}
        ctx, journal, root = self.ctx, self.ctx.journal, self.ctx.root
        device = journal.device_id
        entries: list[ManifestEntry] = []
        synced: list[SyncedFile] = []
        # The rows as they are now, not as the pass found them: what a killed pass (or
        # another process) recorded since is not recorded again as a new version.
        current = {**self.rows, **journal.files_for(root.id, [i.relpath for i in items])}
        for item in items:
            h = item.hashed
            assert h is not None and item.key is not None
            row = current.get(item.relpath)
            same = row is not None and row.state not in GONE and row.sha256 == h.sha256
            version = (row.version if row else 0) + (0 if same and row and row.version else 1)
            entries.append(
                ManifestEntry(
                    device=device,
                    root_id=root.id,
                    root_path=str(root.path),
                    relpath=item.relpath,
                    sha256=h.sha256,
                    size=h.size,
                    mtime_ns=h.mtime_ns,
                    version=version,
                    key=item.key,
                    content_type=guess_content_type(item.relpath.rsplit("/", 1)[-1]),
                )
            )
            synced.append(
                SyncedFile(item.relpath, h.size, h.mtime_ns, h.inode, h.sha256, version, item.key)
            )
        # Before the hub learns of them: if the hub records them but the journal does
        # not (killed, or the answer is lost), a later deletion still leaves a tombstone.
        with journal.transaction():
            journal.mark_recording(
                root.id, [Recording(s.relpath, s.sha256, s.version, s.key) for s in synced]
            )
        rejected = await self._record_entries(entries)
        if rejected:
            synced = [s for s in synced if s.relpath not in rejected]
        now = ctx.clock()
        with journal.transaction():
            if journal.hub_seen(root.hub)[0] != ctx.hub_at_start:
                # Switched to another hub (another account) mid-pass: what went to the old
                # one must not count as synced; the rows stay recording for the new one.
                raise HubSwitched(root.hub)
            journal.mark_synced(root.id, synced, now)
            journal.log_many(
                (Logged(UPLOAD, root.id, s.relpath, s.sha256, s.size, None) for s in synced), now
            )
        ctx.report.recorded += len(synced)
        return rejected

    async def _record_entries(self, entries: Sequence[ManifestEntry]) -> dict[str, SyncError]:
        """Record ``entries`` in the hub; returns those it rejected, by relpath.

        A batch the hub rejects is tried entry by entry, so that one bad row fails one
        file instead of every file of the chunk, pass after pass.
        """
        remote, retry = self.ctx.remote, self.ctx.retry
        try:
            await with_retries(lambda: remote.record(entries), retry)
            return {}
        except (AuthError, TransientError):
            raise
        except SyncError as exc:
            if len(entries) == 1:
                return {entries[0].relpath: exc}
        rejected: dict[str, SyncError] = {}
        for entry in entries:
            try:
                await with_retries(lambda e=entry: remote.record([e]), retry)  # type: ignore[misc]
            except (AuthError, TransientError):
                raise
            except SyncError as exc:
                rejected[entry.relpath] = exc
        return rejected

    def _record_failures(self, failed: Mapping[str, SyncError]) -> None:
        if not failed:
            return
        ctx, journal, root = self.ctx, self.ctx.journal, self.ctx.root
        now = ctx.clock()
        rows = journal.files_for(root.id, failed)
        with journal.transaction():
            for rel, exc in failed.items():
                attempts = rows[rel].attempts if rel in rows else 0
                journal.mark_error(
                    root.id, rel, exc.kind, exc.message, retry_delay(attempts, exc.kind), now
                )
                ctx.report.errors[rel] = (exc.kind, exc.message)
            journal.record_failures(
                root.id,
                (
                    Failure(rel, exc.kind, exc.message, _failed_operation(exc))
                    for rel, exc in failed.items()
                ),
                now,
            )


async def log_operations(ctx: PassContext, operations: Sequence[Operation]) -> None:
    """The hub's ``file_operations`` log; best effort: the files are what matters."""
    if not operations:
        return
    try:
        await with_retries(lambda: ctx.remote.log_operations(operations), ctx.retry)
    except SyncError as exc:
        log.warning("could not log %d operations in the hub: %s", len(operations), exc.message)


def _failed_operation(exc: SyncError) -> str:
    """What a file's failure stopped: reading it here, or sending it to the hub."""
    return "read" if isinstance(exc, LocalFileError) else "upload"
