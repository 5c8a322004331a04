"""The status window: what the agent is doing, what went wrong, and how healthy it is."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import fmt
from gui.agent_link import AgentLink
from gui.exai_dialog import open_exai_dialog
from gui.held_banner import HeldBanner
from gui.icons import state_icon
from gui.state import AgentState
from gui.widgets import FRACTION_ROLE, ProgressDelegate, activity_glyph, heading, muted

QUEUE_SHOWN = 50


def _tree(headers: list[str], stretch: int = 0) -> QTreeWidget:
    tree = QTreeWidget()
    tree.setHeaderLabels(headers)
    tree.setRootIsDecorated(False)
    tree.setUniformRowHeights(True)
    tree.setAlternatingRowColors(True)
    tree.header().setStretchLastSection(False)
    for column in range(len(headers)):
        mode = (
            QHeaderView.ResizeMode.Stretch
            if column == stretch
            else QHeaderView.ResizeMode.ResizeToContents
        )
        tree.header().setSectionResizeMode(column, mode)
    return tree


class StatusWindow(QWidget):
    open_hub = Signal()
    """"Browse the hub…" was clicked."""

    def __init__(self, state: AgentState, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.link = link
        self.setWindowTitle("HubSync — Status")
        self.resize(760, 520)

        self.icon = QLabel()
        self.summary = QLabel()
        font = self.summary.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.summary.setFont(font)
        self.connection = muted()
        header = QHBoxLayout()
        header.addWidget(self.icon)
        text = QVBoxLayout()
        text.addWidget(self.summary)
        text.addWidget(self.connection)
        header.addLayout(text, 1)
        self.hub_button = QPushButton("Browse the hub…")
        self.hub_button.setToolTip("Every device's files in the hub: find, open, pull")
        self.hub_button.clicked.connect(self.open_hub)
        header.addWidget(self.hub_button, 0, Qt.AlignmentFlag.AlignTop)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_overview(), "Transfers")
        self.tabs.addTab(self._build_activity(), "Activity")
        self.tabs.addTab(self._build_errors(), "Errors")
        self.tabs.addTab(self._build_health(), "Health")

        self.held = HeldBanner(link)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.held)
        layout.addWidget(self.tabs, 1)

        self._activity_shown: int | None = None
        state.changed.connect(self.refresh)

    # -- construction --------------------------------------------------------------------

    def _build_overview(self) -> QWidget:
        page = QWidget()
        self.overall = QProgressBar()
        self.overall.setRange(0, 1000)
        self.files_label = QLabel()
        self.bytes_label = QLabel()
        self.speed_label = QLabel()
        self.eta_label = QLabel()
        figures = QGridLayout()
        for column, (name, label) in enumerate(
            (
                ("Files", self.files_label),
                ("Data", self.bytes_label),
                ("Speed", self.speed_label),
                ("Time left", self.eta_label),
            )
        ):
            figures.addWidget(muted(name), 0, column)
            figures.addWidget(label, 1, column)
        self.transfers = _tree(["Now", "Step", "Progress"])
        self.transfers.setItemDelegateForColumn(2, ProgressDelegate(self.transfers))
        self.transfers.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        self.transfers.setColumnWidth(2, 220)
        self.queue_label = heading("Queue")
        self.queue = _tree(["Waiting", "Size"])
        layout = QVBoxLayout(page)
        layout.addWidget(self.overall)
        layout.addLayout(figures)
        layout.addWidget(self.transfers, 3)
        layout.addWidget(self.queue_label)
        layout.addWidget(self.queue, 2)
        return page

    def _build_activity(self) -> QWidget:
        page = QWidget()
        self.activity = _tree(["", "File", "What", "When"], stretch=1)
        self.ask_exai = QPushButton("Process with EXAI…")
        self.ask_exai.setToolTip("Ask EXAI about the selected file")
        self.ask_exai.clicked.connect(self._ask_exai)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.ask_exai)
        layout = QVBoxLayout(page)
        layout.addWidget(self.activity, 1)
        layout.addLayout(buttons)
        return page

    def _ask_exai(self) -> None:
        row = self.activity.currentItem()
        source = row.text(1) if row is not None and row.text(1) else None
        open_exai_dialog(self, self.link, source=source)

    def _build_errors(self) -> QWidget:
        page = QWidget()
        self.errors = _tree(["File", "Reason", "Folder"], stretch=1)
        self.errors.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.retry_selected = QPushButton("Retry selected now")
        self.retry_all = QPushButton("Retry all now")
        self.retry_selected.clicked.connect(self._retry_selected)
        self.retry_all.clicked.connect(lambda: self.link.fire("retry", {}))
        self.errors_note = muted()
        buttons = QHBoxLayout()
        buttons.addWidget(self.errors_note, 1)
        buttons.addWidget(self.retry_selected)
        buttons.addWidget(self.retry_all)
        layout = QVBoxLayout(page)
        layout.addWidget(self.errors, 1)
        layout.addLayout(buttons)
        return page

    def _build_health(self) -> QWidget:
        page = QWidget()
        self.hubs = _tree(["Hub", "State", "Latency", "Last check", "Where / why"], stretch=4)
        self.cache_bar = QProgressBar()
        self.cache_bar.setRange(0, 1000)
        self.cache_labels = {k: QLabel() for k in ("entries", "hit_rate", "dedup")}
        cache = QFormLayout()
        cache.addRow("Cache use", self.cache_bar)
        cache.addRow("Entries", self.cache_labels["entries"])
        cache.addRow("Hit rate", self.cache_labels["hit_rate"])
        cache.addRow("Saved by dedup", self.cache_labels["dedup"])
        self.roots = _tree(["Folder", "State", "Files", "Why"], stretch=3)
        layout = QVBoxLayout(page)
        layout.addWidget(heading("Connection"))
        layout.addWidget(self.hubs, 1)
        layout.addWidget(heading("Cache and deduplication"))
        layout.addLayout(cache)
        layout.addWidget(heading("Synced folders"))
        layout.addWidget(self.roots, 2)
        return page

    # -- updates -------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        if not self.isVisible():
            return
        s = self.state
        self.icon.setPixmap(
            state_icon(s.tray_state(), progress=s.overall_fraction()).pixmap(40, 40)
        )
        self.summary.setText(s.summary())
        hubs = [f"{h.name}: {h.location}" for h in s.hubs() if h.location]
        self.connection.setText(
            f"Connected to the agent · {' · '.join(hubs) or 'no hub available'}"
            if s.connected
            else s.connection_note
        )
        self.held.show_roots(s.held_roots(), connected=s.connected)
        self._refresh_overview(s.progress)
        if self._activity_shown != s.activity_version:
            self._activity_shown = s.activity_version
            self._refresh_activity()
        self._refresh_errors()
        self._refresh_health()

    def _refresh_overview(self, p: dict[str, Any]) -> None:
        s = self.state
        fraction = s.overall_fraction()
        self.overall.setValue(round((fraction or 0) * 1000))
        self.overall.setFormat(fmt.percent(fraction) if fraction is not None else "Nothing to do")
        busy = s.busy()
        self.files_label.setText(
            f"{fmt.count(p.get('files_done'))} of {fmt.count(p.get('files_total'))}"
            if busy
            else fmt.NONE
        )
        self.bytes_label.setText(
            f"{fmt.size(p.get('bytes_done'))} of {fmt.size(p.get('bytes_total'))}"
            if busy
            else fmt.NONE
        )
        self.speed_label.setText(fmt.speed(s.speed_bps) if busy else fmt.NONE)
        self.eta_label.setText(fmt.duration(s.eta_seconds()))
        self.transfers.clear()
        if busy:
            for t in p.get("active") or [
                {
                    "path": p.get("current") or p.get("root", ""),
                    "bytes_done": p.get("bytes_done"),
                    "bytes_total": p.get("bytes_total"),
                }
            ]:
                total, done = int(t.get("bytes_total") or 0), int(t.get("bytes_done") or 0)
                item = QTreeWidgetItem(
                    [
                        str(t.get("path", "")),
                        str(p.get("phase", "")),
                        f"{fmt.size(done)} / {fmt.size(total)}",
                    ]
                )
                item.setData(2, FRACTION_ROLE, done / total if total else 0.0)
                self.transfers.addTopLevelItem(item)
        queued = int(s.status.get("queue") or 0)
        self.queue_label.setText(
            f"Queue · {fmt.count(queued)} changes waiting" if queued else "Queue · empty"
        )
        self.queue.clear()
        for q in (p.get("queue") or [])[:QUEUE_SHOWN]:
            self.queue.addTopLevelItem(
                QTreeWidgetItem([str(q.get("path", "")), fmt.size(q.get("size"))])
            )

    def _refresh_activity(self) -> None:
        self.activity.clear()
        for a in self.state.activity:
            glyph, colour = activity_glyph(str(a.get("kind", "")))
            what = str(a.get("kind", "")).capitalize()
            if a.get("detail"):
                what += f" · {a['detail']}"
            item = QTreeWidgetItem([glyph, str(a.get("path", "")), what, fmt.ago(a.get("time"))])
            item.setForeground(0, colour)
            item.setToolTip(3, fmt.clock(a.get("time")))
            self.activity.addTopLevelItem(item)

    def _refresh_errors(self) -> None:
        errors = list(self.state.errors.values())
        selected = {i.data(0, Qt.ItemDataRole.UserRole) for i in self.errors.selectedItems()}
        self.errors.clear()
        for e in errors:
            item = QTreeWidgetItem(
                [
                    str(e.get("path") or "(whole folder)"),
                    f"{e.get('reason', '')} [{e.get('kind', 'error')}]",
                    str(e.get("root") or ""),
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, e.get("root"))
            item.setToolTip(1, str(e.get("reason", "")))
            self.errors.addTopLevelItem(item)
            item.setSelected(e.get("root") in selected)
        self.tabs.setTabText(2, f"Errors ({len(errors)})" if errors else "Errors")
        self.errors_note.setText(
            "" if errors else "No errors. Everything that failed has recovered."
        )
        self.retry_all.setEnabled(bool(errors) and self.state.connected)
        self.retry_selected.setEnabled(bool(errors) and self.state.connected)

    def _retry_selected(self) -> None:
        """The agent retries per folder: every folder with a selected error."""
        roots = {i.data(0, Qt.ItemDataRole.UserRole) for i in self.errors.selectedItems()}
        for root in sorted(r for r in roots if r):
            self.link.fire("retry", {"root": root})

    def _refresh_health(self) -> None:
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
        cache = s.status.get("cache") or {}
        used, limit = int(cache.get("bytes") or 0), int(cache.get("limit") or 0)
        self.cache_bar.setValue(round(used / limit * 1000) if limit else 0)
        self.cache_bar.setFormat(f"{fmt.size(used)} of {fmt.size(limit)}")
        self.cache_labels["entries"].setText(fmt.count(cache.get("entries")))
        hits, misses = int(cache.get("hits") or 0), int(cache.get("misses") or 0)
        self.cache_labels["hit_rate"].setText(
            f"{fmt.percent(cache.get('hit_rate'))} ({fmt.count(hits)} of {fmt.count(hits + misses)})"
        )
        counters = (s.status.get("metrics") or {}).get("counters") or {}
        self.cache_labels["dedup"].setText(
            f"{fmt.size(counters.get('dedup_bytes_saved'))} in {fmt.count(counters.get('dedup_hits'))} files"
        )
        self.roots.clear()
        for r in s.roots():
            item = QTreeWidgetItem([r.path, r.state, fmt.count(r.files), r.reason])
            if r.state != "ok":
                item.setForeground(1, Qt.GlobalColor.darkYellow)
            self.roots.addTopLevelItem(item)
