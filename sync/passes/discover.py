"""The discover phase: walk the folder (or some paths), compare it with the journal,
and say what the pass has to do — files to hash, deletions, renames, held
deletions that are back — and what the upload policy refuses before any byte moves."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from sync.errors import SyncError
from sync.journal import FileRow
from sync.journal.issues import WHOLE_FOLDER
from sync.journal.states import FileState
from sync.passes.context import PassContext
from sync.policy import BucketLimits, FolderRules, UploadPolicy, read_head
from sync.remotes.base import Remote, UploadLimits
from sync.scan import Diff, Stat, diff, skip_kind, walk, walk_paths

log = logging.getLogger("hubsync.engine")


@dataclass
class Discovery:
    diff: Diff
    rows: dict[str, FileRow]
    """Journal rows of the files to hash or delete, and of those in error."""
    unread: set[str]
    """Folders (``WHOLE_FOLDER`` for the root) that could not be read."""
    wanted: list[str] | None
    """The paths the pass covers (None: the whole folder)."""


async def survey(
    ctx: PassContext, paths: list[str] | None, retry_errors: bool, rules: FolderRules
) -> Discovery:
    journal, root, report = ctx.journal, ctx.root, ctx.report
    wanted: list[str] | None = None
    may_have_errors = True
    if paths is None:
        index = journal.stat_index(root.id)
        # The index holds every file's state: without an error among them, the query
        # for error rows (a scan of the whole table) is not needed.
        may_have_errors = any(row[4] == FileState.ERROR for row in index.others.values())
        walked = await ctx.off_loop(walk, root.path, index)
        known = walked.leftover
    else:
        wanted = sorted(set(paths))
        walked = await ctx.off_loop(walk_paths, root.path, wanted)
        known = journal.stat_index_under(root.id, wanted)
    report.scanned = len(walked.files) + walked.unchanged
    # What could not be read is not in the hub as it is: an error, not a design skip.
    unread = {r or WHOLE_FOLDER for r in walked.unreadable}
    report.skipped = {r: why for r, why in walked.skipped.items() if r not in unread}
    for r in unread:
        if r == WHOLE_FOLDER:  # the folder itself: the pass has nothing to go on
            report.fail("local", walked.skipped[r])
        else:
            report.errors[r] = ("local", walked.skipped[r])
    report.ignored = walked.ignored
    report.folders = walked.folders
    now = ctx.clock()
    looked_at = known or walked.unchanged
    failed = journal.error_rows(root.id) if may_have_errors and looked_at else {}
    retry_due = {rel for rel, row in failed.items() if retry_errors or (row.next_retry or 0) <= now}
    # What could not be read is neither changed nor deleted: kept as it was.
    d = diff(walked.files, walked.without_unreadable(known), retry_due, unchanged=walked.unchanged)
    del known
    report.unchanged = d.unchanged
    for rel, row in failed.items():
        if rel not in d.to_hash and rel in walked.files:
            report.errors[rel] = (row.error_kind or "error", row.last_error or "failed")
    rows = failed
    if d.to_hash or d.deleted:
        rows.update(journal.files_for(root.id, [*d.to_hash, *d.deleted]))
    if d.revived:
        journal.revive_held(root.id, d.revived)
    skips = {r: (skip_kind(why), why) for r, why in report.skipped.items()}
    if d.to_hash:
        refused = await _refused(ctx, rules, d.to_hash)
        for rel, (kind, why) in refused.items():
            del d.to_hash[rel]
            report.skipped[rel] = why
            skips[rel] = (kind, why)
    journal.set_skipped(root.id, skips, now, wanted)
    return Discovery(d, rows, unread, wanted)


async def _refused(
    ctx: PassContext, rules: FolderRules, files: Mapping[str, Stat]
) -> dict[str, tuple[str, str]]:
    """Files the upload policy refuses (relpath → (kind, reason)), before any byte is
    sent: the bucket's own limits and the folder's allow/deny lists."""
    remote: Remote = ctx.remote
    limits = BucketLimits()
    if isinstance(remote, UploadLimits):
        try:
            limits = await remote.bucket_limits()
        except SyncError as exc:  # not known: the hub's own answer to an upload decides
            log.debug("bucket limits not known: %s", exc.message)
    policy = UploadPolicy(limits, rules)
    if policy == UploadPolicy():
        return {}
    if not policy.needs_head:
        return {
            rel: why
            for rel, st in files.items()
            if (why := policy.check(rel, st[0], None)) is not None
        }
    base = ctx.path

    def check_all() -> dict[str, tuple[str, str]]:
        out = {}
        for rel, st in files.items():
            why = policy.check(rel, st[0], None)
            if why is None:
                why = policy.check(rel, st[0], read_head(os.path.join(base, rel)) or b"")
            if why is not None:
                out[rel] = why
        return out

    return await ctx.off_loop(check_all)
