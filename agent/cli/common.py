"""What every ``hubsync`` command shares: errors as messages, the context, the agent."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from agent.cli.output import err
from agent.cli.supabase import warn_service_role
from agent.config import ConfigError
from agent.context import Context
from agent.platform.journal_lock import JournalBusy
from agent.platform.journal_lock import one_engine as journal_lock
from agent.platform.lock import lock_held
from agent.platform.paths import resolve_paths
from sync.disk_space import disk_full
from sync.errors import DiskFull, UndecodableName
from sync.journal import Root

T = TypeVar("T")

ServiceRoleOpt = Annotated[
    bool,
    typer.Option(
        "--service-role", help="Headless servers: use the service-role key (needs --user-id)."
    ),
]
UserIdOpt = Annotated[
    str | None, typer.Option("--user-id", help="The fixed user id service-role mode acts for.")
]


def service_role_user(service_role: bool, user_id: str | None) -> str | None:
    """Service-role mode only with both flags, and never quietly."""
    if not service_role:
        if user_id:
            raise CliError("--user-id goes with --service-role")
        return None
    if not user_id:
        raise CliError("--service-role needs a fixed --user-id")
    warn_service_role(user_id)
    return user_id


class CliError(Exception):
    """A clear message for the user and an exit code; never a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class JournalDamaged(CliError):
    def __init__(self, exc: sqlite3.DatabaseError) -> None:

        super().__init__(
            f"the journal {resolve_paths().journal} is damaged ({exc}). Move it aside (keep it "
            "for a bug report) and add your folders again: the hub keeps every version."
        )


class NoSpace(CliError):
    """The disk of HubSync's own state is full: the journal is fine, the work waits."""

    def __init__(self, full: DiskFull) -> None:
        super().__init__(
            f"{full.message}: HubSync could not write its state there; nothing is lost, "
            "free some space and run the command again"
        )


def journal_error(exc: sqlite3.DatabaseError) -> CliError:
    """What a failed journal read or write means: a full disk, or a damaged journal."""
    journal = resolve_paths().journal
    full = disk_full(exc, journal)
    return JournalDamaged(exc) if full is None else NoSpace(full)


def space_error(exc: OSError) -> NoSpace | None:
    """A write of HubSync's own state (lock, journal, cache) that found the disk full."""
    full = disk_full(exc, exc.filename or resolve_paths().data_dir)
    return None if full is None else NoSpace(full)


def run_async(
    body: Callable[[Context], Awaitable[T]],
    *,
    service_role_user: str | None = None,
    one_engine: bool = False,
) -> T:
    """Open the context, run ``body`` and close everything, turning errors into messages.

    ``one_engine``: the command syncs or restores, and keeps any other process that
    would out of the journal while it runs (see agent/platform/journal_lock.py)."""
    if one_engine:
        try:
            with journal_lock(resolve_paths().journal):
                return run_async(body, service_role_user=service_role_user)
        except JournalBusy as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:  # the lock file could not be made
            no_space = space_error(exc)
            if no_space is None:
                raise
            raise no_space from None

    async def main() -> T:
        paths = resolve_paths()
        try:
            # With an agent running, the journal is its: this process never switches hubs.
            ctx = Context.open(
                paths,
                service_role_user=service_role_user,
                may_adopt=not lock_held(paths.agent_lock),
            )
        except ConfigError as exc:
            raise CliError(f"configuration error: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise journal_error(exc) from None
        async with ctx:
            for notice in ctx.notices:
                err.print(f"[yellow]note:[/] {escape(notice)}")
            try:
                return await body(ctx)
            except sqlite3.DatabaseError as exc:
                raise journal_error(exc) from None

    try:
        return asyncio.run(main())
    except OSError as exc:
        no_space = space_error(exc)
        if no_space is None:
            raise
        raise no_space from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; nothing is lost, run the command again to continue", 130
        ) from None


def find_root(ctx: Context, path: Path) -> tuple[Root, str]:
    try:
        found = ctx.journal.root_for(path)
    except UndecodableName as exc:
        raise CliError(str(exc)) from None
    if found is None:
        raise CliError(f"{path} is not inside a mirrored folder (see `hubsync list`)")
    return found


NO_AGENT = object()


def agent_call(method: str, params: dict[str, Any], timeout: float = 30) -> Any:
    """Ask the running agent (so it starts watching at once); ``NO_AGENT`` when none runs."""
    from agent.control.client import AgentUnavailable, call_sync
    from agent.control.protocol import ControlError

    try:
        return call_sync(method, params, timeout=timeout)
    except AgentUnavailable:
        return NO_AGENT
    except ControlError as exc:
        raise CliError(exc.message) from None


PASS_TIMEOUT = 7 * 24 * 3600.0
"""How long ``sync --once`` waits for the agent's pass: as long as the pass takes."""


def live_status() -> dict[str, Any] | None:
    """The running agent's view, or None when no agent runs."""
    from agent.control.client import AgentUnavailable, call_sync
    from agent.control.protocol import ControlError

    try:
        live: dict[str, Any] = call_sync("status", timeout=5)
    except AgentUnavailable:
        return None
    except ControlError as exc:  # e.g. it did not answer in time
        raise CliError(f"the agent is running but {exc.message}") from None
    live["agent"] = f"running ({live['state']})"
    return live
