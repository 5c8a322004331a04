"""One sync pass of a root: walk → compare → hash → dedup → upload → record → commit.

Work is done in chunks (a few hundred files or a few hundred MB): inside a
chunk files are hashed and uploaded concurrently, then the chunk's manifest
rows go to the hub in one batch and the journal commits them in one
transaction. The order of truth is blob → hub rows → journal, and every step
is idempotent, so a crash at any point is repaired by the next pass without
repeating an upload that finished (the hub is asked which hashes it has).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sync.errors import AuthError, DiskFull, LocalFileError, SyncError, TransientError
from sync.hashing import Hashed, hash_file
from sync.issues import hub_error_row
from sync.journal import (
    Failure,
    FileRow,
    FileStat,
    FileState,
    Journal,
    Logged,
    Recording,
    Root,
    SyncedFile,
    Tombstone,
)
from sync.journal.log import DELETE, MOVED, UPLOAD
from sync.journal.states import GONE
from sync.policy import BucketLimits, FolderRules, UploadPolicy, read_head
from sync.remotes.base import (
    BatchProgressFn,
    BatchPut,
    BlobUpload,
    ErrorMirror,
    Ingest,
    Ingested,
    ManifestEntry,
    Operation,
    Remote,
    UploadLimits,
    guess_content_type,
)
from sync.scan import Diff, Stat, WalkResult, diff, skip_kind, walk, walk_paths
from sync.throttle import Bandwidth
from sync.transfer import RetryPolicy, bounded_map, retry_delay, with_retries

log = logging.getLogger("hubsync.engine")

CHUNK_FILES = 512
CHUNK_BYTES = 256 * 1024 * 1024
FIND_BATCH = 1000
HASH_BATCH = 32
WATCHED_SIZE = 4 * 1024 * 1024
"""Files from this size on get a live meter while a batch upload moves them."""


@dataclass(frozen=True)
class MassDeletePolicy:
    """Hold a pass's deletions for confirmation when they look like an accident."""

    ratio: float = 0.5
    count: int = 1000
    min_files: int = 10
    """The ratio rule only applies from this many deletions on (a 3-file folder may lose 2)."""
    window: float = 600.0
    """Deletions applied this many seconds before count too: a slow ``rm -rf`` seen in
    many small passes is still one mass deletion."""
    settle: float = 0.0
    """Deletions wait until no new one was seen for this many seconds, then are judged
    all together (an agent: its watcher reports one ``rm -rf`` in many small batches,
    and judging each alone would apply the first ones before the hold trips)."""

    def holds(self, deleting: int, tracked: int) -> bool:
        if deleting > self.count:
            return True
        return deleting >= self.min_files and deleting > self.ratio * tracked


@dataclass
class Progress:
    phase: str
    root: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str = ""
    current_size: int = 0
    """Size of ``current`` (bytes), shown beside its name."""
    active: dict[str, list[int]] = field(default_factory=dict)
    """Uploads under way: relpath → [bytes done, bytes total]."""
    waiting: dict[str, int] = field(default_factory=dict)
    """Uploads of the current chunk not started yet: relpath → size."""


ProgressSink = Callable[[Progress], None]


def _count_done(state: Progress, items: Iterable[_Item]) -> None:
    for item in items:
        if not item.counted:
            item.counted = True
            state.files_done += 1


@dataclass
class PassReport:
    root: Root
    scanned: int = 0
    unchanged: int = 0
    hashed: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    deduplicated: int = 0
    dedup_bytes: int = 0
    renamed: int = 0
    recorded: int = 0
    deleted: int = 0
    held_deletes: list[str] = field(default_factory=list)
    deferred: int = 0
    """Deletions waiting for the folder to be quiet (see ``MassDeletePolicy.settle``)."""
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    """relpath → (kind, reason) for files that are not in the hub as they are."""
    skipped: dict[str, str] = field(default_factory=dict)
    """relpath → why it is not mirrored by design (links, FIFOs...)."""
    ignored: int = 0
    folders: int = 0
    auth_needed: bool = False

    @property
    def complete(self) -> bool:
        return (
            not self.errors and not self.held_deletes and not self.auth_needed and not self.deferred
        )


@dataclass
class _Item:
    """A file on its way through a chunk."""

    relpath: str
    stat: Stat
    hashed: Hashed | None = None
    key: str | None = None
    moved_from: str | None = None
    """The SHA-256 of the file it seems renamed from (same inode, size and mtime)."""
    ingested: bool = False
    """Hashed and put in the hub in one read (see :class:`Ingest`)."""
    stored: bool = False
    counted: bool = False
    """Counted in ``Progress.files_done`` (each file once, as soon as it is through)."""
    """Ingested, and the hub did not have the content before."""


@dataclass
class _Sent:
    """A chunk whose blobs are in the hub, waiting to be recorded."""

    chunk: list[_Item]
    hashed: list[_Item]
    hub_keys: dict[str, str]
    uploads: dict[str, _Item]
    operations: list[Operation]
    vanished: list[str]
    failed: dict[str, SyncError]


class SyncEngine:
    def __init__(
        self,
        journal: Journal,
        remotes: Mapping[str, Remote],
        *,
        hash_threads: int = 2,
        workers: int = 4,
        mass_delete: MassDeletePolicy | None = None,
        retry: RetryPolicy | None = None,
        upload_limit: Bandwidth | None = None,
        folder_rules: Callable[[Root], FolderRules] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.remotes = remotes
        self._hub_at_start: dict[str, str | None] = {}
        """root id → the id of its hub when its pass began (see ``_record``)."""
        self.workers = workers
        self.mass_delete = mass_delete or MassDeletePolicy()
        self.retry = retry or RetryPolicy()
        self.upload_limit = upload_limit or Bandwidth()
        self.folder_rules = folder_rules or (lambda _root: FolderRules())
        """The user's allow/deny lists of a folder (see sync/policy.py)."""
        self.clock = clock
        self._hash_pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="hubsync-hash")
        self._pending_deletes: dict[str, set[str]] = {}
        """root id → deletions seen but not judged yet (``MassDeletePolicy.settle``)."""
        self._last_new_delete: dict[str, float] = {}

    def close(self) -> None:
        self._hash_pool.shutdown(wait=True, cancel_futures=True)

    def remote_for(self, root: Root) -> Remote:
        try:
            return self.remotes[root.hub]
        except KeyError:
            raise AuthError(
                f"the {root.hub} hub is not available (not configured or signed out)"
            ) from None

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
        report = PassReport(root)
        if not root.path.is_dir():
            report.errors["."] = ("local", f"folder {root.path} is not reachable")
            return report
        self._hub_at_start[root.id] = self.journal.hub_seen(root.hub)[0]
        emit = progress or (lambda _p: None)
        emit(Progress("scanning", str(root.path)))
        loop = asyncio.get_running_loop()
        wanted: list[str] | None = None
        if paths is None:
            index = self.journal.stat_index(root.id)
            walked = await loop.run_in_executor(self._hash_pool, walk, root.path, index)
            known = walked.leftover
        else:
            wanted = sorted(set(paths))
            walked = await loop.run_in_executor(self._hash_pool, walk_paths, root.path, wanted)
            known = self.journal.stat_index_under(root.id, wanted)
        report.scanned = len(walked.files) + walked.unchanged
        # What could not be read is not in the hub as it is: an error, not a design skip.
        unread = {r or "." for r in walked.unreadable}
        report.skipped = {r: why for r, why in walked.skipped.items() if r not in unread}
        report.errors.update((r, ("local", walked.skipped[r])) for r in unread)
        report.ignored = walked.ignored
        report.folders = walked.folders
        now = self.clock()
        failed = self.journal.error_rows(root.id) if known or walked.unchanged else {}
        retry_due = {
            rel for rel, row in failed.items() if retry_errors or (row.next_retry or 0) <= now
        }
        # What could not be read is neither changed nor deleted: kept as it was.
        d = diff(
            walked.files, walked.without_unreadable(known), retry_due, unchanged=walked.unchanged
        )
        del known
        report.unchanged = d.unchanged
        for rel, row in failed.items():
            if rel not in d.to_hash and rel in walked.files:
                report.errors[rel] = (row.error_kind or "error", row.last_error or "failed")
        rows = failed
        if d.to_hash or d.deleted:
            rows.update(self.journal.files_for(root.id, [*d.to_hash, *d.deleted]))
        if d.revived:
            self.journal.revive_held(root.id, d.revived)
        remote = self.remote_for(root)
        skips = {r: (skip_kind(why), why) for r, why in report.skipped.items()}
        if d.to_hash:
            refused = await self._refused(root, remote, d.to_hash)
            for rel, (kind, why) in refused.items():
                del d.to_hash[rel]
                report.skipped[rel] = why
                skips[rel] = (kind, why)
        self.journal.set_skipped(root.id, skips, now, wanted)
        try:
            await self._run_pass(
                root, remote, walked, d, rows, report, confirm_deletes, emit, settle
            )
        except AuthError as exc:
            report.auth_needed = True
            report.errors.setdefault(".", ("auth", exc.message))
        except TransientError as exc:
            # The hub stopped answering mid-pass (after retries): what was done is
            # committed, the rest stays "seen" for the next pass.
            report.errors.setdefault(".", ("transient", exc.message))
        except SyncError as exc:  # any other failure of the hub ends the pass, not the agent
            report.errors.setdefault(".", (exc.kind, exc.message))
        self._note_pass_errors(root, report, unread, whole=paths is None)
        if "." not in report.errors:  # the hub is in trouble: the next good pass writes them
            await self._mirror_errors(remote)
        emit(Progress("done", str(root.path)))
        return report

    async def _refused(
        self, root: Root, remote: Remote, files: Mapping[str, Stat]
    ) -> dict[str, tuple[str, str]]:
        """Files the upload policy refuses (relpath → (kind, reason)), before any byte is
        sent: the bucket's own limits and the folder's allow/deny lists."""
        limits = BucketLimits()
        if isinstance(remote, UploadLimits):
            try:
                limits = await remote.bucket_limits()
            except SyncError as exc:  # not known: the hub's own answer to an upload decides
                log.debug("bucket limits not known: %s", exc.message)
        policy = UploadPolicy(limits, self.folder_rules(root))
        if policy == UploadPolicy():
            return {}
        if not policy.needs_head:
            return {
                rel: why
                for rel, st in files.items()
                if (why := policy.check(rel, st[0], None)) is not None
            }

        def check_all() -> dict[str, tuple[str, str]]:
            out = {}
            for rel, st in files.items():
                why = policy.check(rel, st[0], None)
                if why is None:
                    why = policy.check(rel, st[0], read_head(os.path.join(root.path, rel)) or b"")
                if why is not None:
                    out[rel] = why
            return out

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hash_pool, check_all)

    def _note_pass_errors(
        self, root: Root, report: PassReport, unread: set[str], *, whole: bool
    ) -> None:
        """Group the failures of the folder as a whole (".") and of folders that could not
        be read, and settle those no longer there: "." by any pass, unread folders by a
        pass over the whole folder."""
        now = self.clock()
        current = {r for r in report.errors if r == "." or r in unread}
        if not current and not self.journal.has_failures(root.id):
            return
        with self.journal.transaction():
            self.journal.record_failures(
                root.id,
                (
                    Failure(r, kind, why, "scan" if r in unread else "sync")
                    for r, (kind, why) in report.errors.items()
                    if r in current
                ),
                now,
            )
            before = self.journal.failing_elsewhere(root.id)
            self.journal.settle_failures(
                root.id, (r for r in before - current if whole or r == "."), now
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

    async def apply_held(self, root: Root, relpaths: Collection[str]) -> PassReport:
        """Tombstone the held deletions the user confirmed, and only those: a file that is
        back, or no longer held, is left alone (a later deletion waits for its own yes)."""
        report = PassReport(root)
        held = {
            r: row
            for r, row in self.journal.files_for(root.id, relpaths).items()
            if row.state == FileState.HELD
        }
        back = await self._still_there(root, held)
        rows = {rel: row for rel, row in held.items() if rel not in back}
        try:
            remote = self.remote_for(root)
            await self._apply_deletions(root, remote, sorted(rows), rows, report, confirm=True)
        except AuthError as exc:
            report.auth_needed = True
            report.errors["."] = ("auth", exc.message)
        except SyncError as exc:
            report.errors["."] = (exc.kind, exc.message)
        return report

    # -- the pass -----------------------------------------------------------------------------

    async def _run_pass(
        self,
        root: Root,
        remote: Remote,
        walked: WalkResult,
        d: Diff,
        rows: dict[str, FileRow],
        report: PassReport,
        confirm_deletes: bool,
        emit: ProgressSink,
        wait_quiet: bool,
    ) -> None:
        new_items = [_Item(rel, st) for rel, st in d.to_hash.items()]
        with self.journal.transaction():
            self.journal.mark_seen(root.id, (FileStat(i.relpath, *i.stat) for i in new_items))
        # A rename candidate is still hashed: a freed inode can be reused for a new file
        # of the same size and (pinned, e.g. by a reproducible build) mtime. Its blob is
        # found in the hub, so a real rename uploads nothing.
        for item in new_items:
            old = d.renamed.get(item.relpath)
            old_row = rows.get(old) if old else None
            if old_row is not None and old_row.sha256:
                item.moved_from = old_row.sha256
        total_bytes = sum(i.stat[0] for i in new_items)
        state = Progress(
            "syncing", str(root.path), files_total=len(new_items), bytes_total=total_bytes
        )
        emit(state)
        deleting = list(d.deleted)

        def settle(vanished: list[str]) -> None:
            deleting.extend(v for v in vanished if v in rows and rows[v].state not in GONE)
            if vanished:
                with self.journal.transaction():
                    self.journal.forget(
                        root.id, (v for v in vanished if v not in rows or not rows[v].sha256)
                    )
                    # Back for a moment at a path with a tombstone, gone again: still deleted.
                    self.journal.mark_gone_again(
                        root.id,
                        {v: rows[v].state for v in vanished if v in rows and rows[v].state in GONE},
                    )

        # Three chunks are in flight: one being hashed, one uploading, one being
        # recorded; each waits for its predecessor in the same stage.
        recording: asyncio.Future[list[str]] | None = None
        try:
            chunks = self._hashed_ahead(root, remote, _chunks(new_items), report, state)
            async for chunk, (vanished, failed) in chunks:
                sent = await self._upload_chunk(
                    root, remote, chunk, report, state, vanished, failed
                )
                if recording is not None:
                    settle(await recording)
                recording = asyncio.ensure_future(
                    self._record_chunk(root, remote, sent, rows, report, state, emit)
                )
            if recording is not None:
                settle(await recording)
                recording = None
        except BaseException as exc:
            if recording is not None:
                # A failed upload lets the chunk before it finish recording; a
                # cancelled pass stops it (its blobs are found again next pass).
                if isinstance(exc, asyncio.CancelledError):
                    recording.cancel()
                await asyncio.gather(recording, return_exceptions=True)
            raise
        await self._apply_deletions(
            root, remote, deleting, rows, report, confirm_deletes, settle=wait_quiet
        )

    async def _hashed_ahead(
        self,
        root: Root,
        remote: Remote,
        chunks: Iterable[list[_Item]],
        report: PassReport,
        state: Progress,
    ) -> AsyncGenerator[tuple[list[_Item], tuple[list[str], dict[str, SyncError]]], None]:
        """Yield chunks whose files are hashed, hashing the next one meanwhile.

        Hashing (reads, CPU) and uploading (writes, network) then overlap instead of
        taking turns; at most two chunks are in memory at once.
        """
        iterator = iter(chunks)
        current = next(iterator, None)
        pending = (
            asyncio.ensure_future(self._hash_chunk(root, remote, current, report, state))
            if current is not None
            else None
        )
        try:
            while current is not None and pending is not None:
                hashed = await pending
                upcoming = next(iterator, None)
                pending = (
                    asyncio.ensure_future(self._hash_chunk(root, remote, upcoming, report, state))
                    if upcoming is not None
                    else None
                )
                yield current, hashed
                current = upcoming
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def _hash_chunk(
        self, root: Root, remote: Remote, chunk: list[_Item], report: PassReport, state: Progress
    ) -> tuple[list[str], dict[str, SyncError]]:
        """Hash the files of a chunk; returns (vanished paths, failures).

        Files go to the hash threads in small batches, not one future each: with
        thousands of small files the hops would cost more than the hashing. A hub
        that can :class:`Ingest` takes the small files itself, hashing and storing
        each in one read.
        """
        vanished: list[str] = []
        failed: dict[str, SyncError] = {}
        to_hash = [i for i in chunk if i.hashed is None]
        if not to_hash:
            return vanished, failed
        state.current, state.current_size = to_hash[0].relpath, to_hash[0].stat[0]
        ingesting: list[_Item] = []
        if isinstance(remote, Ingest):
            ingesting = [i for i in to_hash if i.stat[0] < remote.ingest_limit]
            to_hash = [i for i in to_hash if i.stat[0] >= remote.ingest_limit]
        loop = asyncio.get_running_loop()
        batches = [to_hash[at : at + HASH_BATCH] for at in range(0, len(to_hash), HASH_BATCH)]
        hashing = asyncio.gather(
            *(
                loop.run_in_executor(
                    self._hash_pool, _hash_all, [root.path / i.relpath for i in batch]
                )
                for batch in batches
            )
        )
        ingested: Sequence[Ingested | SyncError] = []
        if ingesting:
            assert isinstance(remote, Ingest)
            try:
                ingested = await remote.ingest(
                    [(root.path / i.relpath, *_names(i.relpath)) for i in ingesting],
                    self._batch_meter(ingesting, state),
                )
            except BaseException:
                hashing.cancel()
                await asyncio.gather(hashing, return_exceptions=True)
                raise
        outcomes: list[Hashed | Ingested | SyncError] = [
            *(r for part in await hashing for r in part),
            *ingested,
        ]
        for item, outcome in zip([*to_hash, *ingesting], outcomes, strict=True):
            if isinstance(outcome, DiskFull):
                raise outcome  # the hub's disk, not this file: the pass waits for space
            if isinstance(outcome, Ingested):
                item.hashed, item.key, item.stored = outcome.hashed, outcome.key, outcome.stored
                item.ingested = True
                report.hashed += 1
            elif isinstance(outcome, Hashed):
                item.hashed = outcome
                report.hashed += 1
            elif _is_vanished(outcome):
                vanished.append(item.relpath)
            else:
                failed[item.relpath] = outcome
        return vanished, failed

    async def _upload_chunk(
        self,
        root: Root,
        remote: Remote,
        chunk: list[_Item],
        report: PassReport,
        state: Progress,
        vanished: list[str],
        failed: dict[str, SyncError],
    ) -> _Sent:
        """Dedup and upload one hashed chunk."""
        hashed = [i for i in chunk if i.hashed is not None]
        hub_keys = await self._dedup(root, remote, [i for i in hashed if not i.ingested])
        uploads: dict[str, _Item] = {}
        operations: list[Operation] = []
        new_blobs: list[tuple[str, int, str]] = []
        for item in hashed:
            assert item.hashed is not None
            sha = item.hashed.sha256
            moved = item.moved_from == sha
            report.renamed += moved
            if item.ingested:
                assert item.key is not None
                hub_keys.setdefault(sha, item.key)
                if item.stored:
                    new_blobs.append((sha, item.hashed.size, item.key))
                    operations.append(
                        _operation(
                            "upload", None, sha, item.hashed.size, item.relpath, item.key, None
                        )
                    )
                    report.uploaded += 1
                    report.uploaded_bytes += item.hashed.size
                elif not moved:
                    report.deduplicated += 1
                    report.dedup_bytes += item.hashed.size
            elif sha in hub_keys:
                if item.key is None and not moved:
                    report.deduplicated += 1
                    report.dedup_bytes += item.hashed.size
                item.key = hub_keys[sha]
            elif sha not in uploads:
                uploads[sha] = item
            else:
                report.deduplicated += 1
                report.dedup_bytes += item.hashed.size

        state.waiting = {i.relpath: i.hashed.size for i in uploads.values() if i.hashed is not None}
        # Files count as done one by one, as their content is in the hub (or failed):
        # all but the uploads now, then each upload as it finishes.
        uploading = {id(i) for i in uploads.values()}
        _count_done(state, [i for i in chunk if id(i) not in uploading])
        started: dict[str, float] = {}
        each = self._upload_each(root, remote, list(uploads.values()), state, started)
        async with contextlib.aclosing(each) as uploaded:
            async for owner, result in uploaded:
                assert owner.hashed is not None
                _count_done(state, [owner])
                sha = owner.hashed.sha256
                operations.append(
                    _operation(
                        "upload",
                        started.get(sha),
                        sha,
                        owner.hashed.size,
                        owner.relpath,
                        result if isinstance(result, str) else None,
                        None if isinstance(result, str) else result,
                    )
                )
                if isinstance(result, str):
                    hub_keys[owner.hashed.sha256] = result
                    new_blobs.append((owner.hashed.sha256, owner.hashed.size, result))
                    report.uploaded += 1
                    report.uploaded_bytes += owner.hashed.size
                elif isinstance(result, (AuthError, DiskFull)):
                    raise result
                elif _is_vanished(result):
                    vanished.append(owner.relpath)
                else:
                    failed[owner.relpath] = result
        if new_blobs:
            with self.journal.transaction():
                self.journal.add_blobs(root.hub, new_blobs)

        return _Sent(chunk, hashed, hub_keys, uploads, operations, vanished, failed)

    async def _record_chunk(
        self,
        root: Root,
        remote: Remote,
        sent: _Sent,
        rows: dict[str, FileRow],
        report: PassReport,
        state: Progress,
        emit: ProgressSink,
    ) -> list[str]:
        """Record an uploaded chunk in the hub and the journal; returns paths that vanished."""
        hashed, hub_keys, uploads = sent.hashed, sent.hub_keys, sent.uploads
        failed, vanished = sent.failed, sent.vanished
        # Equal content elsewhere in the chunk rides on the uploaded blob.
        recordable: list[_Item] = []
        for item in hashed:
            assert item.hashed is not None
            key = hub_keys.get(item.hashed.sha256)
            if key is None:
                first = uploads.get(item.hashed.sha256)
                if first is not None and first.relpath in failed and first is not item:
                    failed.setdefault(item.relpath, failed[first.relpath])
                continue
            if item.relpath in failed or item.relpath in vanished:
                continue
            item.key = key
            recordable.append(item)
        await self._record(root, remote, recordable, rows, report, failed)
        await self._log_operations(remote, sent.operations)
        self._record_failures(root, failed, report)
        emit(state)
        return vanished

    async def _upload_each(
        self,
        root: Root,
        remote: Remote,
        items: list[_Item],
        state: Progress,
        started: dict[str, float],
    ) -> AsyncGenerator[tuple[_Item, str | SyncError], None]:
        """Upload ``items``, yielding each with its key or error as it finishes.

        A hub that takes batches (:class:`BatchPut`) gets the chunk in one call;
        what failed for a transient reason then gets the per-file path, with retries.
        """
        if items and isinstance(remote, BatchPut):
            now = time.time()
            for item in items:
                assert item.hashed is not None
                started[item.hashed.sha256] = now
            results = await remote.put_blobs(
                [self._blob_upload(root, item) for item in items],
                self._batch_meter(items, state),
            )
            state.waiting.clear()
            again = []
            for item, result in zip(items, results, strict=True):
                if isinstance(result, TransientError) and not isinstance(result, DiskFull):
                    again.append(item)
                else:
                    yield item, result
            items = again
        # A hub may take more calls in flight than it has connections or threads:
        # it says so with ``parallel_uploads``.
        limit = getattr(remote, "parallel_uploads", self.workers)

        def upload(item: _Item) -> Awaitable[str]:
            return self._upload_one(root, remote, item, state, started)

        async with contextlib.aclosing(bounded_map(items, upload, limit)) as uploaded:
            async for pair in uploaded:
                yield pair

    @staticmethod
    def _blob_upload(root: Root, item: _Item) -> BlobUpload:
        assert item.hashed is not None
        return BlobUpload(
            root.path / item.relpath, item.hashed.sha256, item.hashed.size, *_names(item.relpath)
        )

    def _batch_meter(self, items: Sequence[_Item], state: Progress) -> BatchProgressFn:
        """Progress of a batch upload (called from hub threads): bytes, the current file,
        and a meter for files big enough to be watched; pays the bandwidth limit."""
        limit = self.upload_limit
        item_done = [0] * len(items)

        def moved(index: int, n: int) -> None:
            if limit.rate > 0:
                limit.consume(n)
            item = items[index]
            state.bytes_done += n
            size = item.stat[0]
            state.current, state.current_size = item.relpath, size
            item_done[index] += n
            if item_done[index] >= size:
                _count_done(state, [item])
            if size >= WATCHED_SIZE:
                meter = state.active.setdefault(item.relpath, [0, size])
                meter[0] += n
                if meter[0] >= size:
                    state.active.pop(item.relpath, None)

        return moved

    async def _upload_one(
        self,
        root: Root,
        remote: Remote,
        item: _Item,
        state: Progress,
        started: dict[str, float],
    ) -> str:
        """One file through ``put_blob``, retried on transient errors, with a live meter."""
        up = self._blob_upload(root, item)
        state.current, state.current_size = item.relpath, up.size
        state.waiting.pop(item.relpath, None)
        meter = state.active[item.relpath] = [0, up.size]

        def counted(n: int) -> None:  # called from transfer threads
            state.bytes_done += n
            meter[0] += n

        moved = self.upload_limit.wrap(counted)
        started[up.sha256] = time.time()
        try:
            return await with_retries(
                lambda: remote.put_blob(
                    up.source, up.sha256, up.size, up.filename, up.content_type, moved
                ),
                self.retry,
            )
        finally:
            state.active.pop(item.relpath, None)

    async def _log_operations(self, remote: Remote, operations: Sequence[Operation]) -> None:
        """The hub's ``file_operations`` log; best effort: the files are what matters."""
        if not operations:
            return
        try:
            await with_retries(lambda: remote.log_operations(operations), self.retry)
        except SyncError as exc:
            log.warning("could not log %d operations in the hub: %s", len(operations), exc.message)

    async def _dedup(self, root: Root, remote: Remote, items: Sequence[_Item]) -> dict[str, str]:
        """sha → key for every hash of ``items`` the hub already has (journal first, then hub)."""
        hashes = {i.hashed.sha256 for i in items if i.hashed is not None}
        known = self.journal.known_blobs(root.hub, hashes)
        unknown = sorted(hashes - known.keys())
        found: dict[str, str] = {}
        for start in range(0, len(unknown), FIND_BATCH):
            batch = unknown[start : start + FIND_BATCH]
            found.update(await with_retries(lambda b=batch: remote.find_blobs(b), self.retry))  # type: ignore[misc]
        if found:
            sizes = {i.hashed.sha256: i.hashed.size for i in items if i.hashed is not None}
            with self.journal.transaction():
                self.journal.add_blobs(root.hub, ((s, sizes[s], k) for s, k in found.items()))
        return {**known, **found}

    async def _record(
        self,
        root: Root,
        remote: Remote,
        items: Sequence[_Item],
        rows: Mapping[str, FileRow],
        report: PassReport,
        failed: dict[str, SyncError],
    ) -> None:
        """Record ``items`` in the hub, then the journal; rows the hub rejects go to ``failed``."""
        if not items:
            return
        device = self.journal.device_id
        entries: list[ManifestEntry] = []
        synced: list[SyncedFile] = []
        # The rows as they are now, not as the pass found them: what a killed pass (or
        # another process) recorded since is not recorded again as a new version.
        current = {**rows, **self.journal.files_for(root.id, [i.relpath for i in items])}
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
        with self.journal.transaction():
            self.journal.mark_recording(
                root.id, [Recording(s.relpath, s.sha256, s.version, s.key) for s in synced]
            )
        rejected = await self._record_entries(remote, entries)
        if rejected:
            failed.update(rejected)
            synced = [s for s in synced if s.relpath not in rejected]
        now = self.clock()
        with self.journal.transaction():
            if self.journal.hub_seen(root.hub)[0] != self._hub_at_start.get(root.id):
                # Switched to another hub (another account) mid-pass: what went to the old
                # one must not count as synced; the rows stay 'seen' for the new one.
                raise TransientError(f"the {root.hub} hub was switched during the pass")
            self.journal.mark_synced(root.id, synced, now)
            self.journal.log_many(
                (Logged(UPLOAD, root.id, s.relpath, s.sha256, s.size, None) for s in synced), now
            )
        report.recorded += len(synced)

    async def _record_entries(
        self, remote: Remote, entries: Sequence[ManifestEntry]
    ) -> dict[str, SyncError]:
        """Record ``entries`` in the hub; returns those it rejected, by relpath.

        A batch the hub rejects is tried entry by entry, so that one bad row fails one
        file instead of every file of the chunk, pass after pass.
        """
        try:
            await with_retries(lambda: remote.record(entries), self.retry)
            return {}
        except (AuthError, TransientError):
            raise
        except SyncError as exc:
            if len(entries) == 1:
                return {entries[0].relpath: exc}
        rejected: dict[str, SyncError] = {}
        for entry in entries:
            try:
                await with_retries(lambda e=entry: remote.record([e]), self.retry)  # type: ignore[misc]
            except (AuthError, TransientError):
                raise
            except SyncError as exc:
                rejected[entry.relpath] = exc
        return rejected

    def _record_failures(
        self, root: Root, failed: Mapping[str, SyncError], report: PassReport
    ) -> None:
        if not failed:
            return
        now = self.clock()
        rows = self.journal.files_for(root.id, failed)
        with self.journal.transaction():
            for rel, exc in failed.items():
                attempts = rows[rel].attempts if rel in rows else 0
                self.journal.mark_error(
                    root.id, rel, exc.kind, exc.message, retry_delay(attempts, exc.kind), now
                )
                report.errors[rel] = (exc.kind, exc.message)
            self.journal.record_failures(
                root.id,
                (
                    Failure(rel, exc.kind, exc.message, _failed_operation(exc))
                    for rel, exc in failed.items()
                ),
                now,
            )

    async def _still_there(self, root: Root, relpaths: Iterable[str]) -> set[str]:
        """Which of ``relpaths`` are still there as files (looked at off the event loop)."""
        wanted = list(relpaths)
        if not wanted:
            return set()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hash_pool, _files_still_there, root.path, wanted)

    async def _apply_deletions(
        self,
        root: Root,
        remote: Remote,
        deleting: list[str],
        rows: Mapping[str, FileRow],
        report: PassReport,
        confirm: bool,
        *,
        settle: bool = False,
    ) -> None:
        """Tombstone deleted files (never their blobs), unless it looks like an accident.

        A file that is still there (now ignored, or no longer a regular file) is only
        no longer mirrored: the hub keeps it as it was, with no tombstone.
        """
        recorded = [rel for rel in deleting if rows.get(rel) and rows[rel].sha256]
        never_synced = set(deleting).difference(recorded)
        still_there = await self._still_there(root, recorded)
        tombstones = [rel for rel in recorded if rel not in still_there]
        if never_synced or still_there:
            with self.journal.transaction():
                self.journal.forget(root.id, never_synced)
                self.journal.mark_unmirrored(root.id, still_there)
        if not confirm and self.mass_delete.settle > 0:
            tombstones, rows = await self._settled(root, tombstones, rows, report, settle)
        if not tombstones:
            return
        going = set(tombstones)
        moved_shas = self.journal.synced_hashes(root.id, besides=going)
        real = [rel for rel in tombstones if rows[rel].sha256 not in moved_shas]
        # The old names of moved files are logged as deletions too, but were no removal.
        recent = self.journal.recent_deletions(root.id, self.clock() - self.mass_delete.window)
        tracked = self.journal.tracked_count(root.id)
        # A moved file has two rows until its old name is tombstoned: it is one file.
        tracked -= len(tombstones) - len(real)
        if not confirm:
            # What is held stays held until the user answers; only new deletions are
            # judged. While a deletion was held recently, new ones join it: the watcher
            # may report one ``rm -rf`` in batches, each too small to look like an accident.
            # A move is applied, never held, even beside an ``rm -rf`` (and a held file whose
            # content is now at another path was moved back in under a new name).
            held = [r for r in real if rows[r].state == FileState.HELD]
            kept = set(held)
            fresh = [r for r in tombstones if r not in kept]
            fresh_real = [r for r in real if rows[r].state != FileState.HELD]
            joining = self.journal.held_since(root.id, self.clock() - self.mass_delete.window)
            newly_held: list[str] = []
            if fresh_real and (
                joining or self.mass_delete.holds(len(fresh_real) + recent, tracked + recent)
            ):
                newly_held = fresh_real
                holding = set(fresh_real)
                fresh = [r for r in fresh if r not in holding]
                with self.journal.transaction():
                    self.journal.mark_held(root.id, newly_held, self.clock())
            held += newly_held
            report.held_deletes = sorted(held)
            tombstones = fresh
            if not tombstones:
                return
        device = self.journal.device_id
        entries = []
        marks: list[Tombstone] = []
        for rel in tombstones:
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
        moves = set(tombstones).difference(real)
        for start in range(0, len(entries), CHUNK_FILES):
            batch = entries[start : start + CHUNK_FILES]
            await with_retries(lambda b=batch: remote.record(b), self.retry)  # type: ignore[misc]
            await self._log_operations(
                remote,
                [
                    _operation("delete", None, e.sha256, e.size, e.relpath, e.key, None)
                    for e in batch
                ],
            )
            now = self.clock()
            with self.journal.transaction():
                self.journal.mark_deleted(root.id, marks[start : start + CHUNK_FILES], now)
                self.journal.log_many(
                    (
                        Logged(
                            DELETE,
                            root.id,
                            m.relpath,
                            m.sha256,
                            m.size,
                            MOVED if m.relpath in moves else None,
                        )
                        for m in marks[start : start + CHUNK_FILES]
                    ),
                    now,
                )
        report.deleted += len(entries)

    async def _settled(
        self,
        root: Root,
        tombstones: list[str],
        rows: Mapping[str, FileRow],
        report: PassReport,
        wait: bool,
    ) -> tuple[list[str], Mapping[str, FileRow]]:
        """The deletions to judge now: none new while the folder is not quiet yet (only
        those held already), then every deletion seen meanwhile, all together; without
        ``wait``, every deletion seen so far at once."""
        pending = self._pending_deletes.setdefault(root.id, set())
        now = self.clock()
        new = [r for r in tombstones if rows[r].state != FileState.HELD and r not in pending]
        if new:
            pending.update(new)
            self._last_new_delete[root.id] = now
        if not pending:
            return tombstones, rows
        if wait and now - self._last_new_delete.get(root.id, now) < self.mass_delete.settle:
            report.deferred = len(pending)
            return [r for r in tombstones if rows[r].state == FileState.HELD], rows
        del self._pending_deletes[root.id]
        earlier = pending.difference(tombstones)
        found = {
            r: row
            for r, row in self.journal.files_for(root.id, earlier).items()
            if row.state in (FileState.SYNCED, FileState.HELD) and row.sha256
        }
        back = await self._still_there(root, found)
        gone = {r: row for r, row in found.items() if r not in back}
        return [*tombstones, *gone], {**rows, **gone}


def _files_still_there(base: Path, relpaths: list[str]) -> set[str]:
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


def _chunks(items: list[_Item]) -> Iterable[list[_Item]]:
    chunk: list[_Item] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += item.stat[0]
        if len(chunk) >= CHUNK_FILES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _names(relpath: str) -> tuple[str, str]:
    """(file name, content type) of a path in a root."""
    name = relpath.rsplit("/", 1)[-1]
    return name, guess_content_type(name)


def _hash_all(paths: Sequence[Path]) -> list[Hashed | SyncError]:
    """Hash several files in one trip to a hash thread; each gets its hash or its error."""
    out: list[Hashed | SyncError] = []
    for path in paths:
        try:
            out.append(hash_file(path))
        except SyncError as exc:
            out.append(exc)
    return out


def _failed_operation(exc: SyncError) -> str:
    """What a file's failure stopped: reading it here, or sending it to the hub."""
    return "read" if isinstance(exc, LocalFileError) else "upload"


def _is_vanished(exc: SyncError) -> bool:
    return isinstance(exc, LocalFileError) and "vanished" in exc.message


def _operation(
    kind: str,
    started: float | None,
    sha256: str,
    size: int,
    relpath: str,
    key: str | None,
    error: SyncError | None,
) -> Operation:
    finished = time.time()
    begun = started or finished
    return Operation(
        operation=kind,
        status="failed" if error else "completed",
        key=key,
        sha256=sha256,
        bytes=size,
        started_at=datetime.fromtimestamp(begun, UTC).isoformat(),
        finished_at=datetime.fromtimestamp(finished, UTC).isoformat(),
        duration_ms=int((finished - begun) * 1000),
        error=f"{error.kind}: {error.message}" if error else None,
        metadata={"path": relpath},
    )
