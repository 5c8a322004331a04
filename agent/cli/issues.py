"""``hubsync issues``: every file not in the hub, and why; grouped errors; EXAI diagnoses.

Through the running agent's control API when one runs, else from the journal.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from agent.cli.common import NO_AGENT, CliError, agent_call, find_root, run_async
from agent.cli.output import JsonOpt, emit_json, out
from agent.context import Context
from agent.control.issues_api import (
    DIAGNOSIS_TIMEOUT,
    diagnose,
    group_or_fail,
    ignore_path,
    issues_report,
    retry_group,
)
from agent.exai.settings import ExaiSettings
from sync.errors import SyncError
from sync.remotes.base import ErrorMirror

issues_app = typer.Typer(
    name="issues",
    help="What is not in the hub and why; error groups; diagnose one with EXAI.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

GroupArg = Annotated[int, typer.Argument(help="The error group's number (see `hubsync issues`).")]


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@issues_app.callback()
def issues(
    typer_ctx: typer.Context,
    json_out: JsonOpt = False,
    ignored: Annotated[
        bool, typer.Option("--ignored", help="Also list what ignore rules exclude, and which rule.")
    ] = False,
    all_devices: Annotated[
        bool, typer.Option("--all-devices", help="Also every device's groups, from the hub.")
    ] = False,
) -> None:
    """List what is not in the hub: errors, skipped items, held deletions."""
    if typer_ctx.invoked_subcommand is not None:
        return

    params = {"ignored": ignored, "all_devices": all_devices}
    data = agent_call("issues", params)
    if data is NO_AGENT:

        async def body(ctx: Context) -> dict[str, Any]:
            report = issues_report(ctx.journal, with_ignored=ignored)
            if all_devices:
                report["hub_groups"] = await _hub_groups(ctx)
            return report

        data = run_async(body)
    if json_out:
        emit_json(data)
        return
    _print(data)


async def _hub_groups(ctx: Context) -> dict[str, Any]:
    hub: dict[str, Any] = {}
    for name, remote in ctx.remotes.items():
        if isinstance(remote, ErrorMirror):
            try:
                hub[name] = await remote.list_errors()
            except SyncError as exc:
                hub[name] = {"error": exc.message}
    return hub


def _print(data: dict[str, Any]) -> None:
    issues_list = data["issues"]
    if not issues_list and not any(g["state"] == "open" for g in data["groups"]):
        out.print("Everything is in the hub.")
    by_root: dict[str, list[dict[str, Any]]] = {}
    for issue in issues_list:
        by_root.setdefault(issue["root"], []).append(issue)
    for root, items in by_root.items():
        out.print(f"[bold]{escape(root)}[/]")
        for i in items:
            extra = ""
            if i["category"] == "error":
                extra = f" (attempt {i['attempts']}"
                if i["next_retry"]:
                    extra += f", next retry {_when(i['next_retry'])}"
                extra += f", group {i['group']})" if i["group"] else ")"
            out.print(
                f"  {i['category']} [{i['kind']}] {escape(i['path'])}: {escape(i['reason'])}{extra}"
            )
    if data.get("truncated"):
        out.print(f"  … and {data['truncated']} more ({data['total']} in all)")
    groups = data["groups"]
    if groups:
        out.print("[bold]Error groups[/]")
    for g in groups:
        out.print(
            f"  #{g['id']} {g['state']}: [{g['kind']}/{g['operation']}] {escape(g['message'])}"
            f" — {g['count']} times, {g['open_files']} failing now,"
            f" first {_when(g['first_seen'])}, last {_when(g['last_seen'])}"
        )
    for hub, rows in (data.get("hub_groups") or {}).items():
        out.print(f"[bold]Every device's groups in the {hub} hub[/]")
        if isinstance(rows, dict):
            out.print(f"  could not read them: {escape(str(rows.get('error')))}")
            continue
        for r in rows:
            out.print(
                f"  {r['device_id'][:8]} {r['state']}: [{r['kind']}] {escape(r['message'])}"
                f" — {r['occurrences']} times"
            )


@issues_app.command("diagnose")
def diagnose_command(group: GroupArg, json_out: JsonOpt = False) -> None:
    """Ask EXAI what causes an error group and how to fix it (within 30 s)."""

    data = agent_call("issues.diagnose", {"group": group}, timeout=DIAGNOSIS_TIMEOUT + 15)
    if data is NO_AGENT:
        from agent.exai.client import ExaiClient

        async def body(ctx: Context) -> dict[str, Any]:
            try:
                found = group_or_fail(ctx.journal, group)
            except LookupError as exc:
                raise CliError(str(exc)) from None
            settings = ExaiSettings.from_config(ctx.config.exai)
            hubs = sorted({r.hub for r in ctx.journal.roots()}) or [ctx.config.default_hub()]
            async with ExaiClient(settings) as client:
                try:
                    return await diagnose(
                        client,
                        ctx.journal,
                        found,
                        log_file=ctx.paths.log_file,
                        hub_kind=", ".join(hubs),
                        secrets=(settings.token, settings.jwt, ctx.config.supabase_anon_key),
                    )
                except LookupError as exc:
                    raise CliError(str(exc)) from None

        data = run_async(body)
    if json_out:
        emit_json(data)
    elif data.get("timed_out"):
        raise CliError(data["message"])
    else:
        out.print(f"[bold]Diagnosis of group {group}[/] (EXAI {data['tool']}):")
        out.print(escape(data["diagnosis"]))
    if data.get("timed_out"):
        raise typer.Exit(1)


@issues_app.command("resolve")
def resolve_command(group: GroupArg) -> None:
    """Mark an error group as dealt with (a new failure of its kind opens it again)."""

    if agent_call("issues.resolve", {"group": group}) is NO_AGENT:

        async def body(ctx: Context) -> None:
            try:
                ctx.journal.resolve_group(group_or_fail(ctx.journal, group).id, time.time())
            except LookupError as exc:
                raise CliError(str(exc)) from None

        run_async(body)
    out.print(f"Group {group} resolved.")


@issues_app.command("retry")
def retry_command(
    group: Annotated[int | None, typer.Argument(help="Only this group's files.")] = None,
) -> None:
    """Try failed files again at once (all of them, or one group's)."""

    params: dict[str, Any] = {} if group is None else {"group": group}
    data = agent_call("issues.retry", params)
    if data is NO_AGENT:

        async def body(ctx: Context) -> dict[str, Any]:
            if group is None:
                with ctx.journal.transaction():
                    return {"retrying": ctx.journal.retry_now()}
            try:
                return {"retrying": retry_group(ctx.journal, group_or_fail(ctx.journal, group).id)}
            except LookupError as exc:
                raise CliError(str(exc)) from None

        data = run_async(body)
        out.print(
            f"{data['retrying']} files will be tried on the next pass (`hubsync sync --once`)."
        )
        return
    out.print(f"{data['retrying']} files are being tried again.")


@issues_app.command("ignore")
def ignore_command(
    path: Annotated[Path, typer.Argument(help="A file or folder inside a mirrored folder.")],
) -> None:
    """Stop mirroring a path: adds it to its folder's .hubignore."""

    data = agent_call("issues.ignore", {"path": str(path.expanduser().absolute())})
    if data is NO_AGENT:

        async def body(ctx: Context) -> dict[str, Any]:
            root, rel = find_root(ctx, path.expanduser().absolute())
            try:
                return {"rule": ignore_path(root, rel), "file": str(root.path / ".hubignore")}
            except (ValueError, OSError) as exc:
                raise CliError(str(exc)) from None

        data = run_async(body)
    out.print(f"Added {escape(data['rule'])} to {escape(data['file'])}.")
