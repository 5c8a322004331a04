"""Settings: folders and their ignore patterns, account, EXAI, limits, cache, general.

Everything but the notification choices belongs to the agent and goes through the
control API. The password is sent once to ``sign_in`` and cleared from the form; the
EXAI token goes to ``set_secret`` (the agent keeps it in the keyring), never to config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from agent.control.client import AgentUnavailable
from agent.control.payloads import AccountAnswer, SettingsAnswer
from agent.control.protocol import ControlError
from gui.agent_link import AgentLink, describe
from gui.icon_choice import IconChoice
from gui.prefs import NOTIFY_KEYS, TrayPrefs
from gui.state import AgentState, RootView
from gui.widgets import close_on_escape_and_ctrl_w, heading, muted

MB = 1024 * 1024
ERROR_STYLE = "color: #d64541;"


def _spin(maximum: int, suffix: str, special: str | None = None) -> QSpinBox:
    box = QSpinBox()
    box.setRange(0, maximum)
    box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    return box


class SettingsDialog(QDialog):
    saved = Signal()
    """The agent accepted and stored the settings."""
    loaded = Signal()

    def __init__(
        self, state: AgentState, link: AgentLink, prefs: TrayPrefs, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.link = link
        self.prefs = prefs
        self.setWindowTitle("HubSync — Settings")
        close_on_escape_and_ctrl_w(self, escape=False)
        self.resize(620, 460)
        self.tabs = QTabWidget()
        self.agent_pages = [self._account_tab(), self._exai_tab(), self._limits_tab()]
        """Pages that show the agent's settings (config_get/config_set)."""
        self.tabs.addTab(self._folders_tab(), "Folders")
        for page, title in zip(
            self.agent_pages, ("Account", "EXAI", "Transfers && cache"), strict=True
        ):
            self.tabs.addTab(page, title)
        self.tabs.addTab(self._general_tab(), "General")
        self.message = muted()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close
        )
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.clicked.connect(self.save)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        state.changed.connect(self._refresh_roots)

    # -- tabs -----------------------------------------------------------------------------

    def _folders_tab(self) -> QWidget:
        page = QWidget()
        self.roots = QListWidget()
        self.roots.currentItemChanged.connect(self._root_selected)
        add = QPushButton("Add folder…")
        add.clicked.connect(self._add_root)
        self.remove_root = QPushButton("Remove")
        self.remove_root.clicked.connect(self._remove_root)
        self.pause_root = QPushButton("Pause")
        self.pause_root.clicked.connect(self._toggle_root)
        side = QVBoxLayout()
        for button in (add, self.remove_root, self.pause_root):
            side.addWidget(button)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.roots, 1)
        top.addLayout(side)
        self.ignore = QPlainTextEdit()
        self.ignore.setPlaceholderText(
            "One pattern per line, gitignore style, e.g.\n*.tmp\nnode_modules/"
        )
        self.save_ignore = QPushButton("Save patterns")
        self.save_ignore.clicked.connect(self._save_ignore)
        layout = QVBoxLayout(page)
        layout.addLayout(top, 1)
        layout.addWidget(heading("Ignore patterns of the selected folder"))
        layout.addWidget(self.ignore, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_ignore)
        layout.addLayout(row)
        return page

    def _account_tab(self) -> QWidget:
        page = QWidget()
        self.supabase_url = QLineEdit()
        self.supabase_url.setPlaceholderText("https://<project>.supabase.co (empty: local hub)")
        self.anon_key = QLineEdit()
        self.anon_key.setPlaceholderText("public anon key")
        self.email = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("used once to sign in, never stored")
        self.sign_in_button = QPushButton("Sign in")
        self.sign_in_button.clicked.connect(self._sign_in)
        self.sign_out_button = QPushButton("Sign out")
        self.sign_out_button.clicked.connect(self._sign_out)
        self.account_status = QLabel()
        self.account_status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sign_in_button)
        buttons.addWidget(self.sign_out_button)
        buttons.addStretch(1)
        form = QFormLayout(page)
        form.addRow("Supabase URL", self.supabase_url)
        form.addRow("Anon key", self.anon_key)
        form.addRow(heading("Sign in"))
        form.addRow("Email", self.email)
        form.addRow("Password", self.password)
        form.addRow(buttons)
        form.addRow(self.account_status)
        return page

    def _exai_tab(self) -> QWidget:
        page = QWidget()
        self.exai_host = QLineEdit()
        self.exai_port = _spin(65535, "")
        self.exai_token = QLineEdit()
        self.exai_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.exai_token_note = muted()
        self.forget_token = QPushButton("Forget token")
        self.forget_token.clicked.connect(self._forget_token)
        form = QFormLayout(page)
        form.addRow("Host", self.exai_host)
        form.addRow("Port", self.exai_port)
        form.addRow("Token", self.exai_token)
        form.addRow("", self.exai_token_note)
        form.addRow("", self.forget_token)
        return page

    def _limits_tab(self) -> QWidget:
        page = QWidget()
        self.upload_limit = _spin(10_000_000, " KB/s", "unlimited")
        self.download_limit = _spin(10_000_000, " KB/s", "unlimited")
        self.cache_size = _spin(1_000_000, " MB")
        self.cache_ttl = _spin(24 * 365, " h")
        form = QFormLayout(page)
        form.addRow(heading("Bandwidth"))
        form.addRow("Upload limit", self.upload_limit)
        form.addRow("Download limit", self.download_limit)
        form.addRow(heading("Cache"))
        form.addRow("Size limit", self.cache_size)
        form.addRow("Keep entries for", self.cache_ttl)
        return page

    def _general_tab(self) -> QWidget:
        page = QWidget()
        self.autostart = QCheckBox("Start HubSync when I log in")
        self._autostart_loaded = False
        self.notify_boxes = {key: QCheckBox(label) for key, label in NOTIFY_KEYS.items()}
        layout = QVBoxLayout(page)
        self.icon_choice = IconChoice()
        layout.addWidget(self.autostart)
        layout.addWidget(self.icon_choice)
        layout.addWidget(heading("Notify me about"))
        for box in self.notify_boxes.values():
            layout.addWidget(box)
        layout.addWidget(
            muted(
                "HubSync never notifies once per file; it stays quiet unless "
                "something needs you or you asked for it."
            )
        )
        layout.addStretch(1)
        return page

    # -- loading ---------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.load()

    def load(self) -> None:
        self.icon_choice.load(self.prefs)
        for key, box in self.notify_boxes.items():
            box.setChecked(self.prefs.notify(key))
        self._refresh_roots()
        if "config_get" not in self.link.methods and self.link.connected:
            for page in self.agent_pages:
                page.setEnabled(False)
            self.autostart.setEnabled(False)
            self._note(
                "This agent does not offer its settings over the control API yet "
                "(config_get/config_set); use `hubsync config` or config.toml meanwhile."
            )
            self.loaded.emit()
            return
        for page in self.agent_pages:
            page.setEnabled(True)
        self.autostart.setEnabled(True)
        self.link.fire("config_get", on_result=self._fill, on_error=self._show_error)

    def _fill(self, result: SettingsAnswer) -> None:
        config = result.get("config") or {}
        supabase, exai = config.get("supabase") or {}, config.get("exai") or {}
        agent, cache = config.get("agent") or {}, config.get("cache") or {}
        self.supabase_url.setText(str(supabase.get("url", "")))
        self.anon_key.setText(str(supabase.get("anon_key", "")))
        self.exai_host.setText(str(exai.get("host", "")))
        self.exai_port.setValue(int(exai.get("port") or 0))
        self.upload_limit.setValue(int(agent.get("upload_limit_kbps") or 0))
        self.download_limit.setValue(int(agent.get("download_limit_kbps") or 0))
        self.cache_size.setValue(int(cache.get("size_limit_bytes") or 0) // MB)
        self.cache_ttl.setValue(int(cache.get("ttl_seconds") or 0) // 3600)
        self._autostart_loaded = bool(result.get("autostart"))
        self.autostart.setChecked(self._autostart_loaded)
        secrets = result.get("secrets") or {}
        token_set, from_env = bool(secrets.get("exai_token")), bool(secrets.get("exai_token_env"))
        self.exai_token.clear()
        self.exai_token.setPlaceholderText(
            "set by EXAI_WS_TOKEN"
            if from_env
            else "stored in the keyring"
            if token_set
            else "not set"
        )
        self.exai_token_note.setText(
            "The agent uses the token in its EXAI_WS_TOKEN environment variable; one stored "
            "here is used only without it."
            if from_env
            else "A token is stored in the system keyring; type a new one to replace it."
            if token_set
            else "The token is kept in the system keyring, never in the config file."
        )
        self.forget_token.setEnabled(token_set)
        self._show_account(result.get("account"))
        self.loaded.emit()

    def _show_account(self, account: AccountAnswer | None, error: str | None = None) -> None:
        user = account.get("user") if account else None
        self.sign_out_button.setEnabled(bool(user))
        if error:
            self.account_status.setStyleSheet(ERROR_STYLE)
            self.account_status.setText(f"Sign-in failed: {error}")
        elif user:
            self.account_status.setStyleSheet("")
            self.account_status.setText(f"Signed in as {user}")
            self.email.setText(str(user))
        else:
            self.account_status.setStyleSheet("")
            self.account_status.setText("Not signed in: files go to the local hub.")

    def _refresh_roots(self) -> None:
        if not self.isVisible():
            return
        current = self.roots.currentItem()
        selected = current.data(Qt.ItemDataRole.UserRole) if current else None
        self.roots.blockSignals(True)
        self.roots.clear()
        for root in self.state.roots():
            label = root.path if root.state == "ok" else f"{root.path}  ({root.state})"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, root.path)
            item.setToolTip(root.reason)
            self.roots.addItem(item)
            if root.path == selected:
                self.roots.setCurrentItem(item)
        self.roots.blockSignals(False)
        self._root_selected()

    def _root(self) -> RootView | None:
        item = self.roots.currentItem()
        if item is None:
            return None
        path = item.data(Qt.ItemDataRole.UserRole)
        return next((r for r in self.state.roots() if r.path == path), None)

    def _ignore_patterns(self, path: str) -> list[str]:
        status = self.state.status
        roots = (status.get("roots") or []) if status else []
        raw = next((r for r in roots if r.get("path") == path), None)
        return [str(p) for p in (raw.get("ignore") or [])] if raw else []

    def _root_selected(self) -> None:
        root = self._root()
        editable = root is not None and "set_ignore" in self.link.methods
        self.remove_root.setEnabled(root is not None)
        self.pause_root.setEnabled(root is not None)
        self.ignore.setEnabled(editable)
        self.save_ignore.setEnabled(editable)
        if root is None:
            self.ignore.clear()
            return
        self.pause_root.setText("Resume" if root.paused else "Pause")
        if not editable:
            self.ignore.setPlaceholderText(
                "This agent does not offer ignore-pattern editing yet (set_ignore); "
                "edit the folder's .hubsyncignore instead."
            )
        text = "\n".join(self._ignore_patterns(root.path))
        if self.ignore.toPlainText() != text and not self.ignore.hasFocus():
            self.ignore.setPlainText(text)

    # -- actions ---------------------------------------------------------------------------

    def _show_error(self, message: str) -> None:
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(message)

    def _note(self, message: str) -> None:
        self.message.setStyleSheet("")
        self.message.setText(message)

    def _add_root(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose a folder to keep in sync", str(Path.home())
        )
        if folder:
            self.add_root(folder)

    def add_root(self, folder: str) -> None:
        self.link.fire(
            "add_root",
            {"path": folder},
            on_result=lambda _: self._note(f"Syncing {folder}"),
            on_error=self._show_error,
        )

    def _remove_root(self) -> None:
        root = self._root()
        if root and self.confirm_remove(root.path):
            path = root.path
            self.link.fire(
                "remove_root",
                {"path": path},
                on_result=lambda _: self._note(
                    f"Stopped syncing {path} (files stay where they are)"
                ),
                on_error=self._show_error,
            )

    def confirm_remove(self, path: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Stop syncing this folder?",
            f"Stop syncing {path}?\n\nIts files stay where they are, on this computer and "
            "in the hub; HubSync just stops watching the folder.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _toggle_root(self) -> None:
        root = self._root()
        if root:
            self.link.fire(
                "resume" if root.paused else "pause", {"root": root.path}, on_error=self._show_error
            )

    def _save_ignore(self) -> None:
        root = self._root()
        if root:
            patterns = [p.strip() for p in self.ignore.toPlainText().splitlines() if p.strip()]
            self.link.fire(
                "set_ignore",
                {"path": root.path, "patterns": patterns},
                on_result=lambda _: self._note("Ignore patterns saved"),
                on_error=self._show_error,
            )

    def _sign_in(self) -> None:
        email, password = self.email.text().strip(), self.password.text()
        self.password.clear()
        if not email or not password:
            self._show_account(None, "enter your email and password")
            return
        self.account_status.setStyleSheet("")
        self.account_status.setText("Signing in…")
        self._note("")  # an earlier "Saved." is not about this

        async def run() -> None:
            try:
                await self.link.call(
                    "config_set", {"config": {"supabase": self._supabase_fields()}}
                )
                result: AccountAnswer = await self.link.call(
                    "sign_in", {"email": email, "password": password}
                )
            except (AgentUnavailable, ControlError) as exc:
                self._show_account(None, describe(exc))
            else:
                self._show_account(result)

        self.link.spawn(run())

    def _sign_out(self) -> None:
        self.link.fire(
            "sign_out", on_result=lambda _: self._show_account(None), on_error=self._show_error
        )

    def _forget_token(self) -> None:
        self.link.fire(
            "set_secret",
            {"name": "exai_token", "value": None},
            on_result=lambda _: self.load(),
            on_error=self._show_error,
        )

    def _supabase_fields(self) -> dict[str, Any]:
        return {"url": self.supabase_url.text().strip(), "anon_key": self.anon_key.text().strip()}

    def changes(self) -> dict[str, Any]:
        """The agent-side settings as the form shows them (config sections, as in config.toml)."""
        return {
            "supabase": self._supabase_fields(),
            "exai": {"host": self.exai_host.text().strip(), "port": self.exai_port.value()},
            "agent": {
                "upload_limit_kbps": self.upload_limit.value(),
                "download_limit_kbps": self.download_limit.value(),
            },
            "cache": {
                "size_limit_bytes": self.cache_size.value() * MB,
                "ttl_seconds": self.cache_ttl.value() * 3600,
            },
        }

    def save(self) -> None:
        self.icon_choice.save(self.prefs)
        for key, box in self.notify_boxes.items():
            self.prefs.set_notify(key, box.isChecked())
        if "config_set" not in self.link.methods:
            self._note("Notification choices saved; the agent does not take other settings yet.")
            self.saved.emit()
            return
        token = self.exai_token.text()
        self.exai_token.clear()

        params: dict[str, Any] = {"config": self.changes()}
        if self.autostart.isChecked() != self._autostart_loaded:
            params["autostart"] = self.autostart.isChecked()  # touch the OS entry only on a change

        async def run() -> None:
            try:
                await self.link.call("config_set", params)
                if token:
                    await self.link.call("set_secret", {"name": "exai_token", "value": token})
            except (AgentUnavailable, ControlError) as exc:
                self._show_error(f"Not saved: {describe(exc)}")
                return
            self._note("Saved.")
            self.saved.emit()
            self.load()

        self.link.spawn(run())
