"""The control API's ``analytics`` method: the figures behind the Analytics window."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agent.control.service_api import AgentApi


def utc_offset() -> float:
    """This machine's offset from UTC now, in seconds (days in the figures are local)."""
    offset = datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset else 0.0


def register_analytics(agent: AgentApi) -> None:
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
