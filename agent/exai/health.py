"""Is the EXAI endpoint up? A hello round-trip, plus the daemon's /health port when set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from agent.exai.client import ExaiClient
from agent.exai.errors import ExaiError
from agent.exai.settings import ExaiSettings


@dataclass(frozen=True)
class ExaiHealth:
    url: str
    reachable: bool
    round_trip_ms: float | None = None
    error: str | None = None
    error_kind: str | None = None
    health: dict[str, Any] | None = None
    health_error: str | None = None

    @property
    def state(self) -> str:
        """One of ``ok``, ``auth`` (reachable, token refused) or ``down``."""
        if self.reachable:
            return "ok"
        return "auth" if self.error_kind == "auth" else "down"


async def fetch_health(settings: ExaiSettings, time_limit: float = 5.0) -> dict[str, Any]:
    """``GET /health`` of the daemon; raises ExaiError when it cannot be read."""
    url = settings.health_url
    if url is None:
        raise ExaiError("no EXAI health port configured")
    try:
        async with httpx.AsyncClient(timeout=time_limit, trust_env=False) as http:
            response = await http.get(url)
            response.raise_for_status()
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ExaiError(f"EXAI health at {url} failed: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise ExaiError(f"EXAI health at {url} did not answer a JSON object")
    return body


async def check_health(settings: ExaiSettings, *, http: bool = True) -> ExaiHealth:
    """Never raises: the state is for status lines and the tray."""
    health: dict[str, Any] | None = None
    health_error: str | None = None
    if http and settings.health_url:
        try:
            health = await fetch_health(settings)
        except ExaiError as exc:
            health_error = exc.message
    client = ExaiClient(settings)
    try:
        seconds = await client.ping()
    except ExaiError as exc:
        return ExaiHealth(settings.url, False, None, exc.message, exc.kind, health, health_error)
    finally:
        await client.aclose()
    return ExaiHealth(settings.url, True, seconds * 1000, None, None, health, health_error)
