"""EXAI result files on this computer: open, reveal in the file manager, and the list of
past results the agent keeps (``exai.results``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.control.client import AgentUnavailable
from agent.control.protocol import ControlError
from gui import fmt
from gui.agent_link import AgentLink, describe
from gui.widgets import muted

RESULTS_LIMIT = 100
CALL_TIMEOUT = 30.0
PATH_ROLE = Qt.ItemDataRole.UserRole + 1

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


NOT_OPENED = "Nothing on this desktop opens it (no file manager or launcher answered): it is at {}"
"""What to say when the desktop could not open a file or folder."""


def open_file(path: Path) -> bool:
    """Open ``path`` with the desktop's application for it; False when nothing did."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def reveal_in_folder(path: Path) -> bool:
    """Show ``path`` selected in the file manager (its folder, where that is all we can
    do); False when nothing did."""
    if sys.platform == "darwin":
        return bool(QProcess.startDetached("open", ["-R", str(path)])[0])
    if sys.platform == "win32":
        return bool(QProcess.startDetached("explorer", [f"/select,{path}"])[0])
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


class PastResults(QWidget):
    """The results folder's files, newest first; double-click opens one."""

    loaded = Signal(list)

    def __init__(self, link: AgentLink, spawn: Spawn, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self._spawn = spawn
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Result", "Tool", "File", "When", "Size"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, 5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemDoubleClicked.connect(lambda item, _column: open_file(self._path(item)))
        self.tree.itemSelectionChanged.connect(self._selected)
        self.note = muted("")
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(lambda: self._with_current(open_file))
        self.reveal_button = QPushButton("Reveal in folder")
        self.reveal_button.clicked.connect(lambda: self._with_current(reveal_in_folder))
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.load)
        buttons = QHBoxLayout()
        buttons.addWidget(self.note, 1)
        for button in (self.open_button, self.reveal_button, self.refresh_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._selected()

    def load(self) -> None:
        self._spawn(self._load())

    async def _load(self) -> None:
        try:
            results = await self.link.call(
                "exai.results", {"limit": RESULTS_LIMIT}, timeout=CALL_TIMEOUT
            )
        except (AgentUnavailable, ControlError) as exc:
            self.note.setText(f"Past results cannot be listed: {describe(exc)}")
            return
        self.tree.clear()
        for result in results:
            path = Path(str(result.get("path", "")))
            when = str(result.get("created", ""))[:19].replace("T", " ")
            item = QTreeWidgetItem(
                [
                    path.name,
                    str(result.get("tool", "")),
                    str(result.get("source", "")),
                    when,
                    fmt.size(result.get("size")),
                ]
            )
            item.setData(0, PATH_ROLE, str(path))
            item.setToolTip(0, str(path))
            self.tree.addTopLevelItem(item)
        count = len(results)
        self.note.setText(
            f"{count} result{'s' * (count != 1)} kept on this computer"
            if count
            else "No results yet."
        )
        self._selected()
        self.loaded.emit(results)

    @staticmethod
    def _path(item: QTreeWidgetItem) -> Path:
        return Path(str(item.data(0, PATH_ROLE)))

    def _with_current(self, action: Callable[[Path], bool]) -> None:
        item = self.tree.currentItem()
        if item is not None and not action(self._path(item)):
            self.note.setText(NOT_OPENED.format(self._path(item)))

    def _selected(self) -> None:
        chosen = self.tree.currentItem() is not None
        self.open_button.setEnabled(chosen)
        self.reveal_button.setEnabled(chosen)
