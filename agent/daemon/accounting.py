"""After a pass: counters, the event-to-hub latency, the activity feed and new problems."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.control.payloads import ActivityItem
from agent.daemon.metrics import Metrics
from agent.daemon.runtime import RootRuntime
from sync.engine import PassReport
from sync.journal import FileState, Journal
from sync.journal.states import WAITING

log = logging.getLogger("hubsync.agent")

PROBLEMS_LOGGED = 20
"""New problems of one pass logged and published one by one (all are in the status)."""


def account_pass(
    rt: RootRuntime,
    report: PassReport,
    paths: list[str] | None,
    started: float,
    *,
    metrics: Metrics,
    first_seen: dict[tuple[str, str], float],
    journal: Journal,
    activity: deque[ActivityItem],
    publish: Callable[[str, Any], object],
) -> None:
    """Count what the pass did and tell the tray; ``first_seen``: when the watcher first
    saw each changed path (the latency is measured once the file is in the hub)."""
    m = metrics
    if report.uploaded:
        m.count("files_uploaded", report.uploaded)
        m.count("bytes_uploaded", report.uploaded_bytes)
    if report.deduplicated:
        m.count("dedup_hits", report.deduplicated)
        m.count("dedup_bytes_saved", report.dedup_bytes)
    for kind, _ in report.shown_errors().values():
        m.error(kind)
    now = time.time()
    batch = None if paths is None else set(paths)
    for key in [k for k in first_seen if k[0] == rt.root.id]:
        if batch is not None and key[1] not in batch:
            continue
        row = journal.file(rt.root.id, key[1])
        if row is not None and row.state in (*WAITING, FileState.ERROR):
            continue  # not in the hub yet: measured when it gets there
        first = first_seen.pop(key)
        if row is not None:
            m.observe_latency(max(0.0, now - first))
    changes = report.recorded + report.deleted
    errors = report.shown_errors()
    if changes or errors or report.held_deletes:
        item: ActivityItem = {
            "ts": now,
            "root": str(rt.root.path),
            "kind": "sync",
            "recorded": report.recorded,
            "uploaded": report.uploaded,
            "uploaded_bytes": report.uploaded_bytes,
            "deduplicated": report.deduplicated,
            "deleted": report.deleted,
            "held_deletes": len(report.held_deletes),
            "errors": len(errors),
            "duration": round(now - started, 3),
        }
        activity.appendleft(item)
        publish("activity", item)
    new_problems = {
        k: v
        for k, v in errors.items()
        if rt.problems.get(k) != v and (k, v[0]) != (".", "transient")  # logged with its wait
    }
    rt.problems = errors
    for rel, (kind, reason) in list(new_problems.items())[:PROBLEMS_LOGGED]:
        log.warning("%s: %s: %s (%s)", rt.root.path, rel, reason, kind)
        publish("error", {"root": str(rt.root.path), "path": rel, "kind": kind, "reason": reason})
