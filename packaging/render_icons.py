"""Render the app icon's hicolor PNG sizes from its SVG (run by packaging/build.sh).

Usage: python render_icons.py OUT_DIR  ->  OUT_DIR/hicolor/{N}x{N}/apps/hubsync.png and
OUT_DIR/hicolor/scalable/apps/hubsync.svg. Needs PySide6; runs without a display.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

APP_ICON = "hubsync-idle-light.svg"
"""The desktop icon: the idle state, drawn for light backgrounds like most launchers."""
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def render_all(out: Path) -> list[Path]:
    svg = (resources.files("resources") / "icons" / APP_ICON).read_bytes()
    renderer = QSvgRenderer(QByteArray(svg))
    if not renderer.isValid():
        raise SystemExit(f"{APP_ICON} is not a valid SVG")
    written = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        target = out / "hicolor" / f"{size}x{size}" / "apps" / "hubsync.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target)):
            raise SystemExit(f"could not write {target}")
        written.append(target)
    scalable = out / "hicolor" / "scalable" / "apps" / "hubsync.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(resources.files("resources") / "icons" / APP_ICON), scalable)
    written.append(scalable)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QGuiApplication([sys.argv[0]])
    try:
        for path in render_all(Path(argv[0])):
            print(path)
    finally:
        del app
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
