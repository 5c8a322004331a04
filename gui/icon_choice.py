"""Settings row for the tray icon: the panel it sits on (or decide) and colour/symbolic."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QWidget

from gui.icon_theme import PANELS, STYLES
from gui.prefs import TrayPrefs


class IconChoice(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = QComboBox()
        self.style_box = QComboBox()
        for key, label in PANELS.items():
            self.panel.addItem(label, key)
        for key, label in STYLES.items():
            self.style_box.addItem(label, key)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Tray icon for", self.panel)
        form.addRow("Tray icon style", self.style_box)

    def load(self, prefs: TrayPrefs) -> None:
        panel, style = prefs.icon_choice()
        self.panel.setCurrentIndex(self.panel.findData(panel))
        self.style_box.setCurrentIndex(self.style_box.findData(style))

    def save(self, prefs: TrayPrefs) -> None:
        prefs.set_icon_choice(str(self.panel.currentData()), str(self.style_box.currentData()))
