"""One sync pass of a root, as an object with named phases:

- :meth:`SyncPass.discover` (:mod:`.discover`): walk, compare with the journal;
- :meth:`SyncPass.transfer` (:mod:`.transfer`): hash, dedup, upload a chunk;
- :meth:`SyncPass.record` (:mod:`.record`): the chunk in the hub's manifest, then
  the journal;
- :meth:`SyncPass.delete` (:mod:`.delete`): tombstones, as :mod:`sync.deletions`
  decides.

Work goes in chunks (a few hundred files or a few hundred MB): three are in flight,
one being hashed, one uploading, one being recorded, each waiting for its
predecessor in the same phase. The order of truth is blob → hub rows → journal, and
every step is idempotent, so a crash at any point is repaired by the next pass
without repeating an upload that finished (the hub is asked which hashes it has).
"""

from __future__ import annotations

import asyncio

from sync.deletions import DeletionQueue, MassDeletePolicy
from sync.journal import FileStat
from sync.journal.states import GONE
from sync.passes.context import PassContext
from sync.passes.delete import Deleter
from sync.passes.discover import Discovery, survey
from sync.passes.items import Chunk, Item, Sent, chunks
from sync.passes.record import Recorder
from sync.passes.report import PassFailure, PassReport
from sync.passes.transfer import Transfer
from sync.policy import FolderRules
from sync.progress import Progress
from sync.renames import moved_from

__all__ = ["PassContext", "PassFailure", "PassReport", "SyncPass"]


class SyncPass:
    def __init__(
        self, ctx: PassContext, *, mass_delete: MassDeletePolicy, queue: DeletionQueue
    ) -> None:
        self.ctx = ctx
        self._transfer = Transfer(ctx)
        self._deleter = Deleter(ctx, mass_delete, queue)
        self.found: Discovery | None = None
        self.deleting: list[str] = []
        """Paths deleted since the last pass: found missing, or vanished on the way."""

    async def discover(
        self, paths: list[str] | None, *, retry_errors: bool, rules: FolderRules
    ) -> Discovery:
        self.found = await survey(self.ctx, paths, retry_errors, rules)
        self.deleting = list(self.found.diff.deleted)
        return self.found

    async def transfer(self, chunk: Chunk) -> Sent:
        """Dedup and upload a chunk :meth:`run` had hashed."""
        return await self._transfer.upload(chunk)

    async def record(self, sent: Sent) -> None:
        assert self.found is not None
        vanished = await Recorder(self.ctx, self.found.rows).record(sent)
        self._vanished(vanished)

    async def delete(self, *, confirm: bool, wait_quiet: bool) -> None:
        assert self.found is not None
        await self._deleter.delete(
            self.deleting, self.found.rows, confirm=confirm, wait_quiet=wait_quiet
        )

    async def run(self, *, confirm: bool, wait_quiet: bool) -> None:
        """Every phase after :meth:`discover`, chunks overlapping."""
        assert self.found is not None
        ctx, d, rows = self.ctx, self.found.diff, self.found.rows
        items = [Item(rel, st) for rel, st in d.to_hash.items()]
        with ctx.journal.transaction():
            ctx.journal.mark_seen(ctx.root.id, (FileStat(i.relpath, *i.stat) for i in items))
        renamed = moved_from(d.renamed, rows)
        for item in items:
            item.moved_from = renamed.get(item.relpath)
        ctx.progress.state = Progress(
            "syncing",
            str(ctx.path),
            files_total=len(items),
            bytes_total=sum(i.size for i in items),
        )
        ctx.emit(ctx.state)
        recording: asyncio.Future[None] | None = None
        try:
            async for chunk in self._transfer.hashed_ahead(chunks(items)):
                sent = await self.transfer(chunk)
                if recording is not None:
                    await recording
                recording = asyncio.ensure_future(self.record(sent))
            if recording is not None:
                await recording
                recording = None
        except BaseException as exc:
            if recording is not None:
                # A failed upload lets the chunk before it finish recording; a
                # cancelled pass stops it (its blobs are found again next pass).
                if isinstance(exc, asyncio.CancelledError):
                    recording.cancel()
                await asyncio.gather(recording, return_exceptions=True)
            raise
        await self.delete(confirm=confirm, wait_quiet=wait_quiet)

    def _vanished(self, vanished: list[str]) -> None:
        """Files gone since the scan: deletions like the others, judged with them (a
        path that was gone before, back for a moment, is gone again as it was)."""
        if not vanished:
            return
        assert self.found is not None
        ctx, rows = self.ctx, self.found.rows
        self.deleting.extend(v for v in vanished if v in rows and rows[v].state not in GONE)
        with ctx.journal.transaction():
            ctx.journal.forget(
                ctx.root.id, (v for v in vanished if v not in rows or not rows[v].sha256)
            )
            ctx.journal.mark_gone_again(
                ctx.root.id,
                {v: rows[v].state for v in vanished if v in rows and rows[v].state in GONE},
            )
