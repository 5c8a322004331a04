"""The delete phase: what :mod:`sync.deletions` decides, carried out — tombstones in
the hub (never blobs), then the journal; held deletions wait for the user."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sync.deletions import DeletionQueue, MassDeletePolicy, Plan, decide, sort_deleted
from sync.journal import FileRow, FileState, Logged, Tombstone
from sync.journal.log import DELETE, MOVED
from sync.passes.context import PassContext
from sync.passes.items import CHUNK_FILES, operation
from sync.passes.record import log_operations
from sync.remotes.base import ManifestEntry
from sync.transfer import with_retries


class Deleter:
    def __init__(self, ctx: PassContext, policy: MassDeletePolicy, queue: DeletionQueue) -> None:
        self.ctx = ctx
        self.policy = policy
        self.queue = queue

    async def delete(
        self,
        deleting: Sequence[str],
        rows: Mapping[str, FileRow],
        *,
        confirm: bool,
        wait_quiet: bool = False,
    ) -> None:
        """Tombstone deleted files, unless it looks like an accident (see
        :mod:`sync.deletions`); ``wait_quiet``: new deletions wait for the folder to be
        quiet (:attr:`MassDeletePolicy.settle`)."""
        ctx, journal, root_id = self.ctx, self.ctx.journal, self.ctx.root.id
        recorded = [rel for rel in deleting if rel in rows and rows[rel].recorded]
        still_there = await self.still_there(recorded)
        sorted_ = sort_deleted(deleting, rows, still_there)
        if sorted_.forget or sorted_.unmirror:
            with journal.transaction():
                journal.forget(root_id, sorted_.forget)
                journal.mark_unmirrored(root_id, sorted_.unmirror)
        candidates = sorted_.tombstone
        if not confirm and self.policy.settle > 0:
            candidates, rows = await self._settled(candidates, rows, wait_quiet)
        if not candidates:
            return
        now = ctx.clock()
        plan = decide(
            candidates,
            rows,
            elsewhere=journal.synced_hashes(root_id, besides=set(candidates)),
            recent=journal.recent_deletions(root_id, now - self.policy.window),
            tracked=journal.tracked_count(root_id),
            joining=not confirm and journal.held_since(root_id, now - self.policy.window),
            confirm=confirm,
            policy=self.policy,
        )
        if plan.hold:
            with journal.transaction():
                journal.mark_held(root_id, plan.hold, ctx.clock())
        if not confirm:
            ctx.report.held_deletes = plan.held
        if plan.apply:
            await self._tombstone(plan, rows)

    async def _tombstone(self, plan: Plan, rows: Mapping[str, FileRow]) -> None:
        ctx, journal, root = self.ctx, self.ctx.journal, self.ctx.root
        device = journal.device_id
        entries = []
        marks: list[Tombstone] = []
        for rel in plan.apply:
            row = rows[rel]
            assert row.sha256 is not None and row.remote_key is not None
            version = row.version + 1
            entries.append(
                ManifestEntry(
                    device=device,
                    root_id=root.id,
                    root_path=str(root.path),
                    relpath=rel,
                    sha256=row.sha256,
                    size=row.size,
                    mtime_ns=row.mtime_ns,
                    version=version,
                    key=row.remote_key,
                    deleted=True,
                )
            )
            marks.append(
                Tombstone(rel, version, row.sha256, row.size, row.mtime_ns, row.remote_key)
            )
        for start in range(0, len(entries), CHUNK_FILES):
            batch = entries[start : start + CHUNK_FILES]
            await with_retries(lambda b=batch: ctx.remote.record(b), ctx.retry)  # type: ignore[misc]
            await log_operations(
                ctx,
                [
                    operation("delete", None, e.sha256, e.size, e.relpath, e.key, None)
                    for e in batch
                ],
            )
            now = ctx.clock()
            done = marks[start : start + CHUNK_FILES]
            with journal.transaction():
                journal.mark_deleted(root.id, done, now)
                journal.log_many(
                    (
                        Logged(
                            DELETE,
                            root.id,
                            m.relpath,
                            m.sha256,
                            m.size,
                            MOVED if m.relpath in plan.moved else None,
                        )
                        for m in done
                    ),
                    now,
                )
        ctx.report.deleted += len(entries)

    async def _settled(
        self, candidates: list[str], rows: Mapping[str, FileRow], wait: bool
    ) -> tuple[list[str], Mapping[str, FileRow]]:
        """The deletions to judge now: none new while the folder is not quiet yet (only
        those held already), then every deletion seen meanwhile, all together; without
        ``wait``, every deletion seen so far at once."""
        ctx, root_id = self.ctx, self.ctx.root.id
        now = ctx.clock()
        held = [r for r in candidates if rows[r].state == FileState.HELD]
        pending = self.queue.add(root_id, [r for r in candidates if r not in held], now)
        if not pending:
            return candidates, rows
        if wait and not self.queue.quiet(root_id, now, self.policy.settle):
            ctx.report.deferred = len(pending)
            return held, rows
        earlier = self.queue.take(root_id).difference(candidates)
        found = {
            r: row
            for r, row in ctx.journal.files_for(root_id, earlier).items()
            if row.state in (FileState.SYNCED, FileState.HELD) and row.sha256
        }
        back = await self.still_there(found)
        gone = {r: row for r, row in found.items() if r not in back}
        return [*candidates, *gone], {**rows, **gone}

    async def still_there(self, relpaths: Iterable[str]) -> set[str]:
        """Which of ``relpaths`` are still there as files (looked at off the event loop)."""
        wanted = list(relpaths)
        if not wanted:
            return set()
        return await self.ctx.off_loop(files_still_there, self.ctx.path, wanted)


def files_still_there(base: Path, relpaths: list[str]) -> set[str]:
    """The paths that still name something other than a folder, by their exact name (a
    case-only rename on a case-insensitive disk, or a folder in its place, is a change)."""
    listings: dict[str, set[str] | None] = {}
    there: set[str] = set()
    for rel in relpaths:
        parent, _, name = rel.rpartition("/")
        try:
            if stat.S_ISDIR(os.lstat(base / rel).st_mode):
                continue
        except OSError:
            continue
        if parent not in listings:
            try:
                listings[parent] = set(os.listdir(base / parent))
            except OSError:
                listings[parent] = None
        names = listings[parent]
        if names is not None and name in names:
            there.add(rel)
    return there
