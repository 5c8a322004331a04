"""``hubsync doctor``: config, journal, hubs, folders and the agent, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from agent.cli.common import (
    CliError,
    JournalDamaged,
    NoSpace,
    live_status,
    run_async,
)
from agent.cli.output import JsonOpt, emit_json, err, out
from agent.context import Context
from agent.platform.paths import resolve_paths
from sync.errors import SyncError


def doctor(
    json_out: JsonOpt = False,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Also write a diagnostics zip (no secrets) here."),
    ] = None,
) -> None:
    """Check the config, the journal's integrity and whether the hubs answer."""
    if bundle is not None:
        from agent.cli.diagnostics import write_bundle

        written = write_bundle(resolve_paths(), bundle.expanduser())
        err.print(f"Diagnostics written to {escape(str(written))} (no secrets inside).")

    async def body(ctx: Context) -> list[dict[str, Any]]:
        checks: list[dict[str, Any]] = [
            {"check": "config", "ok": True, "detail": str(ctx.paths.config_file)},
        ]
        integrity = ctx.journal.integrity_check()
        checks.append(
            {
                "check": "journal",
                "ok": integrity == "ok",
                "detail": f"{ctx.paths.journal}: {integrity}",
            }
        )
        for name, remote in ctx.remotes.items():
            try:
                latency = await remote.ping()
                checks.append(
                    {
                        "check": f"{name} hub",
                        "ok": True,
                        "detail": f"{remote.describe()} answered in {latency * 1000:.0f} ms",
                    }
                )
            except SyncError as exc:
                checks.append({"check": f"{name} hub", "ok": False, "detail": exc.message})
        for name, why in ctx.unavailable.items():
            used = any(r.hub == name for r in ctx.journal.roots())
            checks.append({"check": f"{name} hub", "ok": not used, "detail": why})
        for root in ctx.journal.roots():
            checks.append(
                {
                    "check": "folder",
                    "ok": root.path.is_dir(),
                    "detail": f"{root.path}" + ("" if root.path.is_dir() else " is missing"),
                }
            )
        return checks

    try:
        checks = run_async(body)
    except (JournalDamaged, NoSpace) as exc:
        checks = [{"check": "journal", "ok": False, "detail": str(exc)}]
    except CliError as exc:
        checks = [{"check": "config", "ok": False, "detail": str(exc)}]
    checks.append(_agent_check())
    if json_out:
        emit_json(checks)
    else:
        for c in checks:
            mark = "[green]ok[/]  " if c["ok"] else "[red]FAIL[/]"
            out.print(f"{mark} {c['check']}: {escape(c['detail'])}")
    if not all(c["ok"] for c in checks):
        raise typer.Exit(1)


def _agent_check() -> dict[str, Any]:
    """Whether an agent answers: not a failure when none runs (one-off syncs work)."""
    try:
        live = live_status()
    except CliError as exc:
        return {"check": "agent", "ok": False, "detail": str(exc)}
    if live is None:
        detail = "not running; changes sync only on `hubsync sync --once` until `hubsync run`"
    else:
        n = len(live.get("roots", []))
        detail = f"{live['agent']}, {n} {'folder' if n == 1 else 'folders'} watched"
    return {"check": "agent", "ok": True, "detail": detail}
