"""``hubsync issues``: what is not in the hub and why, as data; EXAI diagnoses a group.

Shared by the control API (an agent runs) and the CLI (no agent: the journal
directly). A diagnosis sends a group's fingerprint, counts, normalised and
example message, recent log lines, OS, hub kind and versions to an EXAI chat or
debug tool; never file contents, and every line is redacted again on the way out.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.exai.errors import ExaiError, ExaiTimeout
from agent.exai.tools import ToolInfo
from agent.platform.logs import REDACTED, redact, tail
from sync.ignore import IGNORE_FILE
from sync.issues import group_json, list_issues
from sync.journal import ErrorGroup, Journal, Root

if TYPE_CHECKING:
    from agent.exai.client import ExaiClient

DIAGNOSIS_TIMEOUT = 30.0
"""The seed's bound: a diagnosis within 30 s, or the user is told it timed out."""
LOG_LINES = 40
MAX_LINE = 400

_TOOL_PREFERENCE = ("debug", "chat", "thinkdeep", "analyze")
_TEXT_ARGUMENTS = ("prompt", "problem", "question", "message", "step", "request", "query")


API_ISSUES = 1000
API_GROUPS = 200
"""What one control API answer carries (its frames are at most 1 MB); ``counts`` and
``total`` always cover everything, ``truncated`` says how many issues were left out."""


def issues_report(
    journal: Journal,
    *,
    with_ignored: bool = False,
    max_issues: int | None = None,
    max_groups: int | None = None,
) -> dict[str, Any]:
    found = list_issues(journal, with_ignored=with_ignored)
    counts: dict[str, int] = {}
    for issue in found:
        counts[issue.category] = counts.get(issue.category, 0) + 1
    shown = found if max_issues is None else found[:max_issues]
    groups = journal.error_groups()
    return {
        "issues": [asdict(i) for i in shown],
        "groups": [group_json(g) for g in (groups if max_groups is None else groups[:max_groups])],
        "counts": counts,
        "total": len(found),
        "truncated": len(found) - len(shown),
    }


def group_or_fail(journal: Journal, group_id: object) -> ErrorGroup:
    if not isinstance(group_id, int) or isinstance(group_id, bool):
        raise LookupError("group: the number of an error group (see `hubsync issues`)")
    group = journal.error_group(group_id)
    if group is None:
        raise LookupError(f"no error group {group_id} (see `hubsync issues`)")
    return group


def retry_group(journal: Journal, group_id: int) -> int:
    """Files of the group are tried again on the next pass, at once."""
    return journal.retry_group(group_id)


def ignore_path(root: Root, relpath: str) -> str:
    """Add ``relpath`` (anchored) to the folder's own .hubignore; returns the rule."""
    if relpath in ("", ".") or relpath.startswith("/") or ".." in relpath.split("/"):
        raise ValueError(f"{relpath!r} is not a path inside {root.path}")
    rule = "/" + "".join(f"\\{c}" if c in "*?[]!#\\" else c for c in relpath)
    if rule.endswith(" "):  # gitignore drops unescaped trailing spaces
        kept = rule.rstrip(" ")
        rule = kept + "\\ " * (len(rule) - len(kept))
    target = root.path / IGNORE_FILE
    try:
        existing = target.read_text("utf-8")
    except FileNotFoundError:
        existing = ""
    if rule not in existing.splitlines():
        sep = "" if not existing or existing.endswith("\n") else "\n"
        with target.open("a", encoding="utf-8") as f:
            f.write(f"{sep}{rule}\n")
    return rule


# -- diagnosis ---------------------------------------------------------------------------


def pick_tool(tools: Sequence[ToolInfo]) -> tuple[ToolInfo, str]:
    """EXAI's debug or chat tool (by name, in that order) and its free-text argument."""
    for wanted in _TOOL_PREFERENCE:
        for tool in tools:
            if wanted in tool.name.lower():
                argument = _text_argument(tool)
                if argument is not None:
                    return tool, argument
    raise LookupError("EXAI offers no chat or debug tool to ask (see `hubsync exai tools`)")


def _text_argument(tool: ToolInfo) -> str | None:
    props = tool.properties
    strings = [n for n, p in props.items() if isinstance(p, dict) and p.get("type") == "string"]
    for name in _TEXT_ARGUMENTS:
        if name in strings:
            return name
    required = [n for n in tool.required if n in strings]
    if len(tool.required) == 1 and required:
        return required[0]
    return None


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` redacted: the log's patterns, then every known secret value itself."""
    text = redact(text)
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return text


def diagnosis_prompt(
    group: ErrorGroup, log_lines: Sequence[str], hub_kind: str, secrets: Iterable[str] = ()
) -> str:
    known = [s for s in secrets if s]
    lines = [scrub(line.rstrip()[:MAX_LINE], known) for line in log_lines[-LOG_LINES:]]
    try:
        ours = dist_version("hubsync")
    except Exception:
        ours = "unknown"
    facts = [
        f"HubSync sync error group {group.fingerprint}: please diagnose it and recommend fixes.",
        f"Error kind: {group.kind}; operation: {group.operation}.",
        f"Message (normalised): {scrub(group.message, known)}",
        f"Example message: {scrub(group.example, known)}",
        f"Occurrences: {group.count}; files still failing: {group.open_files}; "
        f"first seen {time.ctime(group.first_seen)}, last seen {time.ctime(group.last_seen)}.",
        f"Hub kind: {hub_kind}. OS: {platform.system()} {platform.release()} "
        f"({platform.machine()}). Python {platform.python_version()}, HubSync {ours}.",
        "Recent agent log lines (secrets redacted):",
        *lines,
        "Answer with the likely cause and numbered, concrete fixes.",
    ]
    return "\n".join(facts)


async def diagnose(
    client: ExaiClient,
    journal: Journal,
    group: ErrorGroup,
    *,
    log_file: Path,
    hub_kind: str,
    secrets: Iterable[str] = (),
    time_limit: float = DIAGNOSIS_TIMEOUT,
) -> dict[str, Any]:
    """Ask EXAI about ``group`` within ``time_limit`` seconds (listing its tools included);
    the answer is stored with the group. ``{"timed_out": True}`` when it took longer."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(time_limit):
            tool, argument = pick_tool(await client.list_tools())
            prompt = diagnosis_prompt(group, tail(log_file, LOG_LINES), hub_kind, secrets)
            left = max(0.1, time_limit - (time.monotonic() - started))
            answer = await client.call_tool(tool.name, {argument: prompt}, time_limit=left)
    except (TimeoutError, ExaiTimeout):
        return {
            "group": group.id,
            "timed_out": True,
            "message": f"EXAI did not diagnose the group within {time_limit:g} s",
        }
    except ExaiError as exc:
        raise LookupError(f"EXAI could not diagnose the group: {exc.message}") from None
    journal.store_diagnosis(group.id, answer.content, time.time())
    return {
        "group": group.id,
        "timed_out": False,
        "tool": tool.name,
        "diagnosis": answer.content,
        "seconds": round(time.monotonic() - started, 2),
    }
