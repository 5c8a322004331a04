"""The banner for deletions HubSync held: many files vanished from a folder at once.

Nothing is deleted in the hub until the user chooses: bring the files back
(restored from the hub), or delete them in the hub too, after a confirmation
that names some of them. Their versions stay in the hub either way.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.control.payloads import ApplyHeldParams, RootParams
from gui import fmt
from gui.agent_link import AgentLink
from gui.state import RootView


class HeldBanner(QFrame):
    """Shows the first folder with held deletions (and how many others there are)."""

    def __init__(self, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.setObjectName("heldBanner")
        self.setStyleSheet(
            "#heldBanner { background: #fff4ce; border: 1px solid #e0b100; border-radius: 4px; }"
            " #heldBanner QLabel { color: #3b2f00; }"
        )
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.bring_back = QPushButton("Bring them back")
        self.bring_back.setToolTip("Restore the files from the hub into the folder")
        self.apply = QPushButton("Delete in the hub too…")
        self.apply.setToolTip("The files' earlier versions stay in the hub")
        self.bring_back.clicked.connect(self._bring_back)
        self.apply.clicked.connect(self._apply)
        buttons = QVBoxLayout()
        buttons.addWidget(self.bring_back)
        buttons.addWidget(self.apply)
        layout = QHBoxLayout(self)
        layout.addWidget(QLabel("⚠"))
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)
        self._root: RootView | None = None
        self.hide()

    def show_roots(self, held: list[RootView], *, connected: bool) -> None:
        self._root = held[0] if held else None
        if self._root is None:
            self.hide()
            return
        r = self._root
        text = (
            f"<b>{fmt.count(r.held)} files were deleted from {r.path} at once.</b> "
            "That looks like an accident (an unplugged drive, a mistaken delete), so "
            "HubSync kept them in the hub. Nothing is deleted there until you choose."
        )
        there = r.state != "missing"
        if not there:
            text += "<br><i>The folder is not there now (is its drive plugged in?).</i>"
        elif r.answering:
            text += "<br><i>Working on your answer…</i>"
        if len(held) > 1:
            text += f"<br>{len(held) - 1} more folders have held deletions."
        self.text.setText(text)
        ready = connected and there and not r.answering
        self.bring_back.setEnabled(ready)
        self.apply.setEnabled(ready)
        self.show()

    def _bring_back(self) -> None:
        if self._root is not None:
            asked: RootParams = {"root": self._root.path}
            self.link.fire("bring_back_held", asked)

    def _apply(self) -> None:
        r = self._root
        if r is None:
            return
        names = "\n".join(f"  {p}" for p in r.held_sample)
        more = r.held - len(r.held_sample)
        if more > 0:
            names += f"\n  … and {fmt.count(more)} more"
        question = (
            f"Delete {fmt.count(r.held)} files from the hub's copy of {r.path}?\n\n{names}\n\n"
            "They stay in the hub's history and can be restored later."
        )
        if self.confirm(question):  # exactly what was shown: the agent refuses if it changed
            asked: ApplyHeldParams = {"root": r.path, "expected": r.held}
            self.link.fire("apply_held", asked)

    def confirm(self, question: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete in the hub too?",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes
