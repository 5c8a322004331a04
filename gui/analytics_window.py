"""The Analytics window: the charts of ``hubsync report`` (sync.analytics_charts, the
same definitions), from the agent's ``analytics`` method."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray
from PySide6.QtSvgWidgets import QSvgWidget
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from gui.agent_link import AgentLink
from gui.widgets import muted
from sync.analytics_charts import Chart, all_charts

PERIODS = {"Last 24 hours": 1, "Last 7 days": 7, "Last 30 days": 30}


class AnalyticsWindow(QWidget):
    def __init__(self, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.setWindowTitle("HubSync — Analytics")
        self.resize(1100, 760)
        self.period = QComboBox()
        self.period.addItems(list(PERIODS))
        self.period.setCurrentText("Last 7 days")
        self.period.currentTextChanged.connect(lambda _text: self.load())
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.load)
        self.summary = muted("")
        top = QHBoxLayout()
        top.addWidget(QLabel("Period"))
        top.addWidget(self.period)
        top.addWidget(refresh)
        top.addWidget(self.summary, 1)
        self.grid = QGridLayout()
        body = QWidget()
        body.setLayout(self.grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(scroll, 1)
        self.charts: list[QSvgWidget] = []

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.load()

    def load(self) -> None:
        self.link.fire(
            "analytics",
            {"days": PERIODS[self.period.currentText()]},
            on_result=self.show_report,
            on_error=lambda message: self.summary.setText(f"No analytics: {message}"),
        )

    def show_report(self, report: dict[str, Any]) -> None:
        for old in self.charts:
            self.grid.removeWidget(old)
            old.deleteLater()
        self.charts = []
        for i, chart in enumerate(all_charts(report)):
            self.grid.addWidget(self._chart(chart), i // 2, i % 2)
        cache = report["current"]["cache"]
        rate = cache["hit_rate"]
        self.summary.setText(
            f"{int(report['current']['totals'].get('reads', 0)):,} reads of hub files,"
            f" cache hit rate {'—' if rate is None else f'{rate:.0%}'}"
            f" ({cache['prefetch_hits']:,} by prefetch)"
        )

    def _chart(self, chart: Chart) -> QSvgWidget:
        widget = QSvgWidget()
        widget.load(QByteArray(chart.svg.encode("utf-8")))
        widget.setToolTip(chart.title)
        size = widget.renderer().defaultSize()
        widget.setFixedSize(size)
        self.charts.append(widget)
        return widget
