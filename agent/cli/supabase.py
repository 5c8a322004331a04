"""``hubsync login``, ``logout``, ``whoami`` and ``hubsync supabase schema``.

The password is read without echo (or one line from stdin with
``--password-stdin``), sent once to the auth server and never stored: only the
resulting session (access + refresh token) goes to the keyring.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.markup import escape

from agent.cli.output import emit_json, err, out
from agent.config import Config, ConfigError, load_config
from agent.platform.paths import Paths, resolve_paths
from agent.platform.secrets import (
    SERVICE_ROLE_ENV,
    SERVICE_ROLE_SECRET,
    SecretStore,
    SecretStoreError,
    open_secret_store,
    session_namespace,
)
from sync.errors import SyncError
from sync.remotes.supabase.names import SERVICE_ROLE_WARNING
from sync.remotes.supabase.names import SESSION_KEY as STORAGE_KEY

if TYPE_CHECKING:
    from sync.remotes.supabase.session import Identity, SupabaseSettings

# agent.hub.supabase (and with it supabase-py, ~0.35 s) is imported by the commands
# that talk to the hub, not when the CLI starts.

T = TypeVar("T")

ServiceRoleOpt = Annotated[
    bool,
    typer.Option(
        "--service-role",
        help="Use the service_role key (bypasses row level security; headless servers only).",
    ),
]
UserIdOpt = Annotated[
    str | None, typer.Option("--user-id", help="Fixed user id for --service-role.")
]


def _context() -> tuple[Paths, Config]:
    paths = resolve_paths().ensure()
    try:
        return paths, load_config(paths)
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _secrets(paths: Paths) -> SecretStore:
    try:
        store = open_secret_store(paths)
    except SecretStoreError as exc:
        _fail(str(exc))
    if store.warning:
        err.print(f"[yellow]warning:[/yellow] {escape(store.warning)}", highlight=False)
    return store


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (SyncError, SecretStoreError) as exc:
        _fail(str(exc))


def warn_service_role(user_id: str) -> None:
    err.print(f"[bold red]{escape(SERVICE_ROLE_WARNING.format(user_id=user_id))}[/bold red]")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    if not password:
        _fail("no password given")
    return password


def login(
    email: Annotated[str | None, typer.Option("--email", help="Account e-mail.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    service_role: ServiceRoleOpt = False,
    user_id: UserIdOpt = None,
) -> None:
    """Sign in to the Supabase hub; the session is kept in the OS keyring."""
    from agent.hub.supabase import session_storage, settings_from
    from sync.remotes.supabase.session import SupabaseSession

    paths, config = _context()
    try:
        settings = settings_from(config)
    except SyncError as exc:
        _fail(str(exc))
    store = _secrets(paths)
    if service_role:
        if not user_id:
            _fail("--service-role needs a fixed --user-id")
        warn_service_role(user_id)
        # The key comes from stdin (--password-stdin), the environment, or a prompt.
        key = _read_password(True) if password_stdin else os.environ.get(SERVICE_ROLE_ENV, "")
        if not key:
            key = typer.prompt(f"service_role key (or set {SERVICE_ROLE_ENV})", hide_input=True)
        try:
            asyncio.run(_check_service_role(settings, key, user_id))
        except SyncError as exc:
            _fail(f"the hub refused the service_role key ({exc}); nothing was stored")
        store.set(SERVICE_ROLE_SECRET, key)
        out.print(
            escape(f"Service-role key stored; acting as user {user_id} on {settings.public_url}")
        )
        return
    if email is None:
        email = typer.prompt("E-mail")
    password = _read_password(password_stdin)

    async def sign_in() -> Identity:
        session = await SupabaseSession.sign_in(
            settings, session_storage(settings, store), email, password
        )
        await session.close()
        return session.identity

    identity = _run(sign_in())
    out.print(
        escape(f"Signed in to {settings.public_url} as {identity.email} ({identity.user_id})")
    )


async def _check_service_role(settings: SupabaseSettings, key: str, user_id: str) -> None:
    """One authenticated request, so a wrong key is reported now rather than at sync time."""
    from sync.remotes.supabase.remote import SupabaseRemote
    from sync.remotes.supabase.session import SupabaseSession

    remote = SupabaseRemote(await SupabaseSession.service_role(settings, key, user_id))
    try:
        await remote.ping()
    finally:
        await remote.close()


def logout() -> None:
    """Sign out: revoke the session on the server and remove it from the keyring."""
    from agent.hub.supabase import open_session, settings_from

    paths, config = _context()
    try:
        settings = settings_from(config)
    except SyncError as exc:
        _fail(str(exc))
    store = _secrets(paths)

    async def sign_out() -> bool:
        try:
            session = await open_session(config, paths, store=store)
        except SyncError:
            return False
        try:
            await session.sign_out()
        finally:
            await session.close()
        return True

    had_session = _run(sign_out())
    # Whatever the server said, nothing of the session stays on this machine.
    store.delete(f"{session_namespace(settings.public_url)}:{STORAGE_KEY}")
    out.print("Signed out." if had_session else "No session was stored; nothing to do.")


def whoami(
    service_role: ServiceRoleOpt = False,
    user_id: UserIdOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show who HubSync is signed in as, and where."""
    from agent.hub.supabase import open_session

    paths, config = _context()
    if service_role and user_id:
        warn_service_role(user_id)

    async def identify() -> tuple[str, str, str, str]:
        session = await open_session(config, paths, service_role=service_role, user_id=user_id)
        try:
            identity = await session.current_identity()
            expires = (
                datetime.fromtimestamp(identity.expires_at, UTC).isoformat(timespec="seconds")
                if identity.expires_at
                else "-"
            )
            mode = "service role" if identity.service_role else (identity.email or "?")
            return session.settings.public_url, mode, identity.user_id, expires
        finally:
            await session.close()

    url, who, uid, expires = _run(identify())
    if json_out:
        emit_json({"hub": url, "user": who, "user_id": uid, "session_valid_until": expires})
        return
    out.print(
        escape(f"hub:     {url}\nuser:    {who}\nuser id: {uid}\nsession: valid until {expires}")
    )


supabase_app = typer.Typer(help="Supabase hub setup.", no_args_is_help=True)


@supabase_app.command("schema")
def schema() -> None:
    """Print the SQL that sets up the hub (paste into the SQL editor, or use supabase db push)."""
    from sync.remotes.supabase.schema import schema_sql

    sys.stdout.write(schema_sql())


def register(app: typer.Typer) -> None:
    """Add the sign-in commands and the ``supabase`` group to the main CLI."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.add_typer(supabase_app, name="supabase")
