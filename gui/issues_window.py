"""The Sync issues view: every file not in the hub and why, with actions per item and
per error group (retry now, ignore this, open its folder, show the rule, diagnose with
EXAI, mark resolved). It reaches the agent only through the control API (``issues*``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QPushButton,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.agent_link import AgentLink
from gui.tray import open_location
from gui.widgets import heading, muted

ISSUE_ROLE = Qt.ItemDataRole.UserRole + 2
RELOAD_MS = 2000
"""Status events (a pass ended) reload the list at most this often."""

CATEGORY_TITLES = {
    "error": "Failed",
    "skipped": "Skipped",
    "held": "Deletion held",
    "ignored": "Ignored",
}


class IssuesWindow(QWidget):
    loaded = Signal()
    """A fresh list is shown."""
    diagnosed = Signal(str)
    """EXAI's answer (or why there is none) is shown."""

    def __init__(self, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.setWindowTitle("HubSync — Sync issues")
        self.resize(900, 560)
        self.summary = muted("Loading…")
        self.show_ignored = QCheckBox("Also show what ignore rules exclude")
        self.show_ignored.toggled.connect(lambda _on: self.load())
        self.items = QTreeWidget()
        self.items.setHeaderLabels(["What", "Path", "Why"])
        self.items.setRootIsDecorated(False)
        self.items.setAlternatingRowColors(True)
        self.items.itemSelectionChanged.connect(self._selection_changed)
        self.retry_button = QPushButton("Retry now")
        self.ignore_button = QPushButton("Ignore this")
        self.open_button = QPushButton("Open its folder")
        self.rule_button = QPushButton("Show the rule")
        for button, slot in (
            (self.retry_button, self._retry),
            (self.ignore_button, self._ignore),
            (self.open_button, self._open_folder),
            (self.rule_button, self._show_rule),
        ):
            button.clicked.connect(slot)
        self.groups = QTreeWidget()
        self.groups.setHeaderLabels(["#", "State", "Kind", "Times", "Failing now", "What failed"])
        self.groups.setRootIsDecorated(False)
        self.groups.itemSelectionChanged.connect(self._selection_changed)
        self.diagnose_button = QPushButton("Diagnose with EXAI")
        self.group_retry_button = QPushButton("Retry the group")
        self.resolve_button = QPushButton("Mark resolved")
        self.diagnose_button.clicked.connect(self._diagnose)
        self.group_retry_button.clicked.connect(self._retry_group)
        self.resolve_button.clicked.connect(self._resolve)
        self.answer = QTextBrowser()
        self.answer.setPlaceholderText("EXAI's diagnosis of the selected group appears here.")
        self.answer.setMaximumHeight(160)

        layout = QVBoxLayout(self)
        layout.addWidget(heading("Not in the hub, and why"))
        layout.addWidget(self.summary)
        layout.addWidget(self.show_ignored)
        layout.addWidget(self.items, 3)
        row = QHBoxLayout()
        for button in (self.retry_button, self.ignore_button, self.open_button, self.rule_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(heading("Error groups"))
        layout.addWidget(self.groups, 2)
        group_row = QHBoxLayout()
        for button in (self.diagnose_button, self.group_retry_button, self.resolve_button):
            group_row.addWidget(button)
        group_row.addStretch(1)
        layout.addLayout(group_row)
        layout.addWidget(self.answer)

        self._reload = QTimer(self, singleShot=True, interval=RELOAD_MS)
        self._reload.timeout.connect(self.load)
        link.status.connect(self._status_changed)
        self._groups: dict[int, dict[str, Any]] = {}
        self._selection_changed()

    # -- loading -----------------------------------------------------------------------------

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.load()

    def _status_changed(self, _status: dict[str, Any]) -> None:
        if self.isVisible() and not self._reload.isActive():
            self._reload.start()

    def load(self) -> None:
        self.link.fire(
            "issues",
            {"ignored": self.show_ignored.isChecked()},
            on_result=self.show_issues,
            on_error=lambda message: self.summary.setText(f"Cannot list the issues: {message}"),
        )

    def show_issues(self, data: dict[str, Any]) -> None:
        issues = data.get("issues") or []
        self.items.clear()
        for issue in issues:
            what = CATEGORY_TITLES.get(issue["category"], issue["category"])
            item = QTreeWidgetItem([f"{what} ({issue['kind']})", issue["path"], issue["reason"]])
            item.setData(0, ISSUE_ROLE, issue)
            tip = issue["root"]
            if issue["category"] == "error":
                tip += f" · attempt {issue['attempts']}"
                if issue.get("next_retry"):
                    wait = max(0, int(issue["next_retry"] - time.time()))
                    tip += f" · next retry in {wait} s"
            item.setToolTip(1, tip)
            self.items.addTopLevelItem(item)
        for column in range(2):
            self.items.resizeColumnToContents(column)
        self.groups.clear()
        self._groups = {g["id"]: g for g in data.get("groups") or []}
        for g in self._groups.values():
            item = QTreeWidgetItem(
                [
                    str(g["id"]),
                    g["state"].replace("_", " "),
                    f"{g['kind']} / {g['operation']}",
                    str(g["count"]),
                    str(g["open_files"]),
                    g["message"],
                ]
            )
            item.setData(0, ISSUE_ROLE, g)
            item.setToolTip(5, g["example"])
            self.groups.addTopLevelItem(item)
        for column in range(5):
            self.groups.resizeColumnToContents(column)
        counts = data.get("counts") or {}
        if not issues:
            self.summary.setText("Everything is in the hub.")
        else:
            parts = [f"{n} {CATEGORY_TITLES.get(c, c).lower()}" for c, n in sorted(counts.items())]
            more = f" (the first {len(issues)} shown)" if data.get("truncated") else ""
            self.summary.setText(", ".join(parts) + more)
        self._selection_changed()
        self.loaded.emit()

    # -- per item ----------------------------------------------------------------------------

    def selected_issue(self) -> dict[str, Any] | None:
        items = self.items.selectedItems()
        return items[0].data(0, ISSUE_ROLE) if items else None

    def selected_group(self) -> dict[str, Any] | None:
        items = self.groups.selectedItems()
        return items[0].data(0, ISSUE_ROLE) if items else None

    def _selection_changed(self) -> None:
        issue = self.selected_issue()
        self.retry_button.setEnabled(bool(issue and issue["category"] == "error"))
        self.ignore_button.setEnabled(bool(issue and issue["category"] in ("error", "skipped")))
        self.open_button.setEnabled(issue is not None)
        self.rule_button.setEnabled(bool(issue and issue.get("rule_file")))
        group = self.selected_group()
        self.diagnose_button.setEnabled(group is not None)
        self.group_retry_button.setEnabled(bool(group and group["open_files"]))
        self.resolve_button.setEnabled(bool(group and group["state"] == "open"))
        if group is not None and group.get("diagnosis"):
            self.answer.setMarkdown(group["diagnosis"])

    def _retry(self) -> None:
        issue = self.selected_issue()
        if issue is None:
            return
        params: dict[str, Any] = {"root": issue["root"]}
        if issue.get("group") is not None:
            params = {"group": issue["group"]}
        self.link.fire("issues.retry", params, on_result=lambda _r: self.load())

    def _ignore(self) -> None:
        issue = self.selected_issue()
        if issue is None:
            return
        path = str(Path(issue["root"]) / issue["path"])
        self.link.fire(
            "issues.ignore",
            {"path": path},
            on_result=lambda r: self.summary.setText(f"Added {r['rule']} to {r['file']}."),
        )

    def folder_of(self, issue: dict[str, Any]) -> str:
        return str((Path(issue["root"]) / issue["path"]).parent)

    def _open_folder(self) -> None:
        issue = self.selected_issue()
        if issue is not None:
            open_location(self.folder_of(issue))

    def _show_rule(self) -> None:
        issue = self.selected_issue()
        if issue is None or not issue.get("rule_file"):
            return
        self.answer.setPlainText(f"{issue['path']} is excluded by {issue['rule']!r}")
        if issue["rule_file"] != "(built-in)":
            open_location(str(Path(issue["root"]) / issue["rule_file"]))

    # -- per group ---------------------------------------------------------------------------

    def _diagnose(self) -> None:
        group = self.selected_group()
        if group is None:
            return
        self.diagnose_button.setEnabled(False)
        self.answer.setPlainText("Asking EXAI (up to 30 s)…")

        def done(result: dict[str, Any]) -> None:
            if result.get("timed_out"):
                self._answered(result["message"])
            else:
                self.answer.setMarkdown(result["diagnosis"])
                self._answered(result["diagnosis"], markdown=True)
            self.load()

        self.link.fire(
            "issues.diagnose",
            {"group": group["id"]},
            on_result=done,
            on_error=lambda message: self._answered(f"No diagnosis: {message}"),
            timeout=45.0,
        )

    def _answered(self, text: str, *, markdown: bool = False) -> None:
        if not markdown:
            self.answer.setPlainText(text)
        self.diagnose_button.setEnabled(self.selected_group() is not None)
        self.diagnosed.emit(text)

    def _retry_group(self) -> None:
        group = self.selected_group()
        if group is not None:
            self.link.fire("issues.retry", {"group": group["id"]}, on_result=lambda _r: self.load())

    def _resolve(self) -> None:
        group = self.selected_group()
        if group is not None:
            self.link.fire(
                "issues.resolve", {"group": group["id"]}, on_result=lambda _r: self.load()
            )
