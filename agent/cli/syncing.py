"""Passes and what they left: ``sync --once`` and ``status``."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from agent.cli.common import (
    NO_AGENT,
    PASS_TIMEOUT,
    CliError,
    ServiceRoleOpt,
    UserIdOpt,
    agent_call,
    live_status,
    run_async,
    service_role_user,
)
from agent.cli.output import JsonOpt, emit_json, err, out
from agent.context import Context
from agent.control.pass_json import report_from_json, report_json
from sync.engine import PassReport
from sync.engine import Progress as SyncProgress
from sync.errors import shown_name
from sync.journal import Root

# -- sync ---------------------------------------------------------------------------------------


class _RichProgress:
    """Turns engine progress into a rich progress bar (files and bytes)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, p: SyncProgress) -> None:
        task = self.tasks.get(p.root)
        if task is None:
            task = self.progress.add_task(escape(Path(p.root).name), total=None, files="")
            self.tasks[p.root] = task
        if p.phase == "syncing":
            self.progress.update(
                task,
                total=max(p.bytes_total, 1),
                completed=min(p.bytes_done, p.bytes_total),
                files=f"{p.files_done}/{p.files_total} files",
            )
        elif p.phase == "done":
            self.progress.update(task, completed=self.progress.tasks[task].total or 1)


def sync(
    once: Annotated[
        bool, typer.Option("--once", help="One pass over every folder, then exit.")
    ] = False,
    confirm_deletes: Annotated[
        bool, typer.Option("--confirm-deletes", help="Apply a large deletion that was held.")
    ] = False,
    json_out: JsonOpt = False,
    service_role: ServiceRoleOpt = False,
    user_id: UserIdOpt = None,
) -> None:
    """Scan every mirrored folder and upload what changed."""
    if not once:
        raise CliError("use `hubsync sync --once` for one pass, or `hubsync agent` to keep syncing")
    acting_for = service_role_user(service_role, user_id)
    through_agent = _sync_through_agent(confirm_deletes)
    if through_agent is not None:
        _show_reports(through_agent, json_out)
        return

    async def body(ctx: Context) -> list[PassReport]:
        every = ctx.journal.roots()
        roots = [r for r in every if not r.paused]
        if not every:
            raise CliError("no mirrored folders; add one with `hubsync add PATH`")
        if not roots:
            raise CliError("every mirrored folder is paused; resume one in the tray or settings")
        reports = []
        show = not json_out and out.is_terminal
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, disable=not show, transient=False) as bar:
            sink = _RichProgress(bar)
            for root in roots:
                if root.hub not in ctx.remotes:
                    reports.append(_unavailable_report(root, ctx.unavailable.get(root.hub, "")))
                    continue
                reports.append(
                    await ctx.engine.sync_root(
                        root, confirm_deletes=confirm_deletes, retry_errors=True, progress=sink
                    )
                )
        return reports

    _show_reports(run_async(body, service_role_user=acting_for, one_engine=True), json_out)


def _show_reports(reports: list[PassReport], json_out: bool) -> None:
    if json_out:
        emit_json([report_json(r) for r in reports])
    else:
        for r in reports:
            _print_report(r)
    if not all(r.complete for r in reports):
        raise typer.Exit(2)


def _sync_through_agent(confirm_deletes: bool) -> list[PassReport] | None:
    """``sync --once`` while an agent runs: the agent's engine makes the pass (None: no
    agent). ``--confirm-deletes`` is the tray's "Delete in the hub too": the held files
    counted here are deleted (the agent refuses if more were held since)."""
    live = agent_call("status", {})
    if live is NO_AGENT:
        return None
    if confirm_deletes:
        for root in live["roots"]:
            held = root["counts"].get("held", 0)
            if held:
                err.print(f"Deleting the {held} held files of {escape(root['path'])} in the hub.")
                agent_call("apply_held", {"root": root["path"], "expected": held})
        while True:  # the answers run in the background, between passes
            now = agent_call("status", {})
            if now is NO_AGENT or not any(r["answering"] for r in now["roots"]):
                break
            time.sleep(0.2)
    answer = agent_call("sync_once", {}, timeout=PASS_TIMEOUT)
    if answer is NO_AGENT:
        raise CliError("the agent stopped during the pass; run the command again")
    return [report_from_json(r) for r in answer["reports"]]


def _unavailable_report(root: Root, why: str) -> PassReport:
    report = PassReport(root)
    why = why or f"the {root.hub} hub is not available"
    if root.hub == "local":  # missing or unreadable: waited for, not signed in to
        report.fail("transient", why)
    else:
        report.fail("auth", why)
        report.auth_needed = True
    return report


def _print_report(r: PassReport) -> None:
    if not r.scanned and r.failure is not None:  # nothing was looked at: no counts to show
        kind, reason = r.failure.kind, r.failure.reason
        out.print(f"[bold]{escape(str(r.root.path))}[/] → {r.root.hub} hub:")
        out.print(f"  [red]not synced[/]: {escape(reason)} ({kind})")
        return
    out.print(
        f"[bold]{escape(str(r.root.path))}[/] → {r.root.hub} hub: {r.scanned} files, "
        f"{r.unchanged} unchanged, "
        f"{r.uploaded} uploaded ({r.uploaded_bytes:,} bytes), {r.deduplicated} deduplicated, "
        f"{r.renamed} renamed, {r.deleted} deleted"
    )
    for rel, reason in sorted(r.skipped.items()):
        out.print(f"  [dim]not mirrored[/] {escape(shown_name(rel))}: {escape(reason)}")
    if r.held_deletes:
        out.print(
            f"  [yellow]held[/] {len(r.held_deletes)} deletions look like an accident; "
            "nothing was deleted in the hub. Run `hubsync sync --once --confirm-deletes` to apply "
            f"them, or `hubsync restore {escape(shlex.quote(str(r.root.path)))}` to bring the files back."
        )
    for rel, (kind, reason) in sorted(r.shown_errors().items()):
        if rel == ".":
            out.print(f"  [red]not synced[/]: {escape(reason)} ({kind})")
        else:
            out.print(f"  [red]not in the hub[/] {escape(rel)}: {escape(reason)} ({kind})")
    if r.complete:
        out.print("  [green]every file is in the hub[/]")


# -- status, history, restore ---------------------------------------------------------------------


_WAITING = {
    "seen": "(waiting to be synced)",
    "held": "(deletion held: `hubsync sync --once --confirm-deletes`)",
}


def status(json_out: JsonOpt = False) -> None:
    """What is synced, what is waiting, and what failed."""

    async def body(ctx: Context) -> dict[str, Any]:
        roots = []
        for root in ctx.journal.roots():
            counts = ctx.journal.count_states(root.id)
            problems = [
                {
                    "path": row.relpath,
                    "state": row.state.shown_as,
                    "kind": row.error_kind,
                    "reason": row.last_error,
                }
                for _, row in ctx.journal.problems(root.id)[:50]
            ]
            roots.append(
                {
                    "path": str(root.path),
                    "hub": root.hub,
                    "paused": root.paused,
                    "degraded": root.degraded,
                    "counts": counts,
                    "problems": problems,
                }
            )
        stats = ctx.cache.stats()
        return {
            "agent": "not running",
            "roots": roots,
            "hubs": {name: r.describe() for name, r in ctx.remotes.items()},
            "unavailable": ctx.unavailable,
            "cache": {
                "entries": stats.entries,
                "bytes": stats.size_bytes,
                "limit": stats.limit_bytes,
                "hits": stats.hits,
                "misses": stats.misses,
                "linked": stats.linked,
                "hit_rate": round(stats.hit_rate, 3),
            },
            "prefetch": {
                "enabled": ctx.config.cache.prefetch,
                "state": "agent not running",
                "prefetched": stats.prefetched,
                "hits": stats.prefetch_hits,
                "wasted_bytes": stats.prefetch_wasted_bytes,
            },
        }

    data = live_status()
    if data is None:
        data = run_async(body)
    if json_out:
        emit_json(data)
        return
    out.print(f"Agent: {data['agent']}")
    if data.get("disk_full"):
        out.print(f"  [yellow]waiting for space:[/] {escape(str(data['disk_full']))}")
    for root in data["roots"]:
        c = root["counts"]
        out.print(
            f"[bold]{escape(root['path'])}[/] ({root['hub']}): {c.get('synced', 0)} synced, "
            f"{c.get('seen', 0) + int(root.get('waiting') or 0)} waiting, {c.get('error', 0)} failed, {c.get('held', 0)} held, "
            f"{c.get('deleted', 0)} deleted"
        )
        why = (data.get("unavailable") or {}).get(root["hub"])
        if why:
            out.print(f"  [yellow]waiting for the hub:[/] {escape(str(why))}")
        for p in root["problems"]:
            state = p.get("state") or p.get("kind")
            reason = p["reason"] or _WAITING.get(str(state), "")
            out.print(f"  {state}: {escape(p['path'])} {escape(reason)}")
    c = data["cache"]
    out.print(
        f"Cache: {c['entries']} entries, {c['bytes']:,} of {c['limit']:,} bytes, "
        f"{c.get('hits', 0):,} hits, hit rate {c['hit_rate']:.0%}"
    )
    for hub, h in ((data.get("history") or {}).get("hubs") or {}).items():
        saved = h["raw_bytes"] - h["stored_bytes"]
        out.print(f"History ({hub}): {h['blobs']:,} old versions compressed, {saved:,} bytes saved")
    pf = data.get("prefetch")
    if pf:
        out.print(
            f"Prefetch: {'on' if pf['enabled'] else 'off'} ({pf['state']}), {pf['prefetched']} prefetched,"
            f" {pf['hits']} hits, {pf['wasted_bytes']:,} bytes fetched for nothing"
        )
