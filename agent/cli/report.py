"""``hubsync report``: one self-contained HTML file of the analytics (inline SVG, no
scripts, nothing fetched), the chosen period against the one before it."""

from __future__ import annotations

import html
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from agent.cli.common import run_async
from agent.cli.output import err, out
from agent.platform.paths import resolve_paths
from sync.cache import BlobCache
from sync.errors import SyncError
from sync.history_store import packed_history
from sync.journal import Journal

if TYPE_CHECKING:
    from agent.context import Context
    from sync.analytics_charts import Chart

_SPAN = re.compile(r"^(\d+)\s*([hdw])$")
_UNIT = {"h": 3600, "d": 86400, "w": 7 * 86400}

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.15em; margin-top: 2em; }
.summary td, .summary th { padding: 0.2em 1em 0.2em 0; text-align: left; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 2em; }
section { border-top: 1px solid #ddd; padding-top: 0.5em; min-width: 0; }
.chart svg { max-width: 100%; height: auto; }
details table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
details td, details th { border: 1px solid #ddd; padding: 0.15em 0.6em; text-align: right; }
details td:first-child, details th:first-child { text-align: left; }
"""


def parse_since(text: str, now: float) -> float:
    """``24h``, ``7d``, ``2w`` (that long ago) or a date/time (ISO 8601, local time)."""
    m = _SPAN.match(text.strip().lower())
    if m:
        return now - int(m.group(1)) * _UNIT[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use 24h, 7d, 2w or a date like 2026-12-01") from None


def collect(
    journal: Journal, cache: BlobCache | None, since: float, until: float
) -> dict[str, Any]:
    """Roll up what the journal has and return the report's figures."""
    # Not at module level: agent.control's service pulls in the EXAI jobs and httpx.
    from agent.control.analytics_api import utc_offset

    rollups = journal.rollups()
    rollups.roll_up(until, None if cache is None else cache.stats())
    return rollups.report(since, until, utc_offset())


async def compression_saved(ctx: Context) -> int | None:
    """What compressed history saves in the hubs this device's folders use, asked of
    the hubs themselves; None when one of them cannot be asked now."""
    saved = 0
    for hub in sorted({root.hub for root in ctx.journal.roots()}):
        remote = ctx.remotes.get(hub)
        if remote is None:
            return None
        history = packed_history(remote)
        if history is None:
            continue
        try:
            saved += (await history.stats()).saved
        except SyncError:
            return None
    return saved


def _table(chart: Chart) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in chart.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in chart.rows
    )
    return f"<table><tr>{head}</tr>{body or '<tr><td>nothing yet</td></tr>'}</table>"


def _delta(now: float, before: float) -> str:
    if not before:
        return "—"
    return f"{(now / before - 1):+.0%}"


def _summary(report: dict[str, Any]) -> str:
    cur, prev = report["current"]["totals"], report["previous"]["totals"]
    rows = [
        ("Uploads", "uploads"),
        ("Downloads", "downloads"),
        ("Bytes uploaded", "upload_bytes"),
        ("Bytes downloaded", "download_bytes"),
        ("Reads of hub files", "reads"),
        ("Cache hits", "cache_hits"),
        ("Prefetch hits", "prefetch_hits"),
    ]
    cells = "".join(
        f"<tr><th>{label}</th><td>{int(cur.get(k, 0)):,}</td><td>{int(prev.get(k, 0)):,}</td>"
        f"<td>{_delta(cur.get(k, 0), prev.get(k, 0))}</td></tr>"
        for label, k in rows
    )
    return (
        "<table class='summary'><tr><th></th><th>this period</th><th>the one before</th>"
        f"<th>change</th></tr>{cells}</table>"
    )


def render_html(report: dict[str, Any]) -> str:
    from sync.analytics_charts import all_charts  # matplotlib: only when a report is made

    def day(ts: float) -> str:
        return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")

    cur, prev = report["current"], report["previous"]
    sections = "".join(
        f"<section><h2>{html.escape(c.title)}</h2><div class='chart'>{_inline(c.svg)}</div>"
        f"<details><summary>The figures</summary>{_table(c)}</details></section>"
        for c in all_charts(report)
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>HubSync report</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>HubSync report</h1><p>{day(cur['since'])} to {day(cur['until'])}, compared with"
        f" {day(prev['since'])} to {day(prev['until'])}.</p>"
        f"{_summary(report)}<div class='grid'>{sections}</div>"
        "<p><small>Charts drawn with matplotlib (SVG). Hub make-up from the versions this"
        " device recorded; compression savings as the hubs count them (unknown when a hub"
        " could not be asked).</small></p>"
        "</body></html>"
    )


def _inline(svg: str) -> str:
    """The SVG element alone (no XML prolog or doctype inside HTML)."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        out_file: Annotated[
            Path, typer.Option("--out", help="Where to write the HTML file.")
        ] = Path("hubsync-report.html"),
        since: Annotated[
            str, typer.Option(help="Start of the period: 24h, 7d, 2w or a date (default 7d).")
        ] = "7d",
    ) -> None:
        """An HTML report of transfers, latency, cache, reads and the hub's make-up."""
        now = time.time()
        start = parse_since(since, now)
        if start >= now:
            raise typer.BadParameter("--since must be in the past")
        resolve_paths().ensure()

        async def body(ctx: Context) -> dict[str, Any]:
            data = collect(ctx.journal, None, start, now)  # the agent rolls up the cache's
            data["hub"]["compression_saved_bytes"] = await compression_saved(ctx)
            return data

        data = run_async(body)
        try:
            out_file.write_text(render_html(data), encoding="utf-8")
        except OSError as exc:
            err.print(f"cannot write the report to {escape(str(out_file))}: {exc.strerror}")
            raise typer.Exit(1) from None
        out.print(f"Report written to {escape(str(out_file))}")
