"""The Activity list: recent operations, with bursts (one kind, close in time) folded into
one expandable row such as "2,000 files uploaded" instead of a line per file."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from gui import fmt
from gui.widgets import activity_glyph

Json = dict[str, Any]

BURST_GAP = 60.0  # seconds between two operations of one burst
BURST_MIN = 3  # fewer than this stay single rows
PATH_ROLE = Qt.ItemDataRole.UserRole


def bursts(items: list[Json], gap: float = BURST_GAP) -> list[list[Json]]:
    """Runs of consecutive ``items`` (newest first) of one kind, each within ``gap`` seconds
    of the previous one."""
    runs: list[list[Json]] = []
    for item in items:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.get("kind") == item.get("kind")
            and abs(float(last.get("time") or 0) - float(item.get("time") or 0)) <= gap
        ):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def burst_title(run: list[Json], *, capped: bool) -> str:
    """ "2,000 files uploaded"; "at least 200" when the run reaches the end of what the
    agent sent (older ones of the burst were not fetched)."""
    count = fmt.count(len(run))
    return f"{'at least ' if capped else ''}{count} files {run[0].get('kind', '')}"


def _row(a: Json) -> QTreeWidgetItem:
    glyph, colour = activity_glyph(str(a.get("kind", "")))
    what = str(a.get("kind", "")).capitalize()
    if a.get("detail"):
        what += f" · {a['detail']}"
    item = QTreeWidgetItem([glyph, str(a.get("shown") or a.get("path", "")), what])
    item.setText(3, fmt.ago(a.get("time")))
    item.setData(1, PATH_ROLE, str(a.get("path", "")))
    item.setToolTip(1, str(a.get("path", "")))
    item.setForeground(0, colour)
    item.setToolTip(3, fmt.clock(a.get("time")))
    return item


def _key(run: list[Json]) -> tuple[str, float]:
    return str(run[-1].get("kind")), float(run[-1].get("time") or 0)


def fill_activity(tree: QTreeWidget, items: list[Json], *, capped: bool = False) -> None:
    """Replace the tree's rows by ``items``; groups the user opened stay open. ``capped``:
    ``items`` is the agent's limit, so the oldest run may have more files than listed."""
    tops = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    opened = {top.data(0, PATH_ROLE) for top in tops if top is not None and top.isExpanded()}
    tree.clear()
    runs = bursts(items)
    for n, run in enumerate(runs):
        if len(run) < BURST_MIN:
            tree.addTopLevelItems([_row(a) for a in run])
            continue
        glyph, colour = activity_glyph(str(run[0].get("kind", "")))
        span = f"{fmt.ago(run[-1].get('time'))} to {fmt.ago(run[0].get('time'))}"
        group = QTreeWidgetItem(
            [glyph, burst_title(run, capped=capped and n == len(runs) - 1), "", span]
        )
        group.setForeground(0, colour)
        group.setData(0, PATH_ROLE, _key(run))
        group.setToolTip(1, "Double-click or press → to list the files")
        group.addChildren([_row(a) for a in run])
        tree.addTopLevelItem(group)
        group.setExpanded(_key(run) in opened)
