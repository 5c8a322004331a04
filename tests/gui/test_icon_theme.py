"""The tray icon is chosen by the panel it sits on, and a symbolic variant exists."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from agent.platform.paths import Paths
from gui.app import TrayApp
from gui.icon_theme import IconStyle, choose_style, panel_is_dark, sample_panel
from gui.icons import STATES, render
from gui.prefs import TrayPrefs

LIGHT, DARK = Qt.ColorScheme.Light, Qt.ColorScheme.Dark


def test_a_dark_panel_wins_over_a_light_theme_and_the_config_over_both() -> None:
    dark_panel, light_panel = QColor("#202124"), QColor("#f0f0f0")
    assert panel_is_dark(dark_panel, LIGHT)
    assert not panel_is_dark(light_panel, DARK)
    # the panel unknown (Wayland): the system colour scheme decides
    assert panel_is_dark(None, DARK) and not panel_is_dark(None, LIGHT)
    assert panel_is_dark(None, Qt.ColorScheme.Unknown, QColor("#303030"))
    assert choose_style("auto", "colour", dark_panel, LIGHT) == IconStyle(True, False)
    assert choose_style("light", "symbolic", dark_panel, DARK) == IconStyle(False, True)
    assert choose_style("dark", "colour", light_panel, LIGHT) == IconStyle(True, False)


def _ink(image: QImage) -> list[QColor]:
    return [
        image.pixelColor(x, y)
        for x in range(image.width())
        for y in range(image.height())
        if image.pixelColor(x, y).alpha() > 200
    ]


def test_the_symbolic_icon_is_monochrome_and_reads_on_its_panel() -> None:
    for state in STATES:
        for dark in (False, True):
            ink = _ink(render(state, 32, dark=dark, symbolic=True).toImage())
            assert ink, state
            assert all(c.saturation() < 20 for c in ink), state  # no colour
            # the cloud outline (its bottom edge) is the panel's contrast colour
            cloud = render(state, 64, dark=dark, symbolic=True).toImage().pixelColor(25, 44)
            assert (cloud.lightness() > 200) == dark, (state, dark)


def test_the_panel_colour_is_read_from_the_screen_under_the_icon(qtbot: QtBot) -> None:
    panel = QWidget()
    panel.setStyleSheet("background: #1b1d21")
    panel.setGeometry(0, 0, 200, 40)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    colour = sample_panel(QRect(panel.mapToGlobal(panel.rect().topLeft()), panel.size()))
    if colour is not None:  # offscreen Qt may not hand out the screen's pixels
        assert panel_is_dark(colour, LIGHT)


def test_the_icon_choice_is_kept_in_settings(qtbot: QtBot, tray_app: TrayApp, paths: Paths) -> None:
    dialog = tray_app.settings
    dialog.load()
    box = dialog.icon_choice
    box.panel.setCurrentIndex(box.panel.findData("dark"))
    box.style_box.setCurrentIndex(box.style_box.findData("symbolic"))
    dialog.save()
    assert TrayPrefs(paths.config_dir).icon_choice() == ("dark", "symbolic")
    qtbot.waitUntil(lambda: tray_app.tray.icon_style == IconStyle(True, True), timeout=2000)
