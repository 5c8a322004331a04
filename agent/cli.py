"""The ``hubsync`` command line.

One-shot work (add, sync --once, history, restore, doctor) runs in-process;
whatever concerns a running agent goes through its control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from rich.table import Table

from agent.cli_output import JsonOpt, emit_json, err, out
from agent.config import ConfigError
from agent.context import Context
from agent.journal_lock import JournalBusy
from agent.journal_lock import one_engine as journal_lock
from agent.lock import lock_held
from agent.pass_json import report_from_json, report_json
from agent.paths import resolve_paths
from sync.disk_space import disk_full
from sync.engine import PassReport
from sync.engine import Progress as SyncProgress
from sync.errors import DiskFull, SyncError, UndecodableName, shown_name
from sync.journal import Root
from sync.journal.issues import WHOLE_FOLDER
from sync.reattach import reattach
from sync.restore import RestoreError, restore_path

T = TypeVar("T")

app = typer.Typer(
    name="hubsync",
    help="Mirror folders to a Supabase hub (or the embedded local hub).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ServiceRoleOpt = Annotated[
    bool,
    typer.Option(
        "--service-role", help="Headless servers: use the service-role key (needs --user-id)."
    ),
]
UserIdOpt = Annotated[
    str | None, typer.Option("--user-id", help="The fixed user id service-role mode acts for.")
]


def _service_role_user(service_role: bool, user_id: str | None) -> str | None:
    """Service-role mode only with both flags, and never quietly."""
    if not service_role:
        if user_id:
            raise CliError("--user-id goes with --service-role")
        return None
    if not user_id:
        raise CliError("--service-role needs a fixed --user-id")
    from agent.supabase_cli import _warn_service_role

    _warn_service_role(user_id)
    return user_id


class CliError(Exception):
    """A clear message for the user and an exit code; never a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class JournalDamaged(CliError):
    def __init__(self, exc: sqlite3.DatabaseError) -> None:

        super().__init__(
            f"the journal {resolve_paths().journal} is damaged ({exc}). Move it aside (keep it "
            "for a bug report) and add your folders again: the hub keeps every version."
        )


class NoSpace(CliError):
    """The disk of HubSync's own state is full: the journal is fine, the work waits."""

    def __init__(self, full: DiskFull) -> None:
        super().__init__(
            f"{full.message}: HubSync could not write its state there; nothing is lost, "
            "free some space and run the command again"
        )


def journal_error(exc: sqlite3.DatabaseError) -> CliError:
    """What a failed journal read or write means: a full disk, or a damaged journal."""
    journal = resolve_paths().journal
    full = disk_full(exc, journal)
    return JournalDamaged(exc) if full is None else NoSpace(full)


def _no_space(exc: OSError) -> NoSpace | None:
    """A write of HubSync's own state (lock, journal, cache) that found the disk full."""
    full = disk_full(exc, exc.filename or resolve_paths().data_dir)
    return None if full is None else NoSpace(full)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"hubsync {dist_version('hubsync')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """HubSync: mirror folders to a hub, deduplicated by content."""


def run_async(
    body: Callable[[Context], Awaitable[T]],
    *,
    service_role_user: str | None = None,
    one_engine: bool = False,
) -> T:
    """Open the context, run ``body`` and close everything, turning errors into messages.

    ``one_engine``: the command syncs or restores, and keeps any other process that
    would out of the journal while it runs (see agent/journal_lock.py)."""
    if one_engine:
        try:
            with journal_lock(resolve_paths().journal):
                return run_async(body, service_role_user=service_role_user)
        except JournalBusy as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:  # the lock file could not be made
            no_space = _no_space(exc)
            if no_space is None:
                raise
            raise no_space from None

    async def main() -> T:
        paths = resolve_paths()
        try:
            # With an agent running, the journal is its: this process never switches hubs.
            ctx = Context.open(
                paths,
                service_role_user=service_role_user,
                may_adopt=not lock_held(paths.agent_lock),
            )
        except ConfigError as exc:
            raise CliError(f"configuration error: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise journal_error(exc) from None
        async with ctx:
            for notice in ctx.notices:
                err.print(f"[yellow]note:[/] {escape(notice)}")
            try:
                return await body(ctx)
            except sqlite3.DatabaseError as exc:
                raise journal_error(exc) from None

    try:
        return asyncio.run(main())
    except OSError as exc:
        no_space = _no_space(exc)
        if no_space is None:
            raise
        raise no_space from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; nothing is lost, run the command again to continue", 130
        ) from None


def _find_root(ctx: Context, path: Path) -> tuple[Root, str]:
    try:
        found = ctx.journal.root_for(path)
    except UndecodableName as exc:
        raise CliError(str(exc)) from None
    if found is None:
        raise CliError(f"{path} is not inside a mirrored folder (see `hubsync list`)")
    return found


# -- roots ----------------------------------------------------------------------------------


_NO_AGENT = object()


def _agent_call(method: str, params: dict[str, Any], timeout: float = 30) -> Any:
    """Ask the running agent (so it starts watching at once); ``_NO_AGENT`` when none runs."""
    from agent.control.client import AgentUnavailable, call_sync
    from agent.control.protocol import ControlError

    try:
        return call_sync(method, params, timeout=timeout)
    except AgentUnavailable:
        return _NO_AGENT
    except ControlError as exc:
        raise CliError(exc.message) from None


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="Folder to mirror.")],
    hub: Annotated[
        str | None, typer.Option(help="local or supabase (default: Supabase when configured).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Mirror a folder (through the running agent when there is one)."""
    folder = path.expanduser().resolve()
    if not folder.exists():
        raise CliError(f"{folder} does not exist")
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    live = _agent_call("add_root", {"path": str(folder), **({"hub": hub} if hub else {})})
    if live is not _NO_AGENT:
        if json_out:
            emit_json(live)
        else:
            out.print(
                f"Mirroring [bold]{escape(live['path'])}[/] to the {live['hub']} hub; the agent is on it."
            )
        return

    async def body(ctx: Context) -> Root:
        folder = path.expanduser()
        if not folder.is_dir():
            raise CliError(f"{folder} is not a folder")
        chosen = hub or ctx.config.default_hub()
        if chosen not in ("local", "supabase"):
            raise CliError("--hub must be 'local' or 'supabase'")
        if chosen == "supabase" and not ctx.config.supabase_configured:
            raise CliError(ctx.unavailable["supabase"])
        if chosen == "local" and "local" not in ctx.remotes:
            raise CliError(ctx.unavailable.get("local", "the local hub cannot be opened"))
        try:
            root = ctx.journal.add_root(folder, chosen, hub_asked=hub is not None)
        except (ValueError, UndecodableName) as exc:
            raise CliError(str(exc)) from None
        if chosen not in ctx.remotes:
            err.print(
                f"[yellow]note:[/] {escape(ctx.unavailable.get(chosen, ''))}; syncing waits until then"
            )
            return root
        root, known = await reattach(ctx.journal, ctx.remotes[chosen], root)
        if known:
            err.print(f"Mirrored before: the history of its {known} files is back.")
        return root

    root = run_async(body)
    if json_out:
        emit_json({"id": root.id, "path": str(root.path), "hub": root.hub})
    else:
        out.print(
            f"Mirroring [bold]{escape(str(root.path))}[/] to the {root.hub} hub. "
            "Run `hubsync sync --once`."
        )


@app.command()
def remove(path: Annotated[Path, typer.Argument(help="A mirrored folder.")]) -> None:
    """Stop mirroring a folder (its versions stay in the hub)."""

    folder = path.expanduser().resolve()
    if _agent_call("remove_root", {"path": str(folder)}) is not _NO_AGENT:
        out.print(
            f"Stopped mirroring {escape(str(folder))}. Its files and versions stay in the hub."
        )
        return

    async def body(ctx: Context) -> Root:
        root = ctx.journal.root_by_path(folder)
        if root is None:
            raise CliError(f"{path} is not a mirrored folder")
        ctx.journal.remove_root(root.id)
        return root

    root = run_async(body)
    out.print(
        f"Stopped mirroring {escape(str(root.path))}. Its files and versions stay in the hub."
    )


@app.command(name="list")
def list_roots(json_out: JsonOpt = False) -> None:
    """List mirrored folders."""

    async def body(ctx: Context) -> list[dict[str, Any]]:
        rows = []
        for root in ctx.journal.roots():
            counts = ctx.journal.count_states(root.id)
            rows.append(
                {
                    "path": str(root.path),
                    "hub": root.hub,
                    "paused": root.paused,
                    "degraded": root.degraded,
                    "files": sum(n for s, n in counts.items() if s != "deleted"),
                    "synced": counts.get("synced", 0),
                    "errors": counts.get("error", 0),
                }
            )
        return rows

    rows = run_async(body)
    if json_out:
        emit_json(rows)
        return
    if not rows:
        out.print("No mirrored folders yet. Add one with `hubsync add PATH`.")
        return
    table = Table("Folder", "Hub", "Files", "Synced", "Errors", "State")
    for r in rows:
        state = "paused" if r["paused"] else (r["degraded"] or "ok")
        table.add_row(
            escape(r["path"]), r["hub"], str(r["files"]), str(r["synced"]), str(r["errors"]), state
        )
    out.print(table)


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


@app.command()
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
    acting_for = _service_role_user(service_role, user_id)
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


PASS_TIMEOUT = 7 * 24 * 3600.0
"""How long ``sync --once`` waits for the agent's pass: as long as the pass takes."""


def _sync_through_agent(confirm_deletes: bool) -> list[PassReport] | None:
    """``sync --once`` while an agent runs: the agent's engine makes the pass (None: no
    agent). ``--confirm-deletes`` is the tray's "Delete in the hub too": the held files
    counted here are deleted (the agent refuses if more were held since)."""
    live = _agent_call("status", {})
    if live is _NO_AGENT:
        return None
    if confirm_deletes:
        for root in live["roots"]:
            held = root["counts"].get("held", 0)
            if held:
                err.print(f"Deleting the {held} held files of {escape(root['path'])} in the hub.")
                _agent_call("apply_held", {"root": root["path"], "expected": held})
        while True:  # the answers run in the background, between passes
            now = _agent_call("status", {})
            if now is _NO_AGENT or not any(r["answering"] for r in now["roots"]):
                break
            time.sleep(0.2)
    answer = _agent_call("sync_once", {}, timeout=PASS_TIMEOUT)
    if answer is _NO_AGENT:
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
        if rel == WHOLE_FOLDER:
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


@app.command()
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

    data = _live_status()
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
        f"Cache: {c['entries']} entries, {c['bytes']:,} of {c['limit']:,} bytes, hit rate {c['hit_rate']:.0%}"
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


def _live_status() -> dict[str, Any] | None:
    """The running agent's view, or None when no agent runs."""
    from agent.control.client import AgentUnavailable, call_sync
    from agent.control.protocol import ControlError

    try:
        live: dict[str, Any] = call_sync("status", timeout=5)
    except AgentUnavailable:
        return None
    except ControlError as exc:  # e.g. it did not answer in time
        raise CliError(f"the agent is running but {exc.message}") from None
    live["agent"] = f"running ({live['state']})"
    return live


@app.command()
def history(
    path: Annotated[Path, typer.Argument(help="A file inside a mirrored folder.")],
    json_out: JsonOpt = False,
) -> None:
    """List every recorded version of a file."""

    async def body(ctx: Context) -> list[dict[str, Any]]:
        root, rel = _find_root(ctx, path.expanduser())
        versions = ctx.journal.versions(root.id, rel)
        if not versions:
            raise CliError(f"no recorded versions of {rel}")
        return [
            {
                "version": v.version,
                "sha256": v.sha256,
                "size": v.size,
                "deleted": v.deleted,
                "recorded_at": datetime.fromtimestamp(v.recorded_at)
                .astimezone()
                .isoformat(timespec="seconds"),
                "mtime": datetime.fromtimestamp(v.mtime_ns / 1e9)
                .astimezone()
                .isoformat(timespec="seconds"),
            }
            for v in versions
        ]

    rows = run_async(body)
    if json_out:
        emit_json(rows)
        return
    table = Table("Version", "Recorded", "Modified", "Size", "SHA-256", "")
    for column in table.columns[1:3]:
        column.no_wrap = True  # the times are what `restore --at` takes
    for r in rows:
        table.add_row(
            str(r["version"]),
            r["recorded_at"],
            r["mtime"],
            f"{r['size']:,}",
            r["sha256"][:12],
            "deleted" if r["deleted"] else "",
        )
    out.print(table)


@app.command()
def restore(
    path: Annotated[
        Path, typer.Argument(help="A file (or a deleted folder) inside a mirrored folder.")
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (see `history`).")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="The version current at this ISO time.")
    ] = None,
    to: Annotated[
        Path | None, typer.Option("--to", help="Restore into this folder instead.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Bring back a version; never overwrites a different local file (keeps both)."""
    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise CliError(f"--at {at!r} is not an ISO time like 2026-11-26T10:30") from None
        if when.tzinfo is None:
            when = when.astimezone()
    if version is not None and when is not None:
        raise CliError("give --version or --at, not both")
    asked: dict[str, Any] = {"path": os.path.abspath(path.expanduser())}
    if version is not None:
        asked["version"] = version
    if when is not None:
        asked["at"] = when.isoformat()
    if to is not None:
        asked["to"] = str(to.expanduser().resolve())
    live = _agent_call("restore", asked, timeout=PASS_TIMEOUT)  # the agent's journal
    if live is not _NO_AGENT:
        _show_restored(live["restored"], json_out)
        return

    async def body(ctx: Context) -> list[dict[str, Any]]:
        root, rel = _find_root(ctx, path.expanduser())
        if root.hub not in ctx.remotes:
            raise CliError(ctx.unavailable.get(root.hub, f"the {root.hub} hub is not available"))
        try:
            done = await restore_path(
                ctx.journal,
                ctx.remotes[root.hub],
                ctx.cache,
                root,
                rel,
                version=version,
                at=when,
                to_dir=to.expanduser().resolve() if to else None,
            )
        except RestoreError as exc:
            raise CliError(f"{rel}: {exc.message}") from None
        return [
            {
                "path": d.relpath,
                "version": d.version,
                "written_to": str(d.path),
                "identical": d.identical,
                "kept_both": d.kept_both,
            }
            for d in done
        ]

    _show_restored(run_async(body, one_engine=True), json_out)


def _show_restored(rows: list[dict[str, Any]], json_out: bool) -> None:
    if json_out:
        emit_json(rows)
        return
    for r in rows:
        name, written = escape(r["path"]), escape(r["written_to"])
        if r["identical"]:
            out.print(f"{name}: version {r['version']} is already there, as {written}")
        elif r["kept_both"]:
            out.print(
                f"{name}: a different file is there; version {r['version']} restored beside it "
                f"as {written}"
            )
        else:
            out.print(f"{name}: version {r['version']} restored to {written}")


@app.command()
def doctor(
    json_out: JsonOpt = False,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Also write a diagnostics zip (no secrets) here."),
    ] = None,
) -> None:
    """Check the config, the journal's integrity and whether the hubs answer."""
    if bundle is not None:
        from agent.diagnostics import write_bundle

        written = write_bundle(resolve_paths(), bundle.expanduser())
        err.print(f"Diagnostics written to {escape(str(written))} (no secrets inside).")

    async def body(ctx: Context) -> list[dict[str, Any]]:
        checks: list[dict[str, Any]] = [
            {"check": "config", "ok": True, "detail": str(ctx.paths.config_file)},
        ]
        integrity = ctx.journal.integrity_check()
        checks.append(
            {
                "check": "journal",
                "ok": integrity == "ok",
                "detail": f"{ctx.paths.journal}: {integrity}",
            }
        )
        for name, remote in ctx.remotes.items():
            try:
                latency = await remote.ping()
                checks.append(
                    {
                        "check": f"{name} hub",
                        "ok": True,
                        "detail": f"{remote.describe()} answered in {latency * 1000:.0f} ms",
                    }
                )
            except SyncError as exc:
                checks.append({"check": f"{name} hub", "ok": False, "detail": exc.message})
        for name, why in ctx.unavailable.items():
            used = any(r.hub == name for r in ctx.journal.roots())
            checks.append({"check": f"{name} hub", "ok": not used, "detail": why})
        for root in ctx.journal.roots():
            checks.append(
                {
                    "check": "folder",
                    "ok": root.path.is_dir(),
                    "detail": f"{root.path}" + ("" if root.path.is_dir() else " is missing"),
                }
            )
        return checks

    try:
        checks = run_async(body)
    except (JournalDamaged, NoSpace) as exc:
        checks = [{"check": "journal", "ok": False, "detail": str(exc)}]
    except CliError as exc:
        checks = [{"check": "config", "ok": False, "detail": str(exc)}]
    checks.append(_agent_check())
    if json_out:
        emit_json(checks)
    else:
        for c in checks:
            mark = "[green]ok[/]  " if c["ok"] else "[red]FAIL[/]"
            out.print(f"{mark} {c['check']}: {escape(c['detail'])}")
    if not all(c["ok"] for c in checks):
        raise typer.Exit(1)


def _agent_check() -> dict[str, Any]:
    """Whether an agent answers: not a failure when none runs (one-off syncs work)."""
    try:
        live = _live_status()
    except CliError as exc:
        return {"check": "agent", "ok": False, "detail": str(exc)}
    if live is None:
        detail = "not running; changes sync only on `hubsync sync --once` until `hubsync run`"
    else:
        n = len(live.get("roots", []))
        detail = f"{live['agent']}, {n} {'folder' if n == 1 else 'folders'} watched"
    return {"check": "agent", "ok": True, "detail": detail}


@app.command()
def agent(service_role: ServiceRoleOpt = False, user_id: UserIdOpt = None) -> None:
    """Run the agent in the foreground (watch folders, serve the tray and CLI)."""
    from agent.lock import AlreadyRunning
    from agent.runner import run_agent

    acting_for = _service_role_user(service_role, user_id)
    try:
        run_agent(service_role_user=acting_for)
    except AlreadyRunning as exc:
        raise CliError(str(exc)) from None
    except ConfigError as exc:
        raise CliError(f"configuration error: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise journal_error(exc) from None
    except OSError as exc:
        no_space = _no_space(exc)
        if no_space is None:
            raise
        raise no_space from None


def _add_for_run(folder: Path) -> Root:
    async def body(ctx: Context) -> Root:
        try:
            return ctx.journal.add_root(folder, ctx.config.default_hub())
        except (ValueError, UndecodableName) as exc:
            raise CliError(str(exc)) from None

    return run_async(body)


def _folder_to_run(path: Path) -> tuple[Path, bool]:
    """``path`` as a folder to mirror, made if missing; returns (folder, made here)."""
    folder = path.expanduser()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot make the folder {folder}: {exc.strerror or exc}") from None
    return folder, made


def _has_display() -> bool:
    import os

    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@app.command()
def run(
    path: Annotated[Path | None, typer.Argument(help="A folder to mirror (added if new).")] = None,
    tray: Annotated[
        bool | None,
        typer.Option("--tray/--no-tray", help="Default: the tray when a display exists."),
    ] = None,
) -> None:
    """Mirror PATH and keep it synced: the agent, with the tray when there is a screen."""
    running = _agent_call("status", {}) is not _NO_AGENT
    if path is not None:
        folder, made = _folder_to_run(path)
        try:
            if running:
                add(folder, hub=None, json_out=False)
            else:
                root = _add_for_run(folder)
        except BaseException:
            if made:  # refused: leave nothing behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
    if path is not None and not running:
        out.print(f"Mirroring [bold]{escape(str(root.path))}[/] to the {root.hub} hub.")
    use_tray = _has_display() if tray is None else tray
    if use_tray:
        try:
            from gui.app import main as tray_main
        except ImportError:
            err.print(
                "The tray needs PySide6 (pip install 'hubsync[gui]'); running the agent only."
            )
        else:
            tray_main([])
            return
    if running:
        out.print("An agent is already running and keeps the folder synced (`hubsync status`).")
        return
    out.print(
        "Agent running; Ctrl-C stops it. Files saved in the folder reach the hub in about a second."
    )
    agent()


def _register_subcommands() -> None:
    from agent.agent_cli import register as register_agent_tools
    from agent.desktop import register as register_desktop
    from agent.exai.cli import exai_app
    from agent.hub_cli import register as register_hub
    from agent.issues_cli import issues_app
    from agent.report_cli import register as register_report
    from agent.stats_cli import register as register_stats
    from agent.supabase_cli import register as register_supabase

    register_agent_tools(app)
    register_supabase(app)
    register_desktop(app)
    register_hub(app)
    register_stats(app)
    register_report(app)
    app.add_typer(exai_app, name="exai", help="Send hub files to an EXAI server.")
    app.add_typer(issues_app, name="issues")


_register_subcommands()


def main() -> None:
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(exc.code)
    except KeyboardInterrupt:  # before a command got going (loading); nothing to undo
        err.print("interrupted")
        sys.exit(130)
