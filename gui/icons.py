"""Tray and window icons: SVGs from ``resources/icons`` in light/dark variants, plus a
progress badge drawn on top while syncing."""

from __future__ import annotations

from functools import cache
from importlib import resources

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPen, QPixmap
from PySide6.QtSvg import QSvgRenderer

STATES = ("idle", "syncing", "paused", "offline", "signin", "warning", "error")
SIZES = (16, 22, 24, 32, 48, 64)


def is_dark_theme() -> bool:
    """True when the desktop uses a dark colour scheme (light glyphs then read better)."""
    app = QGuiApplication.instance()
    if not isinstance(app, QGuiApplication):
        return False
    if app.styleHints().colorScheme() == Qt.ColorScheme.Dark:
        return True
    window = app.palette().color(app.palette().ColorRole.Window)
    return window.lightness() < 110


VARIANTS = ("light", "dark", "symbolic-light", "symbolic-dark")


@cache
def svg_bytes(state: str, variant: str) -> bytes:
    """``light``/``dark``: colour icons for light/dark panels; ``symbolic-*``: the monochrome
    icon, black on light panels, white on dark ones (its badge glyph knocked out)."""
    if state not in STATES or variant not in VARIANTS:
        raise ValueError(f"no icon for state={state!r} variant={variant!r}")
    name = "symbolic" if variant.startswith("symbolic") else variant
    data = (resources.files("resources") / "icons" / f"hubsync-{state}-{name}.svg").read_bytes()
    if variant == "symbolic-dark":
        data = data.replace(b"#000000", b"#0tmp0").replace(b"#ffffff", b"#000000")
        data = data.replace(b"#0tmp0", b"#ffffff")
    return data


def render(
    state: str, size: int, *, dark: bool, progress: float | None = None, symbolic: bool = False
) -> QPixmap:
    """One pixmap of ``size`` by ``size`` pixels; ``progress`` (0..1) adds a ring around the badge."""
    variant = ("symbolic-" if symbolic else "") + ("dark" if dark else "light")
    renderer = QSvgRenderer(QByteArray(svg_bytes(state, variant)))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    if progress is not None:
        _draw_progress_ring(painter, size, max(0.0, min(1.0, progress)), dark=dark)
    painter.end()
    return pixmap


def _draw_progress_ring(painter: QPainter, size: int, fraction: float, *, dark: bool) -> None:
    # The badge circle sits at (46, 46) r=13 in the 64-unit viewBox; the ring hugs it.
    scale = size / 64.0
    width = max(1.5, 3.0 * scale)
    radius = 15.5 * scale
    centre = 46.0 * scale
    rect = QRectF(centre - radius, centre - radius, 2 * radius, 2 * radius)
    track = QPen(QColor("#3a3f47" if dark else "#d5dae1"), width)
    painter.setPen(track)
    painter.drawEllipse(rect)
    bar = QPen(QColor("#5fa8ff" if dark else "#1f63c6"), width)
    bar.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(bar)
    painter.drawArc(rect, 90 * 16, -round(fraction * 360 * 16))


def state_icon(
    state: str,
    *,
    dark: bool | None = None,
    progress: float | None = None,
    symbolic: bool = False,
) -> QIcon:
    """An icon with every usual tray size, so the platform picks a sharp one."""
    dark = is_dark_theme() if dark is None else dark
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(render(state, size, dark=dark, progress=progress, symbolic=symbolic))
    return icon
