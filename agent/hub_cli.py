"""Commands that read the hub across devices: ``hubsync devices``."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli_output import JsonOpt, emit_json, out
from agent.context import Context


def _device_json(hub: str, this_device: str, device: Any) -> dict[str, Any]:
    return {
        "hub": hub,
        "device_id": device.device_id,
        "name": device.name,
        "this_device": device.device_id == this_device,
        "last_seen": device.last_seen,
        "files": device.files,
        "bytes": device.bytes,
        "folders": [
            {"root_id": f.root_id, "path": f.path, "files": f.files, "bytes": f.bytes}
            for f in device.folders
        ],
    }


def register(app: typer.Typer) -> None:
    from agent.cli import CliError, run_async

    @app.command()
    def devices(json_out: JsonOpt = False) -> None:
        """Every device of this user in the hub: its folders, file counts, sizes, last seen."""

        async def body(ctx: Context) -> list[dict[str, Any]]:
            if not ctx.remotes:
                raise CliError("no hub can be reached: " + "; ".join(ctx.unavailable.values()))
            rows: list[dict[str, Any]] = []
            this_device = ctx.journal.device_id
            for hub, remote in sorted(ctx.remotes.items()):
                rows.extend(_device_json(hub, this_device, d) for d in await remote.devices())
            return rows

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
