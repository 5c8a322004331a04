"""What a pass's outcome means for its folder's next one, and reports for folders that
cannot have one (``sync --once`` through the agent answers for every folder)."""

from __future__ import annotations

import logging
import time

from agent.context import Context
from agent.daemon.runtime import RootRuntime
from sync.engine import PassFailure, PassReport
from sync.errors import DiskFull

log = logging.getLogger("hubsync.agent")

BACKOFF_MAX = 300.0
"""The longest a folder waits after passes the hub cut short."""


def after_pass(rt: RootRuntime, report: PassReport, deletion_settle: float) -> bool:
    """Back off after a pass the hub cut short (True: it was), else clear the backoff;
    deletions the engine deferred are judged once the folder is quiet."""
    failure = report.failure or PassFailure("", "")
    root_error, root_reason = failure.kind, failure.reason
    cut_short = report.auth_needed or root_error == "transient"
    if cut_short:
        rt.needs_full_scan = True  # what the pass could not finish is picked up again
        rt.failures += 1
        wait = min(BACKOFF_MAX, 2.0 * 2 ** min(rt.failures, 8))
        rt.blocked_until = time.monotonic() + wait
        log.warning("%s: %s; trying again in %.0f s", rt.root.path, root_reason, wait)
    else:
        rt.failures = 0
        rt.blocked_until = 0.0
    if report.deferred:
        rt.deletions_due = time.monotonic() + deletion_settle
    return cut_short


def unsyncable(rt: RootRuntime, ctx: Context) -> PassReport | None:
    """Why the folder cannot have a pass now, as its report; None when it can."""
    root = rt.root
    if rt.missing or not root.path.is_dir():
        report = PassReport(root)
        report.fail("local", f"folder {root.path} is not reachable")
        return report
    if root.hub not in ctx.remotes:
        report = PassReport(root)
        why = ctx.unavailable.get(root.hub) or f"the {root.hub} hub is not available"
        report.fail("transient" if root.hub == "local" else "auth", why)
        report.auth_needed = root.hub != "local"
        return report
    return None


def failed_pass(rt: RootRuntime, disk_full: DiskFull | None) -> PassReport:
    """The report of a pass that did not end (a full disk, or an internal error)."""
    report = PassReport(rt.root)
    if disk_full is not None:
        report.fail("transient", disk_full.message)
    else:
        report.fail("internal", "the pass failed; see `hubsync logs`")
    return report
