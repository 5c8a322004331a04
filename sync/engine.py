"""The sync engine: runs passes (:mod:`sync.passes`) over mirrored folders.

It owns what outlives one pass — the hubs, the hash threads, the policies, the
deletions waiting for a folder to be quiet — and turns what ends a pass early into
the pass's report (:class:`PassFailure`), never into a crash of its caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from sync.deletions import DeletionQueue, MassDeletePolicy
from sync.errors import AuthError, SyncError
from sync.issues import hub_error_row
from sync.journal import Failure, FileState, Journal, Root
from sync.journal.issues import WHOLE_FOLDER
from sync.passes import PassContext, PassFailure, PassReport, SyncPass
from sync.passes.delete import Deleter
from sync.policy import FolderRules
from sync.progress import Progress, ProgressSink, ThreadedProgress
from sync.remotes.base import ErrorMirror, Remote
from sync.throttle import Bandwidth
from sync.transfer import RetryPolicy
from sync.workers import WorkerProcesses

__all__ = [
    "MassDeletePolicy",
    "PassFailure",
    "PassReport",
    "Progress",
    "ProgressSink",
    "SyncEngine",
]

log = logging.getLogger("hubsync.engine")


class SyncEngine:
    def __init__(
        self,
        journal: Journal,
        remotes: Mapping[str, Remote],
        *,
        hash_threads: int = 2,
        hash_processes: int = 2,
        workers: int = 4,
        mass_delete: MassDeletePolicy | None = None,
        retry: RetryPolicy | None = None,
        upload_limit: Bandwidth | None = None,
        folder_rules: Callable[[Root], FolderRules] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.remotes = remotes
        self.workers = workers
        self.mass_delete = mass_delete or MassDeletePolicy()
        self.retry = retry or RetryPolicy()
        self.upload_limit = upload_limit or Bandwidth()
        self.folder_rules = folder_rules or (lambda _root: FolderRules())
        """The user's allow/deny lists of a folder (see sync/policy.py)."""
        self.clock = clock
        self._hash_pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="hubsync-hash")
        self._hash_processes = (
            WorkerProcesses(hash_processes, name="hubsync-hash-workers")
            if hash_processes > 0
            else None
        )
        self._waiting_deletes = DeletionQueue()
        """Deletions seen but not judged yet (``MassDeletePolicy.settle``)."""

    def close(self) -> None:
        self._hash_pool.shutdown(wait=True, cancel_futures=True)
        if self._hash_processes is not None:
            self._hash_processes.close()

    def remote_for(self, root: Root) -> Remote:
        try:
            return self.remotes[root.hub]
        except KeyError:
            raise AuthError(
                f"the {root.hub} hub is not available (not configured or signed out)"
            ) from None

    def _context(self, root: Root, remote: Remote, emit: ProgressSink) -> PassContext:
        return PassContext(
            journal=self.journal,
            root=root,
            remote=remote,
            report=PassReport(root),
            emit=emit,
            progress=ThreadedProgress(
                Progress("syncing", str(root.path)), asyncio.get_running_loop()
            ),
            pool=self._hash_pool,
            processes=self._hash_processes,
            retry=self.retry,
            upload_limit=self.upload_limit,
            workers=self.workers,
            clock=self.clock,
            hub_at_start=self.journal.hub_seen(root.hub)[0],
        )

    # -- entry points -------------------------------------------------------------------

    async def sync_root(
        self,
        root: Root,
        *,
        paths: Iterable[str] | None = None,
        confirm_deletes: bool = False,
        retry_errors: bool = False,
        progress: ProgressSink | None = None,
        settle: bool = True,
    ) -> PassReport:
        """Bring the hub up to date with ``root`` (all of it, or only ``paths`` and below).

        Files that failed are tried again when their retry time has come, or
        at once with ``retry_errors`` (a pass the user asked for). Without ``settle``
        (a pass the user asked for) deletions are judged at once, not when quiet.
        """
        if not root.path.is_dir():
            report = PassReport(root)
            report.fail("local", f"folder {root.path} is not reachable")
            return report
        emit = progress or (lambda _p: None)
        ctx = self._context(root, self.remote_for(root), emit)
        report = ctx.report
        emit(Progress("scanning", str(root.path)))
        one = SyncPass(ctx, mass_delete=self.mass_delete, queue=self._waiting_deletes)
        found = await one.discover(
            None if paths is None else list(paths),
            retry_errors=retry_errors,
            rules=self.folder_rules(root),
        )
        try:
            await one.run(confirm=confirm_deletes, wait_quiet=settle)
        except SyncError as exc:
            # The hub stopped answering mid-pass (after retries), wants a sign-in, or
            # failed otherwise: what was done is committed, the rest waits for the
            # next pass. It ends the pass, never the agent.
            report.stopped(exc)
        self._note_pass_errors(root, report, found.unread, whole=paths is None)
        if report.failure is None:  # the hub is in trouble: the next good pass writes them
            await self._mirror_errors(ctx.remote)
        emit(Progress("done", str(root.path)))
        return report

    async def apply_held(self, root: Root, relpaths: Collection[str]) -> PassReport:
        """Tombstone the held deletions the user confirmed, and only those: a file that is
        back, or no longer held, is left alone (a later deletion waits for its own yes)."""
        held = {
            r: row
            for r, row in self.journal.files_for(root.id, relpaths).items()
            if row.state == FileState.HELD
        }
        try:
            remote = self.remote_for(root)
        except AuthError as exc:
            report = PassReport(root)
            report.stopped(exc)
            return report
        ctx = self._context(root, remote, lambda _p: None)
        deleter = Deleter(ctx, self.mass_delete, self._waiting_deletes)
        back = await deleter.still_there(held)
        rows = {rel: row for rel, row in held.items() if rel not in back}
        try:
            await deleter.delete(sorted(rows), rows, confirm=True)
        except SyncError as exc:
            ctx.report.stopped(exc)
        return ctx.report

    # -- failures of the folder as a whole ------------------------------------------------

    def _note_pass_errors(
        self, root: Root, report: PassReport, unread: set[str], *, whole: bool
    ) -> None:
        """Group the failures of the folder as a whole and of folders that could not be
        read, and settle those no longer there: the whole folder's by any pass, unread
        folders by a pass over the whole folder."""
        now = self.clock()
        current: dict[str, tuple[str, str, str]] = {
            r: (kind, why, "scan") for r, (kind, why) in report.errors.items() if r in unread
        }
        if report.failure is not None:
            operation = "scan" if WHOLE_FOLDER in unread else "sync"
            current[WHOLE_FOLDER] = (report.failure.kind, report.failure.reason, operation)
        if not current and not self.journal.has_failures(root.id):
            return
        with self.journal.transaction():
            self.journal.record_failures(
                root.id, (Failure(r, *what) for r, what in current.items()), now
            )
            before = self.journal.failing_elsewhere(root.id)
            self.journal.settle_failures(
                root.id, (r for r in before - current.keys() if whole or r == WHOLE_FOLDER), now
            )

    async def _mirror_errors(self, remote: Remote) -> None:
        """Write the groups changed since last time to the hub (best effort)."""
        if not isinstance(remote, ErrorMirror):
            return
        groups = self.journal.groups_to_mirror()
        if not groups:
            return
        device = self.journal.device_id
        try:
            await remote.record_errors([hub_error_row(device, g) for g in groups])
        except SyncError as exc:
            log.warning("could not write %d error groups to the hub: %s", len(groups), exc.message)
            return
        self.journal.mark_mirrored(groups)
