"""``hubsync install-desktop``: put HubSync in a Linux desktop's application menu.

Writes ``$XDG_DATA_HOME/applications/hubsync.desktop`` whose ``Exec`` is this
installation's tray (the bundle's sibling ``hubsync-tray`` when frozen by
PyInstaller, else the installed script), and the app icon under
``$XDG_DATA_HOME/icons/hicolor``: the SVG as ``scalable`` always, plus the PNG
sizes that ``packaging/build.sh`` renders into the bundle. ``--uninstall``
removes those files again. ``packaging/linux/hubsync.desktop`` is the same entry
with a plain ``hubsync-tray`` for distribution packages.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from agent.platform.autostart import _desktop_quote

DESKTOP_FILE = "hubsync.desktop"
ICON_NAME = "hubsync"
APP_ICON_SVG = "hubsync-idle-light.svg"
"""The menu icon: the idle state drawn for light backgrounds (packaging/render_icons.py too)."""


def desktop_entry(command: Sequence[str]) -> str:
    """The menu entry starting the tray with ``command`` (Desktop Entry spec)."""
    exec_line = " ".join(_desktop_quote(arg) for arg in command)
    # TryExec is a plain string value, not an Exec line: only backslashes are escaped.
    try_exec = command[0].replace("\\", "\\\\")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Version=1.0\n"
        "Name=HubSync\n"
        "GenericName=Folder Sync\n"
        "Comment=Keep folders mirrored to your hub\n"
        f"TryExec={try_exec}\n"
        f"Exec={exec_line}\n"
        f"Icon={ICON_NAME}\n"
        "Terminal=false\n"
        "StartupNotify=false\n"
        "Categories=Network;FileTransfer;\n"
        "Keywords=sync;backup;mirror;supabase;upload;\n"
    )


def tray_command() -> list[str]:
    """How this installation starts the tray."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).with_name("hubsync-tray"))]
    script = shutil.which("hubsync-tray")
    return [script] if script else [sys.executable, "-m", "gui.app"]


def data_home(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when unset or relative (as the spec says)."""
    env = os.environ if env is None else env
    value = env.get("XDG_DATA_HOME", "")
    if value and Path(value).is_absolute():
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / ".local" / "share"


def icon_sources() -> dict[str, Traversable]:
    """Icon files to install, keyed by their path under ``hicolor/``."""
    icons = resources.files("resources") / "icons"
    found: dict[str, Traversable] = {f"scalable/apps/{ICON_NAME}.svg": icons / APP_ICON_SVG}
    rendered = icons / "hicolor"
    if rendered.is_dir():
        for size in rendered.iterdir():
            png = size / "apps" / f"{ICON_NAME}.png"
            if png.is_file():
                found[f"{size.name}/apps/{ICON_NAME}.png"] = png
    return found


@dataclass(frozen=True)
class DesktopFiles:
    """Where the entry and the icons go for one data home."""

    base: Path

    @property
    def entry(self) -> Path:
        return self.base / "applications" / DESKTOP_FILE

    @property
    def hicolor(self) -> Path:
        return self.base / "icons" / "hicolor"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def install(files: DesktopFiles, command: Sequence[str]) -> list[Path]:
    """Write the entry and the icons; returns the files written."""
    written = []
    for rel, source in sorted(icon_sources().items()):
        target = files.hicolor / rel
        _write(target, source.read_bytes())
        written.append(target)
    # Icon lookups cache by the theme folder's mtime: make the new icons visible now.
    os.utime(files.hicolor)
    _write(files.entry, desktop_entry(command).encode("utf-8"))
    written.append(files.entry)
    return written


def uninstall(files: DesktopFiles) -> list[Path]:
    """Remove the entry and every size of the icon; returns the files removed."""
    candidates = [files.entry]
    if files.hicolor.is_dir():
        candidates += sorted(files.hicolor.glob(f"*/apps/{ICON_NAME}.*"))
    removed = []
    for path in candidates:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
