"""Mirrored folders and their files: ``add``, ``remove``, ``list``, ``history``, ``restore``."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.common import (
    NO_AGENT,
    PASS_TIMEOUT,
    CliError,
    agent_call,
    find_root,
    run_async,
)
from agent.cli.output import JsonOpt, emit_json, err, out
from agent.context import Context
from sync.errors import UndecodableName
from sync.journal import Root
from sync.reattach import reattach
from sync.restore import RestoreError, restore_path


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
    live = agent_call("add_root", {"path": str(folder), **({"hub": hub} if hub else {})})
    if live is not NO_AGENT:
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


def remove(path: Annotated[Path, typer.Argument(help="A mirrored folder.")]) -> None:
    """Stop mirroring a folder (its versions stay in the hub)."""

    folder = path.expanduser().resolve()
    if agent_call("remove_root", {"path": str(folder)}) is not NO_AGENT:
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


def history(
    path: Annotated[Path, typer.Argument(help="A file inside a mirrored folder.")],
    json_out: JsonOpt = False,
) -> None:
    """List every recorded version of a file."""

    async def body(ctx: Context) -> list[dict[str, Any]]:
        root, rel = find_root(ctx, path.expanduser())
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
    live = agent_call("restore", asked, timeout=PASS_TIMEOUT)  # the agent's journal
    if live is not NO_AGENT:
        _show_restored(live["restored"], json_out)
        return

    async def body(ctx: Context) -> list[dict[str, Any]]:
        root, rel = find_root(ctx, path.expanduser())
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
