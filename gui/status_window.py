"""The status window: what the agent is doing, what went wrong, and how healthy it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.control.payloads import PauseParams, ProgressEvent
from gui import fmt
from gui.activity_list import fill_activity
from gui.agent_link import ACTIVITY_LIMIT, AgentLink
from gui.exai_dialog import open_exai_dialog
from gui.exai_results import NOT_OPENED, open_file, reveal_in_folder
from gui.health_tab import HealthTab
from gui.held_banner import HeldBanner
from gui.icons import state_icon
from gui.own_files import OwnFileActions
from gui.state import AgentState
from gui.widgets import (
    FRACTION_ROLE,
    ProgressDelegate,
    close_on_escape_and_ctrl_w,
    heading,
    muted,
    table_tree,
)

QUEUE_SHOWN = 50
PAUSE_A_WHILE = 3600


class StatusWindow(QWidget):
    open_settings = Signal()
    open_hub = Signal()
    open_analytics = Signal()
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
        self.analytics_button = QPushButton("Analytics…")
        self.analytics_button.clicked.connect(self.open_analytics)
        header.addWidget(self.analytics_button, 0, Qt.AlignmentFlag.AlignTop)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_overview(), "Transfers")
        self.tabs.addTab(self._build_activity(), "Activity")
        self.tabs.addTab(self._build_errors(), "Errors")
        self.health = HealthTab(state)
        self.tabs.addTab(self.health, "Health")

        self.held = HeldBanner(link)
        self.first_run = self._build_first_run()

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(self._build_actions())
        layout.addWidget(self.held)
        layout.addWidget(self.first_run, 1)
        layout.addWidget(self.tabs, 1)

        self._activity_shown: int | None = None
        close_on_escape_and_ctrl_w(self)
        state.changed.connect(self.refresh)

    # -- construction --------------------------------------------------------------------

    def _build_actions(self) -> QHBoxLayout:
        """What people reach for first: pause (for a while or until resumed), open a
        synced folder, settings."""
        self.pause_button = QPushButton("Pause")
        self.pause_menu = QMenu(self)
        self.pause_menu.addAction("Pause for 1 hour", lambda: self._pause(PAUSE_A_WHILE))
        self.pause_menu.addAction("Pause until I resume", lambda: self._pause(None))
        self.pause_button.setMenu(self.pause_menu)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(lambda: self.link.fire("resume", {}))
        self.open_folder_button = QPushButton("Open folder")
        self.open_folder_menu = QMenu(self)
        self.open_folder_button.setMenu(self.open_folder_menu)
        self.settings_button = QPushButton("Settings…")
        self.settings_button.clicked.connect(self.open_settings)
        row = QHBoxLayout()
        for button in (self.pause_button, self.resume_button, self.open_folder_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.settings_button)
        return row

    def _pause(self, seconds: int | None) -> None:
        asked: PauseParams = {} if seconds is None else {"for_seconds": seconds}
        self.link.fire("pause", asked)

    def _refresh_actions(self) -> None:
        s = self.state
        self.pause_button.setVisible(not s.paused)
        self.resume_button.setVisible(s.paused)
        for button in (self.pause_button, self.resume_button):
            button.setEnabled(s.connected)
        folders = [r.path for r in s.roots()]
        if folders != [a.text() for a in self.open_folder_menu.actions()]:
            self.open_folder_menu.clear()
            for folder in folders:
                action = self.open_folder_menu.addAction(folder)
                action.triggered.connect(lambda _=False, f=folder: self._open_folder(f))
        self.open_folder_button.setEnabled(bool(folders))

    def _open_folder(self, folder: str) -> None:
        if not open_file(Path(folder)):
            self.first_run_note.setText(NOT_OPENED.format(folder))

    def _build_first_run(self) -> QWidget:
        """What a new user sees: no folder is mirrored yet, so say how to start."""
        page = QFrame()
        page.setObjectName("firstRun")
        title = heading("Choose a folder to keep in sync")
        text = QLabel(
            "HubSync keeps a copy of the folders you choose in your hub, and keeps it up to "
            "date as you work: every change is uploaded within seconds, each content only "
            "once, and earlier versions stay in the hub so you can bring a file back. "
            "Nothing leaves this computer until you add a folder."
        )
        text.setWordWrap(True)
        self.add_folder_button = QPushButton("Add a folder…")
        self.add_folder_button.setDefault(True)
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.first_run_note = muted()
        self.first_run_note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.add_folder_button)
        row.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(text)
        layout.addLayout(row)
        layout.addWidget(self.first_run_note)
        layout.addStretch(2)
        page.hide()
        return page

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose a folder to keep in sync", str(Path.home())
        )
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        self.first_run_note.setText(f"Adding {folder}…")
        self.link.fire(
            "add_root",
            {"path": folder},
            on_result=lambda _: self.first_run_note.setText(f"Syncing {folder}"),
            on_error=self.first_run_note.setText,
        )

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
        self.transfers = table_tree(["Now", "Step", "Progress"])
        self.transfers.setItemDelegateForColumn(2, ProgressDelegate(self.transfers))
        self.transfers.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        self.transfers.setColumnWidth(2, 220)
        self.queue_label = heading("Queue")
        self.queue = table_tree(["Waiting", "Size"])
        layout = QVBoxLayout(page)
        layout.addWidget(self.overall)
        layout.addLayout(figures)
        layout.addWidget(self.transfers, 3)
        layout.addWidget(self.queue_label)
        layout.addWidget(self.queue, 2)
        return page

    def _build_activity(self) -> QWidget:
        page = QWidget()
        self.activity = table_tree(["", "File", "What", "When"], stretch=1)
        self.activity.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.activity.customContextMenuRequested.connect(self._activity_menu)
        self.activity.itemDoubleClicked.connect(
            lambda item, _column: self._open(item, reveal=False)
        )
        self.ask_exai = QPushButton("Process with EXAI…")
        self.ask_exai.setToolTip("Ask EXAI about the selected file")
        self.ask_exai.clicked.connect(self._ask_exai)
        self.activity_note = muted()
        self.own_files = OwnFileActions(self.link, self, self.activity_note.setText)
        buttons = QHBoxLayout()
        buttons.addWidget(self.activity_note, 1)
        buttons.addWidget(self.ask_exai)
        layout = QVBoxLayout(page)
        layout.addWidget(self.activity, 1)
        layout.addLayout(buttons)
        return page

    @staticmethod
    def _full_path(item: QTreeWidgetItem | None) -> str:
        return str(item.data(1, Qt.ItemDataRole.UserRole) or "") if item is not None else ""

    def _ask_exai(self) -> None:
        source = self._full_path(self.activity.currentItem()) or None
        open_exai_dialog(self, self.link, source=source)

    def activity_actions(self, item: QTreeWidgetItem) -> QMenu:
        """The right-click menu of one Activity row."""
        path = self._full_path(item)
        menu = QMenu(self)
        menu.addAction("Open", lambda: self._open(item, reveal=False))
        menu.addAction("Show in folder", lambda: self._open(item, reveal=True))
        menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(path))
        menu.addAction("Versions…", lambda: self.own_files.show_versions(path))
        menu.addAction("Copy link", lambda: self.own_files.copy_link(path))
        ask = menu.addAction("Process with EXAI…", self._ask_exai)
        ask.setEnabled(self.state.exai_available)
        return menu

    def _activity_menu(self, at: QPoint) -> None:
        item = self.activity.itemAt(at)
        if item is not None and self._full_path(item):
            self.activity.setCurrentItem(item)
            self.activity_actions(item).popup(self.activity.viewport().mapToGlobal(at))

    def _open(self, item: QTreeWidgetItem, *, reveal: bool) -> None:
        if not self._full_path(item):
            return  # a burst's row: double-click expands it
        path = Path(self._full_path(item))
        if not path.exists() and not reveal:
            self.activity_note.setText(f"{path} is not there now (deleted or moved).")
        elif not (reveal_in_folder(path) if reveal else open_file(path)):
            self.activity_note.setText(NOT_OPENED.format(path))
        else:
            self.activity_note.setText("")

    def _build_errors(self) -> QWidget:
        page = QWidget()
        self.errors = table_tree(["File", "Reason", "Folder"], stretch=1)
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
            else "HubSync reconnects by itself as soon as the agent answers."
        )  # the summary above already says what is wrong: not the same sentence twice
        self.held.show_roots(s.held_roots(), connected=s.connected)
        self._refresh_actions()
        first_run = s.first_run()
        self.first_run.setVisible(first_run)
        self.tabs.setVisible(not first_run)
        self.add_folder_button.setEnabled(s.connected)
        self._refresh_overview(s.progress)
        if self._activity_shown != s.activity_version:
            self._activity_shown = s.activity_version
            self._refresh_activity()
        self._refresh_errors()
        self.health.refresh()

    def _refresh_overview(self, progress: ProgressEvent | None) -> None:
        s = self.state
        fraction = s.overall_fraction()
        self.overall.setValue(round((fraction or 0) * 1000))
        busy = progress is not None and s.busy()
        p: ProgressEvent | dict[str, Any] = progress if progress is not None else {}
        waiting = s.waiting_files()
        if fraction is not None:
            idle_text = fmt.percent(fraction)
        elif busy or s.tray_state() == "syncing":
            idle_text = "Looking for changes…" if not waiting else "Waiting to sync"
        else:
            idle_text = "Nothing to do"
        self.overall.setFormat(idle_text)
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
            for t in p.get("active") or ():
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
            if not p.get("active") and p.get("current"):
                # One small file among many: its name and its own size, not the pass's bytes.
                size = p.get("current_size")
                self.transfers.addTopLevelItem(
                    QTreeWidgetItem(
                        [
                            str(p.get("current")),
                            str(p.get("phase", "")),
                            fmt.NONE if size is None else fmt.size(size),
                        ]
                    )
                )
        self.queue_label.setText(
            f"Queue · {fmt.count(waiting)} file{'s' if waiting != 1 else ''} waiting"
            if waiting
            else "Queue · empty"
        )
        self.queue.clear()
        shown = s.waiting_sample()[:QUEUE_SHOWN]
        for path, size in shown:
            self.queue.addTopLevelItem(
                QTreeWidgetItem([path, "deleted" if size is None else fmt.size(size)])
            )
        if waiting > len(shown):
            self.queue.addTopLevelItem(
                QTreeWidgetItem([f"… and {fmt.count(waiting - len(shown))} more", ""])
            )

    def _refresh_activity(self) -> None:
        items = self.state.activity
        fill_activity(self.activity, items, capped=len(items) >= ACTIVITY_LIMIT)

    def _refresh_errors(self) -> None:
        errors = self.state.file_errors()
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
