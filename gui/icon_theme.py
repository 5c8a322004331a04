"""Which tray icon to draw: by the panel the icon sits on, not the app's theme (a dark
panel under a light theme is common). The panel's colour is sampled from the screen
around the icon where Qt can grab it (X11); else the system colour scheme decides.
``tray.ini`` can force the panel (``icon_panel``: auto/light/dark) and the style
(``icon_style``: colour/symbolic)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QGuiApplication

PANELS = {"auto": "Decide by the panel", "light": "Light panel", "dark": "Dark panel"}
STYLES = {"colour": "Colour", "symbolic": "Monochrome (symbolic)"}


@dataclass(frozen=True)
class IconStyle:
    dark: bool  # drawn for a dark panel
    symbolic: bool


def panel_is_dark(
    panel: QColor | None, scheme: Qt.ColorScheme, window: QColor | None = None
) -> bool:
    """The panel's own colour when known; else the colour scheme; else the app's window colour."""
    if panel is not None and panel.isValid():
        return panel.lightnessF() < 0.5
    if scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    return window is not None and window.lightness() < 110


def choose_style(
    panel_pref: str, style_pref: str, panel: QColor | None, scheme: Qt.ColorScheme
) -> IconStyle:
    dark = {"light": False, "dark": True}.get(panel_pref)
    if dark is None:
        app = QGuiApplication.instance()
        window = app.palette().window().color() if isinstance(app, QGuiApplication) else None
        dark = panel_is_dark(panel, scheme, window)
    return IconStyle(dark=dark, symbolic=style_pref == "symbolic")


def sample_panel(geometry: QRect) -> QColor | None:
    """The mean colour of the corners of the icon's cell on screen (the icon leaves them
    bare), or None where the screen cannot be read (Wayland, no geometry)."""
    screen = QGuiApplication.screenAt(geometry.center()) if geometry.isValid() else None
    if screen is None or geometry.width() < 4 or geometry.height() < 4:
        return None
    top_left = geometry.topLeft() - screen.geometry().topLeft()
    image = screen.grabWindow(0, top_left.x(), top_left.y(), geometry.width(), geometry.height())
    image_ = image.toImage()
    if image_.isNull():
        return None
    w, h = image_.width() - 1, image_.height() - 1
    corners = [image_.pixelColor(x, y) for x in (0, w) for y in (0, h)]
    return QColor(
        sum(c.red() for c in corners) // 4,
        sum(c.green() for c in corners) // 4,
        sum(c.blue() for c in corners) // 4,
    )
