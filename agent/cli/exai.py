"""``hubsync exai …``: list EXAI's tools, ask about a file, check the endpoint.

Progress and streamed text go to stderr; stdout carries only the result (the
result file's path, or JSON with ``--json``) so the commands script well.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.output import JsonOpt, emit_json, err, out
from agent.config import ConfigError, load_config
from agent.context import Context
from agent.exai.results import default_results_dir
from agent.exai.settings import JWT_SECRET, TOKEN_SECRET, ExaiSettings, read_jwt, read_token
from agent.platform.paths import resolve_paths
from sync.errors import SyncError
from sync.remotes.base import BUCKET_FILES

if TYPE_CHECKING:
    from agent.exai.flow import ProcessOutcome
    from agent.exai.health import ExaiHealth
    from agent.exai.tools import ToolInfo

# The client (websockets) and the health check (httpx) load in the commands that
# use them: every other ``hubsync`` command starts without them.

T = TypeVar("T")

exai_app = typer.Typer(
    name="exai",
    help="Ask an EXAI server about your files and keep the answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _run(body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body``, turning every expected failure into one clear line."""

    async def main() -> T:
        return await body()

    try:
        return asyncio.run(main())
    except SyncError as exc:
        _fail(exc.message)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}")
    except KeyboardInterrupt:  # Ctrl-C: the running call was cancelled (and EXAI told so)
        _fail("interrupted", 130)


def _settings() -> ExaiSettings:
    try:
        return ExaiSettings.from_config(load_config(resolve_paths()).exai)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}")


@exai_app.command()
def tools(json_out: JsonOpt = False) -> None:
    """List the tools the EXAI server offers, with their arguments."""
    from agent.exai.client import ExaiClient

    settings = _settings()

    async def body() -> list[ToolInfo]:
        async with ExaiClient(settings) as client:
            return await client.list_tools()

    listed = _run(body)
    if json_out:
        emit_json(
            [
                {"name": t.name, "description": t.description, "inputSchema": t.input_schema}
                for t in listed
            ]
        )
        return
    table = Table("tool", "arguments (* required)", "description")
    for t in listed:
        args = ", ".join(f"{n}{'*' if n in t.required else ''}" for n in t.properties)
        summary = t.description.strip().splitlines()[0] if t.description.strip() else ""
        table.add_row(t.name, args, summary)
    out.print(table)


@exai_app.command()
def ask(
    file: Annotated[str, typer.Argument(help="A local file, or a hub reference user-files/<key>.")],
    question: Annotated[str, typer.Argument(help="What to ask about the file.")],
    tool: Annotated[str, typer.Option(help="EXAI tool to call.")] = "smart_file_query",
    hub: Annotated[
        str | None, typer.Option(help="local or supabase (default: the configured hub).")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for the answer.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send FILE to EXAI with QUESTION; save the answer and print its path."""
    from agent.exai.client import ExaiClient
    from agent.exai.flow import process_file

    if not file.startswith(BUCKET_FILES + "/") and not Path(file).expanduser().is_file():
        _fail(f"{file}: no such file")

    def show(text: str) -> None:
        err.print(f"[dim]… {escape(text)}[/]")

    def stream(chunk: str) -> None:
        err.file.write(chunk)
        err.file.flush()

    async def body() -> ProcessOutcome:
        try:
            ctx = Context.open()
        except ConfigError as exc:
            _fail(f"configuration error: {exc}")
        async with ctx:
            chosen = hub or ctx.config.default_hub()
            remote = ctx.remotes.get(chosen)
            if remote is None:
                _fail(ctx.unavailable.get(chosen, f"no hub named {chosen!r}"))
            settings = ExaiSettings.from_config(ctx.config.exai)
            async with ExaiClient(settings) as client:
                return await process_file(
                    remote,
                    client,
                    file,
                    question,
                    tool,
                    default_results_dir(ctx.config, ctx.paths),
                    path_map=ctx.config.exai.path_map,
                    download_dir=ctx.config.exai.download_dir,
                    on_progress=show,
                    on_chunk=stream if not json_out else None,
                    on_stage=show,
                    time_limit=time_limit,
                )

    outcome = _run(body)
    if json_out:
        emit_json(
            {
                "result_path": str(outcome.result_path),
                "result_key": outcome.result_key,
                "file_ref": outcome.file_ref,
                "sha256": outcome.sha256,
                "tool": outcome.tool,
                "op_id": outcome.op_id,
                "duration_ms": outcome.duration_ms,
            }
        )
        return
    if outcome.result.streamed:
        err.print()
    sys.stdout.write(f"{outcome.result_path}\n")


@exai_app.command()
def status(json_out: JsonOpt = False) -> None:
    """Check the EXAI endpoint: hello round-trip with the token, and its /health port."""
    from agent.exai.health import check_health

    settings = _settings()
    _, token_source = read_token()
    _, jwt_source = read_jwt()
    health: ExaiHealth = _run(lambda: check_health(settings))
    if json_out:
        emit_json(
            {
                **health.__dict__,
                "state": health.state,
                "token_source": token_source,
                "jwt_source": jwt_source,
            }
        )
    else:
        colour = {"ok": "green", "auth": "yellow"}.get(health.state, "red")
        out.print(f"EXAI {escape(health.url)}: [{colour}]{health.state}[/]")
        out.print(f"  token: {token_source or 'none (set EXAI_WS_TOKEN or the keyring)'}")
        out.print(f"  jwt: {jwt_source or 'none (only daemons with JWT validation want one)'}")
        if health.round_trip_ms is not None:
            out.print(f"  hello round-trip: {health.round_trip_ms:.0f} ms")
        if health.error:
            out.print(f"  problem: {escape(health.error)}")
        if health.health is not None:
            out.print(f"  /health: {escape(str(health.health.get('status', '?')))}")
        elif health.health_error:
            out.print(f"  /health: {escape(health.health_error)}")
    if health.state != "ok":
        raise typer.Exit(1)


@exai_app.command("token")
def token(
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the token from standard input.")
    ] = False,
    forget: Annotated[bool, typer.Option("--forget", help="Remove the stored token.")] = False,
    jwt: Annotated[
        bool,
        typer.Option("--jwt", help="The JWT a daemon with JWT validation wants, not the token."),
    ] = False,
) -> None:
    """Store the EXAI token (or with --jwt the JWT) in the OS keyring, never in the config;
    EXAI_WS_TOKEN / EXAI_WS_JWT override them."""
    from agent.platform.secrets import SecretStoreError, open_secret_store

    secret, what = (JWT_SECRET, "EXAI JWT") if jwt else (TOKEN_SECRET, "EXAI token")
    try:
        store = open_secret_store(resolve_paths())
    except SecretStoreError as exc:
        _fail(str(exc))
    if store.warning:
        err.print(f"[yellow]warning:[/] {escape(store.warning)}")
    if forget:
        store.delete(secret)
        out.print(f"{what} removed from the keyring.")
        return
    value = sys.stdin.readline().strip() if stdin else typer.prompt(what, hide_input=True)
    if not value:
        _fail(f"no {what} given")
    store.set(secret, value)
    out.print(f"{what} stored in the keyring.")
