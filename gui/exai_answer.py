"""The EXAI dialog's answer: streamed text shown folded, then the finished answer.

Qt lays out a paragraph as a whole, so long lines are folded (``fold``) and a large
finished answer is inserted in slices with the loop running between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from gui.exai_results import NOT_OPENED, open_file, reveal_in_folder
from gui.exai_text import fold
from gui.widgets import muted

MARKDOWN_CHARS = 100_000
"""A finished Markdown answer up to this long is shown rendered (parsing is not sliced:
a longer one stays plain text, as it streamed)."""
ANSWER_SLICE_CHARS = 64 * 1024


class AnswerView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.setPlaceholderText("The answer appears here as EXAI writes it.")
        self._parts: list[str] = []
        """The answer as received; the text box shows it folded (see ``fold``)."""
        self._column = 0

    def text(self) -> str:
        return "".join(self._parts)

    def set_text(self, text: str) -> None:
        self._parts = [text] if text else []
        folded, self._column = fold(text, 0)
        self.setPlainText(folded)

    def append_chunk(self, chunk: str) -> None:
        self._parts.append(chunk)
        folded, self._column = fold(chunk, self._column)
        cursor = self.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(folded)
        self.ensureCursorVisible()

    async def show_final(self, text: str, *, markdown: bool) -> None:
        """The answer as saved: rendered when it is Markdown of a size Qt parses quickly,
        else as plain text (replaced only when it differs from what streamed)."""
        if markdown and len(text) <= MARKDOWN_CHARS:
            self._parts = [text]
            self.setMarkdown(text)  # headings, lists, code, links: as meant
        elif text != self.text():
            await self._replace(text)

    async def _replace(self, text: str) -> None:
        """Show ``text`` in slices, letting Qt run between them: laying out megabytes at
        once would stall the window."""
        self._parts = [text]
        self._column = 0
        self.clear()
        cursor = self.textCursor()
        for at in range(0, len(text), ANSWER_SLICE_CHARS):
            folded, self._column = fold(text[at : at + ANSWER_SLICE_CHARS], self._column)
            cursor.movePosition(cursor.MoveOperation.End)
            cursor.insertText(folded)
            await asyncio.sleep(0)


class ResultBar(QWidget):
    """The saved result: its name, and Open, Copy (the answer) and Reveal in folder."""

    failed = Signal(str)
    """A message for the user: the file could not be opened or shown."""

    def __init__(self, answer: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._answer = answer
        self.path: Path | None = None
        self.label = muted("")  # on a line of its own: a long name is never clipped
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(lambda: self._with_path(open_file))
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self._copy)
        self.reveal_button = QPushButton("Reveal in folder")
        self.reveal_button.clicked.connect(lambda: self._with_path(reveal_in_folder))
        row = QHBoxLayout()
        row.addStretch(1)
        for button in (self.open_button, self.copy_button, self.reveal_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addLayout(row)
        self.show_path(None)

    def show_path(self, path: Path | None) -> None:
        self.path = path
        self.label.setText(f"Saved as {path.name}" if path else "")
        self.label.setToolTip(str(path) if path else "")
        for button in (self.open_button, self.reveal_button):
            button.setEnabled(path is not None)
        self.copy_button.setEnabled(path is not None)
        self.copy_button.setText("Copy")

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self._answer())
        self.copy_button.setText("Copied ✓")

    def _with_path(self, action: Callable[[Path], bool]) -> None:
        if self.path is not None and not action(self.path):
            self.failed.emit(NOT_OPENED.format(self.path))
