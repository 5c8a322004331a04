"""The file the EXAI dialog asks about: shown, chosen with a file dialog, or dropped."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget


class SourcePicker(QWidget):
    chosen = Signal(str)
    """An absolute local path the user chose."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setReadOnly(True)
        self.edit.setPlaceholderText("Choose a file, or drop one here")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self._choose)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("File"))
        row.addWidget(self.edit, 1)
        row.addWidget(self.choose_button)

    def show_source(self, source: str) -> None:
        self.edit.setText(source)
        self.edit.setToolTip(source)

    def _choose(self) -> None:
        dialog = QFileDialog(self, "Process which file with EXAI?", str(Path.home()))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(lambda path: self.chosen.emit(str(Path(path).absolute())))
        dialog.open()


def offers_files(mime: QMimeData) -> bool:
    return any(url.isLocalFile() for url in mime.urls())


def dropped_file(mime: QMimeData) -> Path | None:
    """The first regular file among what was dropped, absolute."""
    files = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
    files = [path for path in files if path.is_file()]
    return files[0].absolute() if files else None
