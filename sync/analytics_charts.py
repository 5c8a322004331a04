"""The analytics charts, defined once: rendered to SVG for ``hubsync report`` and for
the tray's Analytics window (which shows the same SVG in a QSvgWidget).

matplotlib draws them (its object API, no pyplot: no global state, no GUI backend),
from the dict :meth:`sync.journal.rollups.JournalRollups.report` returns. Each chart
comes with the table behind it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

NOW_COLOUR = "#2f6fb0"
BEFORE_COLOUR = "#b0b7c0"
SECOND_COLOUR = "#e08a2c"


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    header: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _svg(draw: Callable[[Axes], None], width: float = 6.4, height: float = 3.0) -> str:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    draw(ax)
    ax.spines[["top", "right"]].set_visible(False)
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _barh(ax: Axes, labels: list[str], values: list[float], unit: str, what: str) -> None:
    if not values:
        _empty(ax, what)
        return
    ax.barh(labels[::-1], values[::-1], color=NOW_COLOUR)
    ax.set_xlabel(unit)
    ax.tick_params(axis="y", labelsize=8)


def _short(path: str, width: int = 38) -> str:
    return path if len(path) <= width else "…" + path[-width + 1 :]


def _hub_by(report: dict[str, Any], key: str, title: str) -> Chart:
    data = list(report["hub"][key].items())[:12]
    labels = [_short(k) for k, _ in data]
    values = [v / 1e6 for _, v in data]

    def draw(ax: Axes) -> None:
        _barh(ax, labels, values, "MB", "files in the hub")
        ax.set_title(title)

    return Chart(title, _svg(draw), ("", "size"), [(k, _mb(v)) for k, v in data])


def _savings(report: dict[str, Any]) -> Chart:
    hub = report["hub"]
    items = [
        ("stored", hub["stored_bytes"]),
        ("saved by dedup", hub["dedup_saved_bytes"]),
        ("saved by compression", hub["compression_saved_bytes"]),
    ]
    # None: a hub could not be asked (signed out, unreachable); drawn as no bar.

    def draw(ax: Axes) -> None:
        ax.bar(
            [k for k, _ in items],
            [(v or 0) / 1e6 for _, v in items],
            color=[NOW_COLOUR, SECOND_COLOUR, "#5aa469"],
        )
        ax.set_ylabel("MB")
        ax.set_title("Storage: stored and saved")

    rows = [(k, "unknown" if v is None else _mb(v)) for k, v in items]
    rows.append(("versions", f"{hub['versions']:,}"))
    return Chart("Dedup and compression savings", _svg(draw), ("", "bytes"), rows)


def _when(ts: float, fmt: str) -> str:
    return datetime.fromtimestamp(ts).strftime(fmt)


def _transfers(report: dict[str, Any], key: str, stamp: str, fmt: str, title: str) -> Chart:
    rows_in = report["current"][key]
    when = [_when(r[stamp], fmt) for r in rows_in]
    up = [r.get("uploads", 0) for r in rows_in]
    down = [r.get("downloads", 0) for r in rows_in]

    def draw(ax: Axes) -> None:
        if not rows_in:
            _empty(ax, "transfers")
            return
        xs = range(len(when))
        ax.bar(xs, up, color=NOW_COLOUR, label="uploads")
        ax.bar(xs, down, bottom=up, color=SECOND_COLOUR, label="downloads")
        step = max(1, len(when) // 5)
        ax.set_xticks(list(xs)[::step], when[::step], fontsize=7)
        ax.set_ylabel("files")
        ax.legend(fontsize=8)
        ax.set_title(title)

    rows = [
        (
            w,
            f"{int(u):,}",
            f"{int(d):,}",
            _mb(r.get("upload_bytes", 0)),
            _mb(r.get("download_bytes", 0)),
        )
        for w, u, d, r in zip(when, up, down, rows_in, strict=True)
    ]
    return Chart(title, _svg(draw), ("when", "uploads", "downloads", "up", "down"), rows)


def _latency(report: dict[str, Any]) -> Chart:
    hours = [r for r in report["current"]["hourly"] if "latency_p50" in r or "latency_p95" in r]
    when = [_when(r["hour"], "%d %b %H:00") for r in hours]

    def draw(ax: Axes) -> None:
        if not hours:
            _empty(ax, "saves to the hub")
            return
        xs = range(len(hours))
        ax.plot(
            xs, [r.get("latency_p50") for r in hours], marker=".", label="p50", color=NOW_COLOUR
        )
        ax.plot(
            xs, [r.get("latency_p95") for r in hours], marker=".", label="p95", color=SECOND_COLOUR
        )
        step = max(1, len(when) // 5)
        ax.set_xticks(list(xs)[::step], when[::step], fontsize=7)
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
        ax.set_title("Save-to-hub latency")

    rows = [
        (w, f"{r.get('latency_p50', 0):.2f} s", f"{r.get('latency_p95', 0):.2f} s")
        for w, r in zip(when, hours, strict=True)
    ]
    return Chart("Save-to-hub latency p50/p95", _svg(draw), ("hour", "p50", "p95"), rows)


def _hit_rates(report: dict[str, Any]) -> Chart:
    periods = [("before", report["previous"]["cache"]), ("this period", report["current"]["cache"])]

    def draw(ax: Axes) -> None:
        if all(c["hit_rate"] is None for _, c in periods):
            _empty(ax, "cache reads")
            return
        xs = range(len(periods))
        without = [100 * (c["hit_rate_without_prefetch"] or 0) for _, c in periods]
        withp = [100 * (c["hit_rate"] or 0) for _, c in periods]
        ax.bar([x - 0.2 for x in xs], without, 0.4, color=BEFORE_COLOUR, label="without prefetch")
        ax.bar([x + 0.2 for x in xs], withp, 0.4, color=NOW_COLOUR, label="with prefetch")
        ax.set_xticks(list(xs), [p for p, _ in periods])
        ax.set_ylabel("% of reads from the cache")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
        ax.set_title("Cache hit rate")

    rows = [
        (
            p,
            f"{c['hits']:,}",
            f"{c['misses']:,}",
            f"{c['prefetch_hits']:,}",
            _pct(c["hit_rate_without_prefetch"]),
            _pct(c["hit_rate"]),
        )
        for p, c in periods
    ]
    header = ("period", "hits", "misses", "prefetch hits", "without prefetch", "with prefetch")
    return Chart("Cache hit rate with and without prefetch", _svg(draw), header, rows)


def _top_files(report: dict[str, Any]) -> Chart:
    files = report["top_files"]

    def draw(ax: Axes) -> None:
        _barh(ax, [_short(f["path"]) for f in files], [f["reads"] for f in files], "reads", "reads")
        ax.set_title("Most read files")

    rows = [(f["path"], f"{f['reads']:,}", _when(f["last"], "%Y-%m-%d %H:%M")) for f in files]
    return Chart(
        "Most accessed files", _svg(draw, height=3.6), ("file", "reads", "last read"), rows
    )


def _by_hour(report: dict[str, Any]) -> Chart:
    now = report["current"]["reads_by_hour_of_day"]
    before = report["previous"]["reads_by_hour_of_day"]

    def draw(ax: Axes) -> None:
        if not any(now) and not any(before):
            _empty(ax, "reads")
            return
        xs = range(24)
        ax.bar([x - 0.2 for x in xs], before, 0.4, color=BEFORE_COLOUR, label="before")
        ax.bar([x + 0.2 for x in xs], now, 0.4, color=NOW_COLOUR, label="this period")
        ax.set_xticks(list(xs)[::2], [f"{h:02d}" for h in xs][::2], fontsize=8)
        ax.set_xlabel("hour of the day")
        ax.set_ylabel("reads")
        ax.legend(fontsize=8)
        ax.set_title("Reads by time of day")

    rows = [(f"{h:02d}:00", f"{now[h]:,}", f"{before[h]:,}") for h in range(24)]
    return Chart("Accesses by time of day", _svg(draw), ("hour", "this period", "before"), rows)


def all_charts(report: dict[str, Any]) -> list[Chart]:
    """Every chart, in the order both views show them."""
    return [
        _hub_by(report, "by_folder", "Hub size by folder"),
        _hub_by(report, "by_type", "Hub size by type"),
        _savings(report),
        _transfers(report, "hourly", "hour", "%d %b %H:00", "Transfers per hour"),
        _transfers(report, "daily", "day", "%a %d %b", "Transfers per day"),
        _latency(report),
        _hit_rates(report),
        _top_files(report),
        _by_hour(report),
    ]
