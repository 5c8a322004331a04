"""The ``hubsync`` command line: the Typer app, made of one module per command group.

One-shot work (add, sync --once, history, restore, doctor) runs in-process;
whatever concerns a running agent goes through its control API.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as dist_version
from typing import Annotated

import typer
from rich.markup import escape

from agent.cli.agent_files import register as register_agent_files
from agent.cli.common import CliError
from agent.cli.desktop import register as register_desktop
from agent.cli.doctor import doctor
from agent.cli.exai import exai_app
from agent.cli.folders import add, history, list_roots, remove, restore
from agent.cli.hub import register as register_hub
from agent.cli.issues import issues_app
from agent.cli.output import err, out
from agent.cli.report import register as register_report
from agent.cli.run import agent, run
from agent.cli.stats import register as register_stats
from agent.cli.supabase import register as register_supabase
from agent.cli.syncing import status, sync

app = typer.Typer(
    name="hubsync",
    help="Mirror folders to a Supabase hub (or the embedded local hub).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"hubsync {dist_version('hubsync')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """HubSync: mirror folders to a hub, deduplicated by content."""


# The core commands first, in the order ``--help`` lists them, then the command groups.
app.command()(add)
app.command()(remove)
app.command(name="list")(list_roots)
app.command()(sync)
app.command()(status)
app.command()(history)
app.command()(restore)
app.command()(doctor)
app.command()(agent)
app.command()(run)
register_agent_files(app)
register_supabase(app)
register_desktop(app)
register_hub(app)
register_stats(app)
register_report(app)
app.add_typer(exai_app, name="exai", help="Send hub files to an EXAI server.")
app.add_typer(issues_app, name="issues")


def main() -> None:
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(exc.code)
    except KeyboardInterrupt:  # before a command got going (loading); nothing to undo
        err.print("interrupted")
        sys.exit(130)
