"""``hubsync agent`` and ``hubsync run``: the agent in the foreground, with the tray."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from agent.cli.common import (
    NO_AGENT,
    CliError,
    ServiceRoleOpt,
    UserIdOpt,
    agent_call,
    journal_error,
    run_async,
    service_role_user,
    space_error,
)
from agent.cli.folders import add
from agent.cli.output import err, out
from agent.config import ConfigError
from agent.context import Context
from sync.errors import UndecodableName
from sync.journal import Root


def agent(service_role: ServiceRoleOpt = False, user_id: UserIdOpt = None) -> None:
    """Run the agent in the foreground (watch folders, serve the tray and CLI)."""
    from agent.daemon.runner import run_agent
    from agent.platform.lock import AlreadyRunning

    acting_for = service_role_user(service_role, user_id)
    try:
        run_agent(service_role_user=acting_for)
    except AlreadyRunning as exc:
        raise CliError(str(exc)) from None
    except ConfigError as exc:
        raise CliError(f"configuration error: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise journal_error(exc) from None
    except OSError as exc:
        no_space = space_error(exc)
        if no_space is None:
            raise
        raise no_space from None


def _add_for_run(folder: Path) -> Root:
    async def body(ctx: Context) -> Root:
        try:
            return ctx.journal.add_root(folder, ctx.config.default_hub())
        except (ValueError, UndecodableName) as exc:
            raise CliError(str(exc)) from None

    return run_async(body)


def _folder_to_run(path: Path) -> tuple[Path, bool]:
    """``path`` as a folder to mirror, made if missing; returns (folder, made here)."""
    folder = path.expanduser()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot make the folder {folder}: {exc.strerror or exc}") from None
    return folder, made


def _has_display() -> bool:

    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(
    path: Annotated[Path | None, typer.Argument(help="A folder to mirror (added if new).")] = None,
    tray: Annotated[
        bool | None,
        typer.Option("--tray/--no-tray", help="Default: the tray when a display exists."),
    ] = None,
) -> None:
    """Mirror PATH and keep it synced: the agent, with the tray when there is a screen."""
    running = agent_call("status", {}) is not NO_AGENT
    if path is not None:
        folder, made = _folder_to_run(path)
        try:
            if running:
                add(folder, hub=None, json_out=False)
            else:
                root = _add_for_run(folder)
        except BaseException:
            if made:  # refused: leave nothing behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
    if path is not None and not running:
        out.print(f"Mirroring [bold]{escape(str(root.path))}[/] to the {root.hub} hub.")
    use_tray = _has_display() if tray is None else tray
    if use_tray:
        try:
            from gui.app import main as tray_main
        except ImportError:
            err.print(
                "The tray needs PySide6 (pip install 'hubsync[gui]'); running the agent only."
            )
        else:
            tray_main([])
            return
    if running:
        out.print("An agent is already running and keeps the folder synced (`hubsync status`).")
        return
    out.print(
        "Agent running; Ctrl-C stops it. Files saved in the folder reach the hub in about a second."
    )
    agent()
