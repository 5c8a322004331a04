"""Drag-and-drop window: a one-off upload of dropped files or folders to the hub.

Nothing dropped here is mirrored; the agent uploads it once and answers with a
link (a signed URL on Supabase, a file path on the local hub) to copy.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.control.payloads import UploadEvent, UploadPathsAnswer, UploadPathsParams
from gui import fmt
from gui.agent_link import AgentLink
from gui.exai_dialog import open_exai_dialog
from gui.state import AgentState
from gui.widgets import FRACTION_ROLE, ProgressDelegate, close_on_escape_and_ctrl_w, muted

LINK_LIFETIMES = (
    ("1 hour", 3600),
    ("1 day", 86400),
    ("7 days", 7 * 86400),
    ("30 days", 30 * 86400),
)
COL_NAME, COL_PROGRESS, COL_ACTION = 0, 1, 2
UPLOAD_CALL_TIMEOUT = 24 * 3600.0
"""``upload_paths`` answers when every file is in the hub; progress comes as events."""


def unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be uploaded, in words for the user; ``None`` if it can.

    Only cheap checks (stat and access) so a drop never blocks the window; the
    agent checks again as it reads.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return "it no longer exists (or is a broken link)"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc.__class__.__name__})"
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            return "the folder cannot be opened (permission denied)"
        return None
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file (a device, socket or pipe)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


class DropWindow(QWidget):
    def __init__(self, state: AgentState, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.link = link
        self.setWindowTitle("HubSync — Upload files")
        close_on_escape_and_ctrl_w(self)
        self.setAcceptDrops(True)
        self.resize(620, 420)
        self._rows: dict[str, QTreeWidgetItem] = {}
        self._inside: dict[str, int] = {}
        """Dropped folders → how many of their files have rows (listed under the folder)."""
        """Rows by path: each dropped item, and each file of a dropped folder."""

        self.zone = QLabel("Drop files or folders here\nto upload them to the hub once")
        self.zone.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.zone.setMinimumHeight(110)
        self.zone.setFrameShape(QFrame.Shape.StyledPanel)
        self.zone.setStyleSheet(
            "QLabel { border: 2px dashed palette(mid); border-radius: 10px; font-size: 14px; }"
        )
        self.choose = QPushButton("Choose files…")
        self.choose.clicked.connect(self._choose)
        self.lifetime = QComboBox()
        for label, seconds in LINK_LIFETIMES:
            self.lifetime.addItem(f"Links valid for {label}", seconds)
        self.lifetime.setCurrentIndex(2)
        self.lifetime.setToolTip(
            "Lifetime of signed links (on a local hub the link is a file path)"
        )
        self.local_links = muted("Links are file paths on this computer (local hub)")
        self.local_links.setWordWrap(False)
        controls = QHBoxLayout()
        controls.addWidget(self.choose)
        controls.addStretch(1)
        controls.addWidget(self.lifetime)
        controls.addWidget(self.local_links)

        self.items = QTreeWidget()
        self.items.setHeaderLabels(["Item", "Progress", ""])
        self.items.setRootIsDecorated(False)
        self.items.setItemDelegateForColumn(COL_PROGRESS, ProgressDelegate(self.items))
        header = self.items.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_PROGRESS, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COL_ACTION, QHeaderView.ResizeMode.ResizeToContents)
        self.items.setColumnWidth(COL_PROGRESS, 220)  # the action buttons are never clipped
        self.message = muted()

        layout = QVBoxLayout(self)
        layout.addWidget(self.zone)
        layout.addLayout(controls)
        layout.addWidget(self.items, 1)
        layout.addWidget(self.message)
        state.upload_changed.connect(self._on_progress)
        state.changed.connect(self._show_link_kind)
        self._show_link_kind()

    def _show_link_kind(self) -> None:
        """Signed links (with a lifetime) come from a Supabase hub; a local hub's link is
        a file path that never expires, so no lifetime is offered for it."""
        status = self.state.status
        signed = status is not None and "supabase" in (status.get("hubs") or {})
        self.lifetime.setVisible(signed)
        self.local_links.setVisible(not signed and status is not None)

    # -- dropping ------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.upload(paths)

    def _choose(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Upload to the hub", str(Path.home()))
        if files:
            self.upload([Path(f) for f in files])

    def upload(self, paths: list[Path]) -> None:
        """Reject what cannot be read, hand the rest to the agent."""
        readable: list[str] = []
        for path in paths:
            reason = unreadable_reason(path)
            if reason is None:
                readable.append(str(path.absolute()))
            else:
                self._rejected_row(str(path), reason)
        if not readable:
            if len(paths) > 1:
                self.message.setText(
                    "Nothing was uploaded: none of these items can be read (see why above)."
                )
            return
        if not self.state.connected:
            for item in readable:
                self._rejected_row(item, "the agent is not running; try again in a moment")
            return
        self.message.setText(f"Uploading {len(readable)} item{'s' if len(readable) > 1 else ''}…")
        for item in readable:
            row = self._row(item, Path(item).name + ("/" if Path(item).is_dir() else ""))
            if Path(item).is_dir():
                self._inside[item] = 0
            row.setText(COL_PROGRESS, "Waiting")
            row.setData(COL_PROGRESS, FRACTION_ROLE, 0.0)
        params: UploadPathsParams = {
            "paths": readable,
            "link_ttl_seconds": int(self.lifetime.currentData()),
        }
        self.link.fire(
            "upload_paths",
            params,
            on_result=lambda r: self._finished(readable, r),
            on_error=lambda msg: self._failed(readable, msg),
            timeout=UPLOAD_CALL_TIMEOUT,
        )

    def _finished(self, dropped: list[str], result: UploadPathsAnswer) -> None:
        """``upload_paths`` answers once every file is done: one item per file."""
        items = [i for i in result.get("items") or [] if isinstance(i, dict)]
        for item in items:
            self.state.apply_upload(item)
        for top in dropped:
            inside = [
                i
                for i in items
                if i.get("path") != top and str(i.get("path", "")).startswith(top.rstrip("/") + "/")
            ]
            if inside:  # a folder: its files have rows of their own
                failed = sum(1 for i in inside if not i.get("ok"))
                row = self._rows[top]
                row.setData(COL_PROGRESS, FRACTION_ROLE, 1.0)
                row.setText(
                    COL_PROGRESS,
                    f"Done · {len(inside)} files" + (f", {failed} failed" if failed else ""),
                )
        self._all_done_message()

    def _failed(self, paths: list[str], message: str) -> None:
        for path in paths:
            row = self._rows.pop(path, None)
            if row is not None:
                self.items.takeTopLevelItem(self.items.indexOfTopLevelItem(row))
            self._rejected_row(path, f"the agent could not upload it: {message}")

    # -- rows ----------------------------------------------------------------------------

    def _row(self, path: str, name: str) -> QTreeWidgetItem:
        row = self._rows.get(path)
        if row is None:
            row = QTreeWidgetItem([name, "", ""])
            row.setToolTip(COL_NAME, path)
            folder = next((f for f in self._inside if path.startswith(f.rstrip("/") + "/")), None)
            if folder is None or folder not in self._rows:
                self.items.insertTopLevelItem(0, row)  # the newest drop on top
            else:  # a dropped folder's files under it, in the order they come
                at = self.items.indexOfTopLevelItem(self._rows[folder]) + 1 + self._inside[folder]
                self._inside[folder] += 1
                self.items.insertTopLevelItem(at, row)
            self._rows[path] = row
        return row

    def _rejected_row(self, path: str, reason: str) -> QTreeWidgetItem:
        """One full-width row: the name and, in words, why it was not uploaded."""
        name = Path(path).name or path
        row = QTreeWidgetItem([f"✕  {name} — not uploaded: {reason}"])
        row.setData(COL_NAME, Qt.ItemDataRole.UserRole, reason)
        row.setToolTip(COL_NAME, path)
        row.setForeground(COL_NAME, QColor("#d64541"))
        self.items.insertTopLevelItem(0, row)
        row.setFirstColumnSpanned(True)
        self.message.setText(f"“{name}” cannot be uploaded: {reason}.")
        return row

    def rejected(self) -> dict[str, str]:
        """Rejected items' names and reasons, as shown."""
        found = {}
        for i in range(self.items.topLevelItemCount()):
            row = self.items.topLevelItem(i)
            reason = row.data(COL_NAME, Qt.ItemDataRole.UserRole) if row is not None else None
            if row is not None and reason:
                found[Path(row.toolTip(COL_NAME)).name] = str(reason)
        return found

    def _on_progress(self, path: str) -> None:
        """An ``upload`` event moved: ``{"path", "name", "state", "bytes_done", "bytes_total", ...}``."""
        data = self.state.uploads.get(path)
        if data is None or (
            path not in self._rows
            and not any(path.startswith(p.rstrip("/") + "/") for p in self._rows)
        ):
            return  # someone else's upload (another tray, the CLI)
        row = self._row(path, str(data.get("name") or Path(path).name))
        state = data.get("state", "hashing")
        done, total = int(data.get("bytes_done") or 0), int(data.get("bytes_total") or 0)
        if state == "done":
            row.setData(COL_PROGRESS, FRACTION_ROLE, 1.0)
            row.setText(
                COL_PROGRESS,
                f"Done · {fmt.size(data.get('size', total))}"
                + (" · already in the hub" if data.get("deduplicated") else ""),
            )
            if self.items.itemWidget(row, COL_ACTION) is None:
                self.items.setItemWidget(row, COL_ACTION, self._done_actions(data, path))
        elif state == "failed":
            row.setData(COL_PROGRESS, FRACTION_ROLE, None)
            reason = str(data.get("error") or "unknown error")
            row.setText(COL_PROGRESS, f"Failed: {reason}")
            row.setForeground(COL_PROGRESS, QColor("#d64541"))
            row.setToolTip(COL_PROGRESS, reason)
            self.message.setText(f"“{data.get('name') or Path(path).name}” failed: {reason}")
        elif state == "hashing":
            row.setData(COL_PROGRESS, FRACTION_ROLE, 0.0)
            row.setText(COL_PROGRESS, "Checking…")
        else:
            row.setData(COL_PROGRESS, FRACTION_ROLE, done / total if total else 0.0)
            row.setText(COL_PROGRESS, f"{fmt.size(done)} / {fmt.size(total)}")

    def _done_actions(self, data: UploadEvent, path: str) -> QWidget:
        """Copy link, and Ask EXAI… about the uploaded file."""
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._copy_button(data.get("link")))
        ask = QPushButton("Ask EXAI…")
        ask.setObjectName("ask_exai")
        key = data.get("key")
        source = f"user-files/{key}" if key else path
        ask.clicked.connect(lambda: open_exai_dialog(self, self.link, source=source))
        layout.addWidget(ask)
        return box

    def _copy_button(self, link: Any) -> QPushButton:
        """The agent's link: a signed URL (Supabase) or a ``file://`` URL (local hub)."""
        button = QPushButton("Copy link")
        if not link:
            button.setEnabled(False)
            button.setToolTip("The hub gave no link for this item")
            return button
        button.setToolTip(str(link))

        def copy() -> None:
            QGuiApplication.clipboard().setText(str(link))
            button.setText("Copied ✓")
            self.message.setText("Link copied to the clipboard.")

        button.clicked.connect(copy)
        return button

    def _all_done_message(self) -> None:
        uploads = self.state.uploads
        if any(p in uploads and uploads[p].get("state") == "done" for p in self._rows):
            self.message.setText("Done. Use “Copy link” to share an item.")

    def copy_buttons(self) -> list[QPushButton]:
        """The done rows' buttons, newest first (what a user would click)."""
        buttons: list[QPushButton] = []
        for i in range(self.items.topLevelItemCount()):
            row = self.items.topLevelItem(i)
            widget = self.items.itemWidget(row, COL_ACTION) if row is not None else None
            if widget is not None:
                buttons.extend(
                    b for b in widget.findChildren(QPushButton) if b.objectName() != "ask_exai"
                )
        return buttons
