"""Human-readable numbers, sizes, durations and times for the windows."""

from __future__ import annotations

import time
from datetime import datetime

from agent.control.payloads import PrefetchStatus

NONE = "\u2013"
"""Shown for a figure that is not known (an en dash)."""
_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def size(n: float | None) -> str:
    if n is None:
        return NONE
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def speed(bps: float | None) -> str:
    return NONE if not bps else f"{size(bps)}/s"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return NONE
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def ago(timestamp: float | None, now: float | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', else the date: calm and short."""
    if not timestamp:
        return "never"
    delta = (time.time() if now is None else now) - timestamp
    if delta < 45:
        return "just now"
    if delta < 3600:
        return f"{round(delta / 60)} min ago"
    if delta < 86400:
        return f"{round(delta / 3600)} h ago"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d")


def clock(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S") if timestamp else NONE


def count(n: int | None) -> str:
    return NONE if n is None else f"{n:,}"


def percent(fraction: float | None) -> str:
    return NONE if fraction is None else f"{fraction * 100:.0f}%"


def moment(iso: str | None, *, seconds: bool = False) -> str:
    """An ISO time (any offset, or Z) as this machine's local date and time."""
    if not iso:
        return NONE
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if when.tzinfo is not None:
        when = when.astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def prefetch_line(prefetch: PrefetchStatus | None) -> str:
    """``12 prefetched, 9 read (hits), 3.1 MB for nothing`` or why it is off."""
    if not prefetch:
        return "—"
    if not prefetch.get("enabled"):
        return "off"
    return (
        f"{count(prefetch.get('prefetched'))} prefetched, {count(prefetch.get('hits'))} hits,"
        f" {size(prefetch.get('wasted_bytes'))} fetched for nothing ({prefetch.get('state')})"
    )
