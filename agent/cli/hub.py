"""Commands that read the hub across devices: ``devices``, ``find``, ``pull``, ``get``."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.progress import DownloadColumn, Progress, TaskID
from rich.table import Table

from agent.cli.common import CliError, run_async
from agent.cli.output import JsonOpt, emit_json, err, out
from agent.context import Context
from agent.hub.reads import find_files, get_file, list_devices, pull_folder
from sync.errors import SyncError
from sync.find import FindQuery

T = TypeVar("T")
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3}
_UNITS["gb"] = 1024**3


def parse_size(text: str) -> int:
    """``1500``, ``10k``, ``5MB``, ``1.5g`` (powers of 1024) → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise typer.BadParameter(f"not a size: {text!r} (try 500, 10k, 5MB, 1G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_time_ns(text: str) -> int:
    """An ISO date or time (local time when it has no zone) → ns since the epoch."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"not a time: {text!r} (try 2026-11-20 or 2026-11-20T09:00)"
        ) from None
    return int(when.astimezone().timestamp() * 1e9)


def _advance(bar: Progress, task: TaskID, step: object) -> None:
    """Per file (a ManifestEntry) or per bytes moved (an int)."""
    bar.advance(task, step if isinstance(step, int) else 1)


def _no_bar() -> bool:
    """No progress bar when stderr is not a terminal: rich would still end it with a
    newline, a blank line before any error message."""
    return not err.is_terminal


def _utc(at: str) -> str:
    return datetime.fromtimestamp(parse_time_ns(at) / 1e9, UTC).isoformat() if at else ""


async def _reading(work: Awaitable[T]) -> T:
    """A hub read, its one-line failure as the CLI's error."""

    try:
        return await work
    except SyncError as exc:
        raise CliError(exc.message) from None


def register(app: typer.Typer) -> None:

    @app.command()
    def find(
        pattern: Annotated[
            str, typer.Argument(help="Glob on the name (on the path with a /).")
        ] = "",
        device: Annotated[str, typer.Option(help="A device's name or id.")] = "",
        folder: Annotated[str, typer.Option(help="A folder's path on its device, or name.")] = "",
        type_: Annotated[str, typer.Option("--type", help="File extension, e.g. pdf.")] = "",
        larger: Annotated[str, typer.Option(help="Bigger than SIZE (10k, 5MB).")] = "",
        smaller: Annotated[str, typer.Option(help="Smaller than SIZE.")] = "",
        since: Annotated[str, typer.Option(help="Modified at or after TIME (ISO).")] = "",
        until: Annotated[str, typer.Option(help="Modified at or before TIME (ISO).")] = "",
        sha: Annotated[str, typer.Option(help="Content SHA-256 (hex).")] = "",
        deleted: Annotated[bool, typer.Option("--deleted", help="Find deleted files.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Find files in the hub, of every device, by name, type, size, time or content."""
        base = FindQuery(
            pattern=pattern,
            ext=type_,
            larger=parse_size(larger) if larger else None,
            smaller=parse_size(smaller) if smaller else None,
            since_ns=parse_time_ns(since) if since else None,
            until_ns=parse_time_ns(until) if until else None,
            sha256=sha,
            deleted=deleted,
        )

        async def body(ctx: Context) -> list[dict[str, Any]]:
            return await _reading(find_files(ctx.remotes, ctx.unavailable, base, device, folder))

        rows = run_async(body)
        if json_out:
            emit_json(rows)
            return
        table = Table("Device", "Folder", "Path", "Size", "Modified")
        table.columns[4].no_wrap = True
        for r in rows:
            table.add_row(
                escape(r["device"]),
                escape(r["folder"]),
                escape(r["path"]),
                f"{r['size']:,}",
                r["modified"][:16].replace("T", " "),
            )
        out.print(table)
        if not rows:
            out.print("nothing found")

    @app.command()
    def pull(
        source: Annotated[
            str, typer.Argument(help="DEVICE:FOLDER (a name or id; a path or name).")
        ],
        dest: Annotated[Path, typer.Argument(help="Where the folder's files go.")],
        at: Annotated[str, typer.Option(help="The folder as it was at TIME (ISO).")] = "",
        json_out: JsonOpt = False,
    ) -> None:
        """Bring a device's mirrored folder from the hub into DIR (never overwriting)."""
        at_utc = _utc(at)

        async def body(ctx: Context) -> dict[str, Any]:
            with Progress(transient=True, console=err, disable=_no_bar()) as bar:
                task = bar.add_task(f"pulling {escape(source)}", total=None)
                return await _reading(
                    pull_folder(
                        ctx.remotes,
                        ctx.unavailable,
                        ctx.cache,
                        source,
                        dest.expanduser().absolute(),
                        at_utc=at_utc,
                        on_entries=lambda entries: bar.update(task, total=len(entries)),
                        progress=functools.partial(_advance, bar, task),
                    )
                )

        result = run_async(body)
        if json_out:
            emit_json(result)
            return
        out.print(
            f"pulled {result['files']} files of {escape(result['folder'])} from "
            f"{escape(result['device'])} ({result['cache_hits']} from the cache)"
        )
        if result["offline_copies"]:
            out.print(
                f"  {result['offline_copies']} offline copies: the {result['hub']} hub could"
                " not be reached, the same content came from another hub"
            )
        for kept in result["kept_both"]:
            out.print(f"  kept both: {escape(kept)} (a different file was there)")

    @app.command()
    def get(
        source: Annotated[str, typer.Argument(help="DEVICE:PATH (PATH: FOLDER/relative/path).")],
        at: Annotated[str, typer.Option(help="The file as it was at TIME (ISO).")] = "",
        to: Annotated[Path, typer.Option(help="The folder it goes to.")] = Path("."),
        json_out: JsonOpt = False,
    ) -> None:
        """Bring one file of a device from the hub into a folder (never overwriting)."""
        at_utc = _utc(at)

        async def body(ctx: Context) -> dict[str, Any]:
            with Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                transient=True,
                console=err,
                disable=_no_bar(),
            ) as bar:
                task = bar.add_task(f"getting {escape(source)}", total=None)
                return await _reading(
                    get_file(
                        ctx.remotes,
                        ctx.unavailable,
                        ctx.cache,
                        source,
                        to.expanduser().absolute(),
                        at_utc=at_utc,
                        on_size=lambda entry: bar.update(task, total=entry.size),
                        moved=functools.partial(_advance, bar, task),
                        journal=ctx.journal,
                        this_name=ctx.config.device_name,
                    )
                )

        result = run_async(body)
        if json_out:
            emit_json(result)
            return
        where = (
            "from the cache" if result["source"] == "cache" else f"from the {result['source']} hub"
        )
        if result["offline_copy"]:
            where = f"an offline copy {where}: the {result['hub']} hub could not be reached"
        note = " (kept both: a different file was there)" if result["kept_both"] else ""
        out.print(
            f"{escape(result['written_to'])}: version {result['version']} of "
            f"{escape(result['path'])} from {escape(result['device'])}, {where}{note}"
        )

    @app.command()
    def devices(json_out: JsonOpt = False) -> None:
        """Every device of this user in the hub: its folders, file counts, sizes, last seen."""

        async def body(ctx: Context) -> list[dict[str, Any]]:
            return await _reading(list_devices(ctx.remotes, ctx.unavailable, ctx.journal.device_id))

        rows = run_async(body)
        if json_out:
            emit_json(rows)
            return
        table = Table("Hub", "Device", "Last seen", "Folder", "Files", "Size")
        for column in table.columns[1:3]:
            column.no_wrap = True
        for r in rows:
            name = escape(r["name"]) + (" (this device)" if r["this_device"] else "")
            folders = r["folders"] or [{"path": "", "files": 0, "bytes": 0}]
            for i, f in enumerate(folders):
                table.add_row(
                    r["hub"] if i == 0 else "",
                    name if i == 0 else "",
                    r["last_seen"][:19].replace("T", " ") if i == 0 else "",
                    escape(f["path"]),
                    f"{f['files']:,}",
                    f"{f['bytes']:,}",
                )
        out.print(table)
