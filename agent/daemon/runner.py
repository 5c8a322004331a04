"""Running the agent in the foreground: lock, logs, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3

from agent.context import Context
from agent.daemon.service import AgentService
from agent.platform.journal_lock import one_engine
from agent.platform.lock import AgentLock
from agent.platform.logs import setup_logging
from agent.platform.paths import Paths, resolve_paths
from sync.disk_space import disk_full

log = logging.getLogger("hubsync.agent")


DISK_WAIT = 2.0
"""While the journal cannot be opened for want of space, look again this often."""


async def _open_when_space(paths: Paths, service_role_user: str | None) -> Context:
    """The context, once the journal's disk has room to open it (SQLite needs a little
    to start); a damaged journal or any other error is raised at once."""
    told = False
    while True:
        try:
            return Context.open(paths, service_role_user=service_role_user)
        except (sqlite3.Error, OSError) as exc:
            full = disk_full(exc, paths.journal)
            if full is None:
                raise
            if not told:
                log.warning(
                    "%s: HubSync cannot open its journal; the agent starts when there is space",
                    full.message,
                )
                told = True
        await asyncio.sleep(DISK_WAIT)


async def serve(paths: Paths, service_role_user: str | None = None) -> None:
    async with await _open_when_space(paths, service_role_user) as ctx:
        service = AgentService(ctx)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        try:
            await service.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def run_agent(*, console: bool = True, service_role_user: str | None = None) -> None:
    """The ``hubsync agent`` command: one agent per user (lock), until SIGTERM/SIGINT."""
    paths = resolve_paths().ensure()
    setup_logging(paths, console=console)
    with AgentLock(paths.agent_lock), one_engine(paths.journal, wait=True):
        asyncio.run(serve(paths, service_role_user))
