"""A pass report as JSON (``sync --once --json``, and the agent's ``sync_once`` answer) and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync.engine import PassReport
from sync.journal import Root

_COUNTS = (
    "scanned",
    "unchanged",
    "hashed",
    "uploaded",
    "uploaded_bytes",
    "deduplicated",
    "dedup_bytes",
    "renamed",
    "recorded",
    "deleted",
)


def report_json(report: PassReport) -> dict[str, Any]:
    return {
        "root": str(report.root.path),
        "hub": report.root.hub,
        "complete": report.complete,
        **{name: getattr(report, name) for name in _COUNTS},
        "held_deletes": report.held_deletes,
        "errors": {k: {"kind": v[0], "reason": v[1]} for k, v in report.shown_errors().items()},
        "skipped": report.skipped,
        "ignored": report.ignored,
    }


def report_from_json(data: dict[str, Any]) -> PassReport:
    """What the agent answered, to be printed like a pass of this process."""
    errors = {k: (v["kind"], v["reason"]) for k, v in data["errors"].items()}
    report = PassReport.shown(Root("", Path(data["root"]), data["hub"], False, None), errors)
    for name in _COUNTS:
        setattr(report, name, int(data[name]))
    report.held_deletes = list(data["held_deletes"])
    report.auth_needed = any(kind == "auth" for kind, _ in errors.values())
    report.skipped = dict(data["skipped"])
    report.ignored = int(data["ignored"])
    return report
