"""``hubsync stats``: what compressed history saves in each hub (``--compact`` first
compresses every superseded version now, instead of waiting for the agent)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from agent.cli.common import run_async
from agent.cli.output import JsonOpt, emit_json, out
from agent.context import Context
from sync.compaction import compact
from sync.history_store import packed_history


def register(app: typer.Typer) -> None:
    @app.command()
    def stats(
        compact_now: Annotated[
            bool,
            typer.Option("--compact", help="Compress every superseded version first."),
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Storage saved by compressing history (superseded versions), per hub."""

        async def body(ctx: Context) -> list[dict[str, Any]]:
            rows = []
            for name, remote in ctx.remotes.items():
                history = packed_history(remote)
                if history is None:
                    continue
                compressed = 0
                while compact_now:
                    report = await compact(history, work_dir=ctx.paths.cache_dir)
                    compressed += report.compressed
                    if not (report.compressed or report.left_raw or report.revived):
                        break
                s = await history.stats()
                rows.append(
                    {
                        "hub": name,
                        "compressed_now": compressed,
                        "blobs": s.blobs,
                        "raw_bytes": s.raw_bytes,
                        "stored_bytes": s.stored_bytes,
                        "saved_bytes": s.saved,
                    }
                )
            return rows

        rows = run_async(body)
        if json_out:
            emit_json(rows)
            return
        table = Table("Hub", "Versions compressed", "Raw", "Stored", "Saved")
        for r in rows:
            share = f" ({r['saved_bytes'] / r['raw_bytes']:.0%})" if r["raw_bytes"] else ""
            table.add_row(
                r["hub"],
                f"{r['blobs']:,}",
                f"{r['raw_bytes']:,}",
                f"{r['stored_bytes']:,}",
                f"{r['saved_bytes']:,}{share}",
            )
        out.print(table)
