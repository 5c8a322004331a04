"""CLI commands around the agent's files: ``hubsync logs`` and ``hubsync autostart``.

``register(app)`` adds them to the main Typer app; ``doctor_bundle`` is what
``hubsync doctor --bundle PATH`` calls.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.diagnostics import write_bundle
from agent.platform import autostart
from agent.platform.logs import follow, tail
from agent.platform.paths import Paths, resolve_paths


class AutostartAction(StrEnum):
    on = "on"
    off = "off"
    status = "status"


def doctor_bundle(paths: Paths, dest: Path) -> Path:
    """Write the diagnostics zip (no secrets) to ``dest``; returns the file written."""
    return write_bundle(paths, dest)


def register(app: typer.Typer, *, paths_factory: Callable[[], Paths] = resolve_paths) -> None:
    """Add ``logs`` and ``autostart`` to ``app``."""

    @app.command()
    def logs(
        lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many lines.")] = 50,
        follow_: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
        ] = False,
        json_out: Annotated[
            bool, typer.Option("--json", help="Print JSON (with -f: one JSON string a line).")
        ] = False,
    ) -> None:
        """Show the end of the agent's log (secrets are redacted when written)."""
        log_file = paths_factory().log_file
        shown = tail(log_file, lines)
        if not shown and not follow_ and not log_file.exists():
            typer.echo(f"no log yet at {log_file}", err=True)
            raise typer.Exit(1)
        if json_out and not follow_:
            typer.echo(json.dumps({"log": str(log_file), "lines": shown}, indent=2))
            return
        for line in shown:
            typer.echo(json.dumps(line) if json_out else line)
        if follow_:
            try:
                for line in follow(log_file):
                    typer.echo(json.dumps(line) if json_out else line)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                pass

    @app.command(name="autostart")
    def autostart_cmd(
        action: Annotated[AutostartAction, typer.Argument(help="on, off or status")],
        headless: Annotated[
            bool | None,
            typer.Option(
                "--headless/--desktop",
                help="Linux: also install a systemd user unit for the agent "
                "(default: only when there is no display).",
            ),
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Start HubSync at login (on), stop doing so (off), or show what is installed."""
        if action is AutostartAction.on:
            changed = autostart.enable(log_dir=paths_factory().log_dir, headless=headless)
            verb = "installed"
        elif action is AutostartAction.off:
            changed = autostart.disable()
            verb = "removed"
        else:
            state = autostart.status()
            if json_out:
                typer.echo(json.dumps(state, indent=2))
            else:
                for kind, where in state.items():
                    typer.echo(f"{kind}: {'on (' + where + ')' if where else 'off'}")
            return
        if json_out:
            typer.echo(json.dumps({verb: [str(p) for p in changed]}, indent=2))
        elif not changed:
            typer.echo(f"nothing to do: autostart is already {action.value}")
        else:
            for path in changed:
                typer.echo(f"{verb} {path}")
