"""Versions and hub links of this device's own files, for the Activity list.

The agent's ``hub.versions`` and ``hub.link`` take ``DEVICE:PATH``; an Activity row knows
only the file's path here, so this device's id is asked once of ``hub.devices``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import fmt
from gui.agent_link import AgentLink
from gui.widgets import close_on_escape_and_ctrl_w, muted

NOT_IN_HUB = "This device has no files in the hub yet."


def link_copied(result: dict[str, Any]) -> str:
    """Copies a ``hub.link`` answer's link and says what it is."""
    link = str(result.get("link"))
    QGuiApplication.clipboard().setText(link)
    if link.startswith("file:"):
        return "Copied the file's place in the local hub (a file:// link)."
    days = int(result.get("link_ttl_seconds") or 0) // 86400
    return f"Link copied: anyone with it can download the file for {days} days."


class OwnFileActions:
    def __init__(self, link: AgentLink, parent: QWidget, say: Callable[[str], None]) -> None:
        self.link = link
        self.parent = parent
        self.say = say
        self._device: str | None = None
        self.dialog: VersionsDialog | None = None
        """The last versions dialog shown (kept so that it is not collected)."""

    def show_versions(self, path: str) -> None:
        def show(result: dict[str, Any]) -> None:
            self.dialog = VersionsDialog(self.parent, path, result.get("versions") or [])
            self.dialog.show()

        self._with_source(path, lambda s: self._call("hub.versions", {"source": s}, show))

    def copy_link(self, path: str) -> None:
        self._with_source(
            path,
            lambda s: self._call("hub.link", {"source": s}, lambda r: self.say(link_copied(r))),
        )

    def _call(self, method: str, params: dict[str, Any], then: Callable[[Any], None]) -> None:
        self.link.fire(method, params, on_result=then, on_error=self.say)

    def _with_source(self, path: str, then: Callable[[str], None]) -> None:
        if self._device is not None:
            then(f"{self._device}:{path}")
            return

        def found(result: dict[str, Any]) -> None:
            mine = [d for d in result.get("devices") or [] if d.get("this_device")]
            if not mine:
                self.say(NOT_IN_HUB)
                return
            self._device = str(mine[0]["device_id"])
            then(f"{self._device}:{path}")

        self._call("hub.devices", {}, found)


class VersionsDialog(QDialog):
    """The versions the hub keeps of one file, newest first, and how to bring one back."""

    def __init__(self, parent: QWidget, path: str, versions: list[dict[str, Any]]) -> None:
        super().__init__(parent)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        self.setWindowTitle(f"Versions of {name}")
        self.resize(520, 320)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Version", "Saved", "Size", ""])
        self.tree.setRootIsDecorated(False)
        for v in reversed(versions):
            self.tree.addTopLevelItem(
                QTreeWidgetItem(
                    [
                        f"v{v.get('version')}",
                        fmt.moment(v.get("recorded_at"), seconds=True),
                        fmt.size(v.get("size")),
                        "deleted" if v.get("deleted") else "",
                    ]
                )
            )
        hint = muted(f'Bring one back with: hubsync restore "{path}" --version N')
        hint.setWordWrap(True)
        hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(hint)
        layout.addWidget(buttons)
        close_on_escape_and_ctrl_w(self)
