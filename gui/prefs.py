"""The tray's own preferences (which notifications to show), kept next to the agent's
config as ``tray.ini``. Everything else is the agent's configuration, reached through
the control API."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

NOTIFY_KEYS = {
    "notify_errors": "Errors that need me",
    "notify_signin": "Sign-in needed",
    "notify_hub": "The hub goes offline or comes back",
    "notify_done": "A large sync finished",
    "notify_results": "EXAI results ready",
}


class TrayPrefs:
    def __init__(self, config_dir: Path) -> None:
        self._settings = QSettings(str(config_dir / "tray.ini"), QSettings.Format.IniFormat)

    def notify(self, key: str) -> bool:
        if key not in NOTIFY_KEYS:
            raise KeyError(key)
        return str(self._settings.value(key, "true")).lower() == "true"

    def set_notify(self, key: str, on: bool) -> None:
        if key not in NOTIFY_KEYS:
            raise KeyError(key)
        self._settings.setValue(key, "true" if on else "false")
        self._settings.sync()

    def icon_choice(self) -> tuple[str, str]:
        """(panel, style): ``auto``/``light``/``dark`` and ``colour``/``symbolic``."""
        panel = str(self._settings.value("icon_panel", "auto"))
        style = str(self._settings.value("icon_style", "colour"))
        return (
            panel if panel in ("auto", "light", "dark") else "auto",
            style if style in ("colour", "symbolic") else "colour",
        )

    def set_icon_choice(self, panel: str, style: str) -> None:
        self._settings.setValue("icon_panel", panel)
        self._settings.setValue("icon_style", style)
        self._settings.sync()
