"""The Hub window: what every device of this user has in the hub, and bringing it here.

Devices → folders → files (``hub.devices``, then ``hub.find`` per folder), a search
box (``hub.find``), the versions of the selected file (``hub.versions``), and Open,
Save as…, Pull folder…, Copy link, Ask EXAI… — all through the agent's control API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import fmt
from gui.agent_link import AgentLink
from gui.exai_dialog import open_exai_dialog
from gui.hub_transfer import DownloadPanel
from gui.hub_tree import (
    HubTree,
    entry_of,
    file_source,
    folder_name,
    folder_source,
)
from gui.own_files import link_copied
from gui.widgets import heading, muted

SEARCH_DELAY_MS = 300
"""Typing pauses this long before the search runs."""
GLOB = set("*?[")


def find_pattern(text: str) -> str:
    """What the user typed as a ``hub.find`` glob: plain words match anywhere in the name."""
    text = text.strip()
    return text if not text or GLOB & set(text) else f"*{text}*"


class HubWindow(QWidget):
    def __init__(self, link: AgentLink, open_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.open_dir = open_dir
        """Where Open puts files (one folder per content) before the desktop opens them."""
        self.setWindowTitle("HubSync — Hub")
        self.resize(900, 560)
        self._search_serial = 0
        self._versions_serial = 0

        self.search = QLineEdit()
        self.search.setPlaceholderText(
            "Find in the hub: a name, or a glob such as *.pdf or notes/*"
        )
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.run_search)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.run_search)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.refresh_button)

        self.tree = HubTree()
        self.tree.files_wanted.connect(self._load_folder)
        self.tree.currentItemChanged.connect(lambda *_: self._selected())

        self.details = muted("Choose a file to see its versions.")
        self.versions = QTreeWidget()
        self.versions.setHeaderLabels(["Version", "Recorded", "Size", ""])
        self.versions.setRootIsDecorated(False)
        self.versions.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.versions.currentItemChanged.connect(lambda *_: self._enable())
        self.open_button = QPushButton("Open")
        self.save_button = QPushButton("Save as…")
        self.pull_button = QPushButton("Pull folder…")
        self.copy_button = QPushButton("Copy link")
        self.exai_button = QPushButton("Ask EXAI…")
        self.open_button.clicked.connect(self.open_selected)
        self.save_button.clicked.connect(self._save_as)
        self.pull_button.clicked.connect(self._pull_folder)
        self.copy_button.clicked.connect(self.copy_link)
        self.exai_button.clicked.connect(self.ask_exai)
        actions = QHBoxLayout()
        for button in (self.open_button, self.save_button, self.copy_button, self.exai_button):
            actions.addWidget(button)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.details)
        side_layout.addWidget(heading("Versions"))
        side_layout.addWidget(self.versions, 1)
        side_layout.addLayout(actions)
        browse = QWidget()
        browse_layout = QVBoxLayout(browse)
        browse_layout.setContentsMargins(0, 0, 0, 0)
        browse_layout.addWidget(self.tree, 1)
        browse_layout.addWidget(self.pull_button, 0, Qt.AlignmentFlag.AlignLeft)

        split = QSplitter()
        split.addWidget(browse)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        self.download = DownloadPanel(link)
        self.download.finished.connect(self._download_finished)
        self.message = muted()
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(self.download)
        layout.addWidget(self.message)
        self._enable()

    # -- browsing and searching ------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.run_search()

    def run_search(self) -> None:
        """The search box's matches, or (empty box) every device and its folders."""
        self._search_timer.stop()
        self._search_serial += 1
        serial = self._search_serial
        pattern = find_pattern(self.search.text())
        if not pattern:
            self.link.fire(
                "hub.devices",
                on_result=lambda r: self._browse(serial, r),
                on_error=self._say,
            )
            return
        self.message.setText(f"Searching for {pattern}…")
        self.link.fire(
            "hub.find",
            {"pattern": pattern},
            on_result=lambda r: self._found(serial, pattern, r),
            on_error=self._say,
        )

    def _browse(self, serial: int, result: dict[str, Any]) -> None:
        if serial != self._search_serial:
            return  # the user typed on meanwhile
        devices = result.get("devices") or []
        self.tree.show_devices(devices)
        hubs = sorted({str(d.get("hub")) for d in devices})
        self.message.setText(
            f"{len(devices)} device{'s' if len(devices) != 1 else ''} in the "
            f"{' and '.join(hubs) or 'no'} hub{'s' if len(hubs) > 1 else ''}."
        )
        self._selected()

    def _found(self, serial: int, pattern: str, result: dict[str, Any]) -> None:
        if serial != self._search_serial:
            return
        files = result.get("files") or []
        self.tree.show_found(files)
        self.message.setText(
            f"{len(files)} file{'s' if len(files) != 1 else ''} match {pattern}."
            if files
            else f"Nothing in the hub matches {pattern}."
        )
        self._selected()

    def _load_folder(self, row: QTreeWidgetItem) -> None:
        entry, serial = entry_of(row), self._search_serial

        def fill(result: dict[str, Any]) -> None:
            if serial == self._search_serial:  # else the row is gone with the old tree
                self.tree.fill_folder(row, result.get("files") or [])

        self.link.fire(
            "hub.find",
            {"device": entry["device_id"], "folder": entry["folder"]},
            on_result=fill,
            on_error=self._say,
        )

    # -- the selection ---------------------------------------------------------------------

    def _selected(self) -> None:
        entry = self.tree.selected_entry()
        self.versions.clear()
        self._versions_serial += 1
        kind = entry.get("kind")
        if kind == "file":
            self.details.setText(
                f"<b>{entry.get('path')}</b><br>{entry.get('device')} · {entry.get('folder')}"
                f" · {entry.get('hub')} hub<br>{fmt.size(entry.get('size'))} · "
                f"modified {fmt.moment(entry.get('modified'))}"
            )
            serial = self._versions_serial
            self.link.fire(
                "hub.versions",
                {"source": file_source(entry)},
                on_result=lambda r: self._show_versions(serial, r),
                on_error=self._say,
            )
        elif kind == "folder":
            self.details.setText(
                f"<b>{folder_name(str(entry.get('folder')))}</b><br>{entry.get('device')} · "
                f"{entry.get('folder')} · {entry.get('hub')} hub"
            )
        else:
            self.details.setText("Choose a file to see its versions.")
        self._enable()

    def _show_versions(self, serial: int, result: dict[str, Any]) -> None:
        if serial != self._versions_serial:
            return
        rows = []
        for v in reversed(result.get("versions") or []):  # newest first
            row = QTreeWidgetItem(
                [
                    f"v{v.get('version')}",
                    fmt.moment(v.get("recorded_at"), seconds=True),
                    fmt.size(v.get("size")),
                    "deleted" if v.get("deleted") else "",
                ]
            )
            row.setData(0, Qt.ItemDataRole.UserRole, v)
            rows.append(row)
        self.versions.addTopLevelItems(rows)
        if rows:
            self.versions.setCurrentItem(rows[0])
        self._enable()

    def chosen_version(self) -> dict[str, Any]:
        row = self.versions.currentItem()
        data = row.data(0, Qt.ItemDataRole.UserRole) if row is not None else None
        return dict(data) if isinstance(data, dict) else {}

    def _at(self) -> dict[str, Any]:
        """``at`` for an older version chosen in the list; nothing for the newest."""
        version = self.chosen_version()
        newest = self.versions.topLevelItem(0)
        if not version or newest is None or newest is self.versions.currentItem():
            return {}
        return {"at": version["recorded_at"]}

    def _folder_entry(self) -> dict[str, Any]:
        entry = self.tree.selected_entry()
        return entry if entry.get("kind") in ("folder", "file") else {}

    def _enable(self) -> None:
        entry = self.tree.selected_entry()
        is_file = entry.get("kind") == "file" and not self.chosen_version().get("deleted")
        idle = not self.download.busy
        for button in (self.open_button, self.save_button):
            button.setEnabled(is_file and idle)
        self.copy_button.setEnabled(is_file)
        self.exai_button.setEnabled(is_file)
        self.pull_button.setEnabled(bool(self._folder_entry()) and idle)

    # -- actions ---------------------------------------------------------------------------

    def open_selected(self) -> None:
        """Bring the file here through the cache, then let the desktop open it."""
        entry = self.tree.selected_entry()
        sha = str(self.chosen_version().get("sha256") or entry.get("sha256") or "")
        where = self.open_dir / (sha[:16] or "file")
        name = Path(str(entry["path"])).name

        def opened(result: dict[str, Any]) -> str:
            written = str(result.get("written_to"))
            if QDesktopServices.openUrl(QUrl.fromLocalFile(written)):
                return f"Opened {name} ({_served_from(result)})."
            return (
                f"{name} is here, at {written}, but this desktop has no application "
                "to open it with."
            )

        self._download("hub.get", {"to": str(where)}, f"Opening {name}", opened)

    def _save_as(self) -> None:
        name = Path(str(self.tree.selected_entry().get("path", ""))).name
        folder = QFileDialog.getExistingDirectory(self, f"Save “{name}” into…", str(Path.home()))
        if folder:
            self.save_into(Path(folder))

    def save_into(self, folder: Path) -> None:
        """Save the chosen version into ``folder`` (a different file there is kept too)."""
        name = Path(str(self.tree.selected_entry().get("path", ""))).name

        def saved(result: dict[str, Any]) -> str:
            written = result.get("written_to")
            if result.get("kept_both"):
                return f"A different {name} was already there: this one is {written}."
            return f"Saved {written} ({_served_from(result)})."

        self._download("hub.get", {"to": str(folder)}, f"Saving {name}", saved)

    def _download(
        self,
        method: str,
        params: dict[str, Any],
        what: str,
        done: Callable[[dict[str, Any]], str],
    ) -> None:
        entry = self.tree.selected_entry()
        params = {"source": file_source(entry), **self._at(), **params}
        self.download.start(method, params, what, done)
        self._enable()

    def _pull_folder(self) -> None:
        entry = self._folder_entry()
        name = folder_name(str(entry.get("folder", "")))
        parent = QFileDialog.getExistingDirectory(
            self, f"Pull “{name}” into… (a folder “{name}” is made there)", str(Path.home())
        )
        if parent:
            self.pull_into(Path(parent) / name)

    def pull_into(self, target: Path) -> None:
        """Pull the selected folder (or the selected file's folder) into ``target``."""
        entry = self._folder_entry()
        name = folder_name(str(entry.get("folder", "")))

        def pulled(result: dict[str, Any]) -> str:
            kept = result.get("kept_both") or []
            return (
                f"Pulled {fmt.count(result.get('files'))} files of {name} into {target}"
                f" ({fmt.count(result.get('cache_hits'))} from the cache)"
                + (f"; {len(kept)} different local files kept beside them." if kept else ".")
            )

        params = {"source": folder_source(entry), "to": str(target)}
        self.download.start("hub.pull", params, f"Pulling {name}", pulled)
        self._enable()

    def copy_link(self) -> None:
        entry = self.tree.selected_entry()

        self.link.fire(
            "hub.link",
            {"source": file_source(entry), **self._at()},
            on_result=lambda result: self._say(link_copied(result)),
            on_error=self._say,
        )

    def ask_exai(self) -> None:
        """The EXAI dialog for this hub file (EXAI reads it from the hub by its key)."""
        entry = self.tree.selected_entry()

        def ask(result: dict[str, Any]) -> None:
            open_exai_dialog(self, self.link, source=str(result["ref"]))

        self.link.fire(
            "hub.link",
            {"source": file_source(entry), **self._at()},
            on_result=ask,
            on_error=self._say,
        )

    def _download_finished(self, line: str) -> None:
        self._say(line)
        self._enable()

    def _say(self, line: str) -> None:
        self.message.setText(line)


def _served_from(result: dict[str, Any]) -> str:
    source = result.get("source")
    if source == "cache":
        return "from the download cache"
    note = " — an offline copy" if result.get("offline_copy") else ""
    return f"from the {source} hub{note}"
