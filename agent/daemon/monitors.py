"""The hubs' health probes, and EXAI's beside them (EXAI being down never holds back syncing)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from agent.context import Context
from agent.daemon.health import HealthMonitor, HealthState, HealthStatus
from agent.exai.health import check_health
from agent.exai.settings import ExaiSettings
from sync.errors import AuthError, TransientError

EXAI = "exai"
"""The name EXAI's health changes are reported under (beside the hubs' names)."""


class HubMonitors:
    def __init__(
        self, ctx: Context, interval: float, on_change: Callable[[str, HealthStatus], None]
    ) -> None:
        self._ctx = ctx
        self._interval = interval
        self._on_change = on_change
        self.hubs: dict[str, HealthMonitor] = {}
        self.exai: HealthMonitor | None = None

    def watch(self, hub: str) -> None:
        """Probe an open hub from now on."""
        monitor = HealthMonitor(
            self._ctx.remotes[hub].ping,
            interval=self._interval,
            on_change=functools.partial(self._on_change, hub),
        )
        self.hubs[hub] = monitor
        monitor.start()

    def watch_exai(self) -> None:
        """EXAI's health beside the hubs', once a token is set (no token: not in use)."""
        settings = ExaiSettings.from_config(self._ctx.config.exai)
        if not settings.token:
            return

        async def probe() -> float:
            health = await check_health(settings, http=False)
            if health.state == "auth":
                raise AuthError(health.error or "EXAI rejected the token")
            if health.state == "down":
                raise TransientError(health.error or f"EXAI at {settings.url} does not answer")
            return (health.round_trip_ms or 0.0) / 1000

        self.exai = HealthMonitor(
            probe, interval=self._interval, on_change=functools.partial(self._on_change, EXAI)
        )
        self.exai.start()

    def ready(self, hub: str) -> bool:
        """Whether a pass to ``hub`` may run: probed, and neither offline nor signed out."""
        monitor = self.hubs.get(hub)
        if monitor is None:
            return False
        return monitor.status.state not in (HealthState.OFFLINE, HealthState.SIGNIN_NEEDED)

    def poke(self, hub: str) -> None:
        """Probe ``hub`` soon (a pass just found it in trouble)."""
        monitor = self.hubs.get(hub)
        if monitor is not None:
            monitor.poke()

    async def stop(self, hub: str) -> None:
        monitor = self.hubs.pop(hub, None)
        if monitor is not None:
            await monitor.stop()

    async def aclose(self) -> None:
        for monitor in self.hubs.values():
            await monitor.stop()
        if self.exai is not None:
            await self.exai.stop()
