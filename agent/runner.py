"""Running the agent in the foreground: lock, logs, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

from agent.context import Context
from agent.journal_lock import one_engine
from agent.lock import AgentLock
from agent.logs import setup_logging
from agent.paths import Paths, resolve_paths
from agent.service import AgentService

log = logging.getLogger("hubsync.agent")


async def serve(paths: Paths, service_role_user: str | None = None) -> None:
    async with Context.open(paths, service_role_user=service_role_user) as ctx:
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
