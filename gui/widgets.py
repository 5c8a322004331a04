"""Small shared widgets: a progress-bar cell delegate and activity glyphs."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QKeySequence, QPainter, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHeaderView,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeWidget,
    QWidget,
)

FRACTION_ROLE = Qt.ItemDataRole.UserRole + 1
"""Item data (float 0..1, or None for 'not started') drawn as a progress bar."""

ACTIVITY_GLYPHS: dict[str, tuple[str, str]] = {
    "uploaded": ("↑", "#2f7de1"),
    "downloaded": ("↓", "#2e9d5b"),
    "deleted": ("✕", "#7d8590"),
    "restored": ("↺", "#2e9d5b"),
    "processed": ("✦", "#8e44ad"),
}
"""Glyph and colour per kind of hub operation (gui.state.OPERATION_KINDS)."""


def activity_glyph(kind: str) -> tuple[str, QColor]:
    glyph, colour = ACTIVITY_GLYPHS.get(kind, ("•", "#7d8590"))
    return glyph, QColor(colour)


class ProgressDelegate(QStyledItemDelegate):
    """Paints FRACTION_ROLE as a native progress bar, with the cell text on it."""

    MIN_HEIGHT = 24

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width(), max(hint.height(), self.MIN_HEIGHT))

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        fraction = index.data(FRACTION_ROLE)
        if fraction is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 2, -2, -2)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = round(float(fraction) * 1000)
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


def heading(text: str, parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


def muted(text: str = "", parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setStyleSheet("color: palette(placeholder-text);")
    label.setWordWrap(True)
    return label


def close_on_escape_and_ctrl_w(window: QWidget, *, escape: bool = True) -> None:
    """Escape and Ctrl+W (Cmd+W) close the window, as in every desktop app (a dialog
    closes on Escape by itself: ``escape=False``)."""
    keys_list = [QKeySequence("Ctrl+W")]
    if QKeySequence(QKeySequence.StandardKey.Close) != keys_list[0]:
        keys_list.append(QKeySequence(QKeySequence.StandardKey.Close))  # e.g. Ctrl+F4
    if escape:
        keys_list.append(QKeySequence(Qt.Key.Key_Escape))
    for keys in keys_list:
        shortcut = QShortcut(keys, window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(window.close)


def table_tree(headers: list[str], stretch: int = 0) -> QTreeWidget:
    """A flat table of rows: one column stretches, the others fit their contents."""
    tree = QTreeWidget()
    tree.setHeaderLabels(headers)
    tree.setRootIsDecorated(False)
    tree.setUniformRowHeights(True)
    tree.setAlternatingRowColors(True)
    tree.header().setStretchLastSection(False)
    for column in range(len(headers)):
        mode = (
            QHeaderView.ResizeMode.Stretch
            if column == stretch
            else QHeaderView.ResizeMode.ResizeToContents
        )
        tree.header().setSectionResizeMode(column, mode)
    return tree
