"""The About box: the version comes from the installed distribution (pyproject), one place."""

from __future__ import annotations

from importlib.metadata import version

from PySide6.QtWidgets import QMessageBox, QWidget


def about_text() -> str:
    return (
        f"<b>HubSync {version('hubsync')}</b><br>"
        "Mirrors your folders to a Supabase hub (or the embedded local hub), "
        "deduplicated by content, with every version kept."
    )


def show_about(parent: QWidget | None = None) -> QMessageBox:
    """Non-modal, so the tray keeps its event loop running while it is open."""
    box = QMessageBox(QMessageBox.Icon.Information, "About HubSync", about_text(), parent=parent)
    box.setModal(False)
    box.show()
    return box
