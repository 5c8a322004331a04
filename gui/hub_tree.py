"""The Hub window's tree: devices → folders → files, from ``hub.devices`` and ``hub.find``.

Each row keeps what the control API said about it (``ENTRY_ROLE``). A folder's files
are fetched when it is first expanded (``files_wanted``); a search shows its matches
grouped the same way, expanded.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QHeaderView,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from gui import fmt

ENTRY_ROLE = Qt.ItemDataRole.UserRole
COL_NAME, COL_SIZE, COL_MODIFIED = 0, 1, 2
LOADING = "Loading…"


def folder_source(entry: dict[str, Any]) -> str:
    """``DEVICE:FOLDER`` as ``hub.pull`` takes it (the device by its id)."""
    return f"{entry['device_id']}:{entry['folder']}"


def file_source(entry: dict[str, Any]) -> str:
    """``DEVICE:FOLDER/PATH`` as ``hub.get`` / ``hub.versions`` / ``hub.link`` take it."""
    return f"{entry['device_id']}:{str(entry['folder']).rstrip('/')}/{entry['path']}"


def folder_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


ICONS = {
    "device": QStyle.StandardPixmap.SP_ComputerIcon,
    "folder": QStyle.StandardPixmap.SP_DirIcon,
    "file": QStyle.StandardPixmap.SP_FileIcon,
}


def plural(n: Any, what: str) -> str:
    return f"{fmt.count(n)} {what}{'' if n == 1 else 's'}"


def _row(kind: str, entry: dict[str, Any], texts: list[str]) -> QTreeWidgetItem:
    item = QTreeWidgetItem(texts)
    item.setIcon(COL_NAME, QApplication.style().standardIcon(ICONS[kind]))
    item.setData(COL_NAME, ENTRY_ROLE, {**entry, "kind": kind})
    item.setTextAlignment(COL_SIZE, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def device_row(device: dict[str, Any]) -> QTreeWidgetItem:
    name = str(device.get("name") or str(device.get("device_id", ""))[:8])
    label = f"{name} (this device)" if device.get("this_device") else name
    hub = f"{device.get('hub', '')} hub"
    item = _row(
        "device",
        device,
        [
            f"{label}  ·  {hub}",
            fmt.size(device.get("bytes")),
            fmt.moment(device.get("last_seen")),
        ],
    )
    item.setToolTip(
        COL_NAME,
        f"{label} on the {hub}: {plural(device.get('files'), 'file')}; "
        f"last seen {fmt.moment(device.get('last_seen'))}",
    )
    item.setToolTip(COL_MODIFIED, "last seen")
    return item


def folder_row(device: dict[str, Any], folder: dict[str, Any], *, lazy: bool) -> QTreeWidgetItem:
    path = str(folder.get("path", ""))
    entry = {
        "hub": device.get("hub"),
        "device_id": device.get("device_id"),
        "device": device.get("name"),
        "folder": path,
        "files": folder.get("files"),
    }
    count = f"  ·  {plural(folder.get('files'), 'file')}" if folder.get("files") is not None else ""
    item = _row("folder", entry, [f"{folder_name(path)}{count}", fmt.size(folder.get("bytes")), ""])
    item.setToolTip(COL_NAME, path)
    if lazy:
        item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
    return item


def file_row(found: dict[str, Any]) -> QTreeWidgetItem:
    path = str(found.get("path", ""))
    item = _row(
        "file",
        found,
        [path, fmt.size(found.get("size")), fmt.moment(found.get("modified"))],
    )
    item.setToolTip(COL_NAME, f"{found.get('device')}: {found.get('folder')}/{path}")
    return item


class HubTree(QTreeWidget):
    files_wanted = Signal(QTreeWidgetItem)
    """A folder row was expanded and has no files yet: fetch them (``fill_folder``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Name", "Size", "Modified"])
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_SIZE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_MODIFIED, QHeaderView.ResizeMode.ResizeToContents)
        self.itemExpanded.connect(self._expanded)

    def show_devices(self, devices: list[dict[str, Any]]) -> None:
        """Browsing: every device with its folders; files come on expanding a folder."""
        self.clear()
        for device in devices:
            row = device_row(device)
            self.addTopLevelItem(row)
            for folder in device.get("folders") or []:
                row.addChild(folder_row(device, folder, lazy=True))
            row.setExpanded(True)

    def show_found(self, files: list[dict[str, Any]]) -> None:
        """A search's matches, grouped by device and folder, all expanded."""
        self.clear()
        devices: dict[tuple[str, str], QTreeWidgetItem] = {}
        folders: dict[tuple[str, str, str], QTreeWidgetItem] = {}
        for found in files:
            hub, device_id = str(found.get("hub")), str(found.get("device_id"))
            device = devices.get((hub, device_id))
            if device is None:
                device = device_row(
                    {"hub": hub, "device_id": device_id, "name": found.get("device")}
                )
                devices[(hub, device_id)] = device
                self.addTopLevelItem(device)
            folder_key = (hub, device_id, str(found.get("folder")))
            folder = folders.get(folder_key)
            if folder is None:
                info = {"path": found.get("folder")}
                owner = {"hub": hub, "device_id": device_id, "name": found.get("device")}
                folder = folders[folder_key] = folder_row(owner, info, lazy=False)
                device.addChild(folder)
            folder.addChild(file_row(found))
        self.expandAll()

    def fill_folder(self, folder: QTreeWidgetItem, files: list[dict[str, Any]]) -> None:
        folder.takeChildren()
        hub = entry_of(folder).get("hub")
        for found in sorted(files, key=lambda f: str(f.get("path", "")).lower()):
            if found.get("hub") == hub:
                folder.addChild(file_row(found))
        if folder.childCount() == 0:
            folder.setChildIndicatorPolicy(
                QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicatorWhenChildless
            )

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if entry_of(item).get("kind") == "folder" and item.childCount() == 0:
            item.addChild(QTreeWidgetItem([LOADING]))
            self.files_wanted.emit(item)

    def selected_entry(self) -> dict[str, Any]:
        """What the current row stands for (``kind``: device, folder or file); {} for none."""
        item = self.currentItem()
        return entry_of(item) if item is not None else {}

    def file_rows(self) -> list[QTreeWidgetItem]:
        """Every file row shown, top to bottom."""
        found: list[QTreeWidgetItem] = []

        def walk(item: QTreeWidgetItem) -> None:
            if entry_of(item).get("kind") == "file":
                found.append(item)
            for i in range(item.childCount()):
                child = item.child(i)
                if child is not None:
                    walk(child)

        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            if top is not None:
                walk(top)
        return found

    def folder_rows(self) -> list[QTreeWidgetItem]:
        rows = []
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            for j in range(top.childCount() if top is not None else 0):
                child = top.child(j) if top is not None else None
                if child is not None:
                    rows.append(child)
        return rows


def entry_of(item: QTreeWidgetItem) -> dict[str, Any]:
    data = item.data(COL_NAME, ENTRY_ROLE)
    return dict(data) if isinstance(data, dict) else {}
