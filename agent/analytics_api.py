"""The control API's ``analytics`` method: the figures behind the Analytics window."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agent.report_cli import utc_offset

if TYPE_CHECKING:
    from agent.service import AgentService


def register_analytics(agent: AgentService) -> None:
    async def analytics(params: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        days = float(params.get("days") or 7)
        rollups = agent.ctx.journal.rollups()
        if not agent.pass_lock.locked():
            rollups.roll_up(now, agent.ctx.cache.stats())
        report = rollups.report(now - days * 86400, now, utc_offset())
        packed = agent.compactor.stats.values()  # the hubs' own figures, after a round
        report["hub"]["compression_saved_bytes"] = sum(s.saved for s in packed)
        return report

    agent.server.register("analytics", analytics)
