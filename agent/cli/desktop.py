"""``hubsync install-desktop``: put HubSync in a Linux desktop's application menu."""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import Annotated

import typer

from agent.platform.desktop import DesktopFiles, data_home, install, tray_command, uninstall


def register(app: typer.Typer) -> None:
    """Add ``install-desktop`` to the ``hubsync`` command line."""

    @app.command(name="install-desktop")
    def install_desktop(
        remove: Annotated[
            bool, typer.Option("--uninstall", help="Remove the menu entry and icons instead.")
        ] = False,
    ) -> None:
        """Add HubSync (the tray) to the desktop's application menu, with its icons."""
        if sys.platform in ("win32", "darwin"):
            typer.echo("install-desktop is for Linux (freedesktop) desktops.", err=True)
            raise typer.Exit(1)
        if not remove and not getattr(sys, "frozen", False) and find_spec("PySide6") is None:
            typer.echo("The tray needs PySide6: pip install 'hubsync[gui]' first.", err=True)
            raise typer.Exit(1)
        files = DesktopFiles(data_home())
        try:
            changed = uninstall(files) if remove else install(files, tray_command())
        except OSError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if remove:
            typer.echo(f"Removed {len(changed)} files." if changed else "Nothing was installed.")
            return
        typer.echo(f"Installed {files.entry} ({len(changed) - 1} icon files).")
        typer.echo(f"Menu entry starts: {' '.join(tray_command())}")
