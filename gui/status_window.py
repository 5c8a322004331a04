"""The status window: what the agent is doing, what went wrong, and how healthy it is."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QShowEvent
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
from gui.icons import state_icon
from gui.state import AgentState
from gui.widgets import FRACTION_ROLE, ProgressDelegate, activity_glyph, heading, muted

METRICS_POLL_MS = 3000
QUEUE_SHOWN = 50


def _tree(headers: list[str], stretch: int = 0) -> QTreeWidget:
    tree = QTreeWidget()
    tree.setHeaderLabels(headers)
    tree.setRootIsDecorated(False)
    tree.setUniformRowHeights(True)
    tree.setAlternatingRowColors(True)
    tree.header().setStretchLastSection(False)
    for column in range(len(headers)):
        mode = QHeaderView.ResizeMode.Stretch if column == stretch else QHeaderView.ResizeMode.ResizeToContents
        tree.header().setSectionResizeMode(column, mode)
    return tree


class StatusWindow(QWidget):
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

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_overview(), "Transfers")
        self.tabs.addTab(self._build_activity(), "Activity")
        self.tabs.addTab(self._build_errors(), "Errors")
        self.tabs.addTab(self._build_health(), "Health")

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.tabs, 1)

        self._activity_shown: int | None = None
        self._metrics_timer = QTimer(self)
        self._metrics_timer.setInterval(METRICS_POLL_MS)
        self._metrics_timer.timeout.connect(self.link.refresh_metrics)
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
            (("Files", self.files_label), ("Data", self.bytes_label),
             ("Speed", self.speed_label), ("Time left", self.eta_label))
        ):
            figures.addWidget(muted(name), 0, column)
            figures.addWidget(label, 1, column)
        self.transfers = _tree(["Active transfer", "", "Progress"])
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
        self.activity = _tree(["", "File", "What", "When"], stretch=1)
        return self.activity

    def _build_errors(self) -> QWidget:
        page = QWidget()
        self.errors = _tree(["File", "Reason", "Attempts", "Next retry"], stretch=1)
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
        self.health_labels = {k: QLabel() for k in ("state", "checked", "latency", "remote", "user")}
        connection = QFormLayout()
        connection.addRow(heading("Connection"))
        for key, name in (("state", "State"), ("checked", "Last check"), ("latency", "Latency"),
                          ("remote", "Hub"), ("user", "Signed in as")):
            self.health_labels[key].setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            connection.addRow(name, self.health_labels[key])
        self.cache_bar = QProgressBar()
        self.cache_bar.setRange(0, 1000)
        self.cache_labels = {k: QLabel() for k in ("entries", "hit_rate", "dedup")}
        cache = QFormLayout()
        cache.addRow(heading("Cache and deduplication"))
        cache.addRow("Cache use", self.cache_bar)
        cache.addRow("Entries", self.cache_labels["entries"])
        cache.addRow("Hit rate", self.cache_labels["hit_rate"])
        cache.addRow("Saved by dedup", self.cache_labels["dedup"])
        columns = QHBoxLayout()
        columns.addLayout(connection, 1)
        columns.addSpacing(24)
        columns.addLayout(cache, 1)
        self.roots = _tree(["Folder", "State", "Why"], stretch=2)
        layout = QVBoxLayout(page)
        layout.addLayout(columns)
        layout.addWidget(heading("Synced folders"))
        layout.addWidget(self.roots, 1)
        return page

    # -- updates -------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._metrics_timer.start()
        self.link.refresh_metrics()
        self.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._metrics_timer.stop()
        super().closeEvent(event)

    def refresh(self) -> None:
        if not self.isVisible():
            return
        s = self.state
        self.icon.setPixmap(state_icon(s.tray_state(), progress=s.overall_fraction()).pixmap(40, 40))
        self.summary.setText(s.summary())
        hub = s.status.get("hub") or {}
        self.connection.setText(
            f"Connected to the agent · hub: {hub.get('location', fmt.NONE)}" if s.connected
            else s.connection_note
        )
        self._refresh_overview(s.progress)
        if self._activity_shown != s.activity_version:
            self._activity_shown = s.activity_version
            self._refresh_activity()
        self._refresh_errors()
        self._refresh_health()

    def _refresh_overview(self, p: dict[str, Any]) -> None:
        fraction = self.state.overall_fraction()
        self.overall.setValue(round((fraction or 0) * 1000))
        self.overall.setFormat(fmt.percent(fraction) if fraction is not None else "Nothing to do")
        self.files_label.setText(f"{fmt.count(p.get('files_done'))} of {fmt.count(p.get('files_total'))}")
        self.bytes_label.setText(f"{fmt.size(p.get('bytes_done'))} of {fmt.size(p.get('bytes_total'))}")
        self.speed_label.setText(fmt.speed(p.get("speed_bps")))
        self.eta_label.setText(fmt.duration(p.get("eta_seconds")))
        active = p.get("active") or []
        self.transfers.clear()
        for t in active:
            total = int(t.get("bytes_total") or 0)
            done = int(t.get("bytes_done") or 0)
            item = QTreeWidgetItem([
                str(t.get("path", "")),
                "↑" if t.get("direction", "up") == "up" else "↓",
                f"{fmt.size(done)} / {fmt.size(total)}",
            ])
            item.setData(2, FRACTION_ROLE, done / total if total else 0.0)
            self.transfers.addTopLevelItem(item)
        queued = int(p.get("queued") or 0)
        self.queue_label.setText(f"Queue · {fmt.count(queued)} waiting" if queued else "Queue · empty")
        self.queue.clear()
        for q in (p.get("queue") or [])[:QUEUE_SHOWN]:
            self.queue.addTopLevelItem(QTreeWidgetItem([str(q.get("path", "")), fmt.size(q.get("size"))]))

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
            retry = e.get("next_retry")
            item = QTreeWidgetItem([
                str(e.get("path") or "(whole hub)"),
                f"{e.get('reason', '')} [{e.get('kind', 'error')}]",
                str(e.get("attempts", "")),
                "waiting for you" if retry is None else fmt.clock(retry),
            ])
            item.setData(0, Qt.ItemDataRole.UserRole, e.get("id"))
            item.setToolTip(1, str(e.get("reason", "")))
            self.errors.addTopLevelItem(item)
            item.setSelected(e.get("id") in selected)
        self.tabs.setTabText(2, f"Errors ({len(errors)})" if errors else "Errors")
        self.errors_note.setText("" if errors else "No errors. Everything that failed has recovered.")
        self.retry_all.setEnabled(bool(errors) and self.state.connected)
        self.retry_selected.setEnabled(bool(errors) and self.state.connected)

    def _retry_selected(self) -> None:
        ids = [i.data(0, Qt.ItemDataRole.UserRole) for i in self.errors.selectedItems()]
        if ids:
            self.link.fire("retry", {"ids": ids})

    def _refresh_health(self) -> None:
        h, s = self.state.health, self.state
        labels = self.health_labels
        state = str(h.get("state") or ("unknown" if s.connected else "agent not reachable"))
        if h.get("message"):
            state += f" — {h['message']}"
        labels["state"].setText(state)
        labels["checked"].setText(fmt.ago(h.get("checked_at")))
        latency = h.get("latency_ms")
        labels["latency"].setText(fmt.NONE if latency is None else f"{float(latency):.0f} ms")
        labels["remote"].setText(str(h.get("remote") or fmt.NONE))
        labels["user"].setText(str(h.get("user") or "not signed in"))
        cache = s.metrics.get("cache") or {}
        used, limit = int(cache.get("size_bytes") or 0), int(cache.get("limit_bytes") or 0)
        self.cache_bar.setValue(round(used / limit * 1000) if limit else 0)
        self.cache_bar.setFormat(f"{fmt.size(used)} of {fmt.size(limit)}")
        self.cache_labels["entries"].setText(fmt.count(cache.get("entries")))
        self.cache_labels["hit_rate"].setText(fmt.percent(cache.get("hit_rate")))
        dedup = s.metrics.get("dedup") or {}
        self.cache_labels["dedup"].setText(
            f"{fmt.size(dedup.get('saved_bytes'))} in {fmt.count(dedup.get('saved_files'))} files"
        )
        self.roots.clear()
        for r in s.status.get("roots") or []:
            item = QTreeWidgetItem([str(r.get("path", "")), str(r.get("state", "")), str(r.get("reason") or "")])
            if r.get("state") in ("paused", "degraded"):
                item.setForeground(1, Qt.GlobalColor.darkYellow)
            self.roots.addTopLevelItem(item)
