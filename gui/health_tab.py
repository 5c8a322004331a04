"""The status window's Health tab: the hubs' connection, the cache and dedup, the folders."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QProgressBar,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.control.payloads import CacheStats
from gui import fmt
from gui.state import AgentState
from gui.widgets import heading, table_tree


class HealthTab(QWidget):
    def __init__(self, state: AgentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.hubs = table_tree(["Hub", "State", "Latency", "Last check", "Where / why"], stretch=4)
        self.cache_bar = QProgressBar()
        self.cache_bar.setRange(0, 1000)
        self.cache_labels = {k: QLabel() for k in ("entries", "hit_rate", "prefetch", "dedup")}
        cache = QFormLayout()
        cache.addRow("Cache use", self.cache_bar)
        cache.addRow("Entries", self.cache_labels["entries"])
        cache.addRow("Hit rate", self.cache_labels["hit_rate"])
        cache.addRow("Prefetch", self.cache_labels["prefetch"])
        cache.addRow("Saved by dedup", self.cache_labels["dedup"])
        self.roots = table_tree(["Folder", "State", "Files", "Why"], stretch=3)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Connection"))
        layout.addWidget(self.hubs, 1)
        layout.addWidget(heading("Cache and deduplication"))
        layout.addLayout(cache)
        layout.addWidget(heading("Synced folders"))
        layout.addWidget(self.roots, 2)

    def refresh(self) -> None:
        s = self.state
        self.hubs.clear()
        for h in s.hubs():
            latency = fmt.NONE if h.latency_ms is None else f"{h.latency_ms:.0f} ms"
            where = " · ".join(
                part
                for part in (h.location, f"signed in as {h.user}" if h.user else "", h.reason)
                if part
            )
            item = QTreeWidgetItem([h.name, h.state, latency, fmt.ago(h.last_check), where])
            item.setToolTip(4, where)
            if h.state not in ("online", "unknown"):
                item.setForeground(1, Qt.GlobalColor.darkYellow)
            self.hubs.addTopLevelItem(item)
        status = s.status
        cache: CacheStats | dict[str, Any] = (status.get("cache") if status else None) or {}
        used, limit = int(cache.get("bytes") or 0), int(cache.get("limit") or 0)
        self.cache_bar.setValue(round(used / limit * 1000) if limit else 0)
        self.cache_bar.setFormat(f"{fmt.size(used)} of {fmt.size(limit)}")
        self.cache_labels["entries"].setText(fmt.count(cache.get("entries")))
        hits, misses = int(cache.get("hits") or 0), int(cache.get("misses") or 0)
        self.cache_labels["hit_rate"].setText(
            f"{fmt.percent(cache.get('hit_rate'))} ({fmt.count(hits)} of {fmt.count(hits + misses)})"
        )
        self.cache_labels["prefetch"].setText(
            fmt.prefetch_line(status.get("prefetch") if status else None)
        )
        metrics = (status.get("metrics") if status else None) or {}
        counters = metrics.get("all_time") or metrics.get("counters") or {}  # over restarts
        self.cache_labels["dedup"].setText(
            f"{fmt.size(counters.get('dedup_bytes_saved'))} in {fmt.count(counters.get('dedup_hits'))} files"
        )
        self.roots.clear()
        for r in s.roots():
            item = QTreeWidgetItem([r.path, r.state, fmt.count(r.files), r.reason])
            if r.state != "ok":
                item.setForeground(1, Qt.GlobalColor.darkYellow)
            self.roots.addTopLevelItem(item)
