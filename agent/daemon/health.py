"""Is the hub reachable? A periodic probe turned into online / degraded / offline / sign-in.

Rules (``HealthMonitor``):

* a probe that succeeds within ``degraded_latency`` with no failure among the
  last ``window`` checks: **online**; slower, or after a recent failure
  (intermittent trouble): **degraded**;
* ``offline_after`` transient failures in a row (network, timeouts, 5xx):
  **offline**; fewer: **degraded**;
* ``AuthError``: **signin_needed** until a probe succeeds again.

Scheduling: one probe every ``interval``; after a transient failure the next
comes sooner (``fast_retry``, doubling up to ``interval``) so a return is
noticed quickly. Between probes the task only sleeps, so an idle agent costs
nothing; ``poke()`` asks for a probe now (e.g. the engine saw a network error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from agent.control.payloads import HealthData
from sync.errors import AuthError, SyncError

log = logging.getLogger("hubsync.health")

Probe = Callable[[], Awaitable[float]]
"""Checks the remote once; returns its latency in seconds or raises a ``SyncError``."""


class HealthState(StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    SIGNIN_NEEDED = "signin_needed"


@dataclass(frozen=True)
class HealthStatus:
    state: HealthState = HealthState.UNKNOWN
    latency: float | None = None
    """Seconds the last successful probe took."""
    last_check: float | None = None
    """Wall-clock time (``time.time()``) of the last probe."""
    consecutive_failures: int = 0
    reason: str | None = None
    """Why the state is not online, in words for the user."""

    def to_dict(self) -> HealthData:
        return {
            "state": str(self.state),
            "latency": self.latency,
            "last_check": self.last_check,
            "consecutive_failures": self.consecutive_failures,
            "reason": self.reason,
        }


class HealthMonitor:
    def __init__(
        self,
        probe: Probe,
        *,
        interval: float = 30.0,
        fast_retry: float = 2.0,
        degraded_latency: float = 2.0,
        offline_after: int = 2,
        window: int = 5,
        probe_timeout: float = 10.0,
        on_change: Callable[[HealthStatus], None] | None = None,
    ) -> None:
        self._probe = probe
        self.interval = interval
        self.fast_retry = min(fast_retry, interval)
        self.degraded_latency = degraded_latency
        self.offline_after = offline_after
        self.probe_timeout = probe_timeout
        self.on_change = on_change
        self._recent: deque[bool] = deque(maxlen=window)
        self._status = HealthStatus()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def status(self) -> HealthStatus:
        return self._status

    async def check(self) -> HealthStatus:
        """Probe once and update the state (``on_change`` fires if it changed)."""
        previous = self._status
        now = time.time()
        try:
            async with asyncio.timeout(self.probe_timeout):
                latency = await self._probe()
        except AuthError as exc:
            status = HealthStatus(
                HealthState.SIGNIN_NEEDED,
                previous.latency,
                now,
                previous.consecutive_failures + 1,
                exc.message,
            )
        except (SyncError, OSError, TimeoutError) as exc:
            status = self._failed(previous, now, _reason(exc, self.probe_timeout))
        except Exception as exc:  # a bug in a probe must not stop health checks
            log.exception("health probe failed unexpectedly")
            status = self._failed(previous, now, f"health check failed ({type(exc).__name__})")
        else:
            if previous.state in (HealthState.OFFLINE, HealthState.SIGNIN_NEEDED):
                self._recent.clear()  # the outage is over: start afresh
            self._recent.append(True)
            if latency > self.degraded_latency:
                state, reason = HealthState.DEGRADED, f"slow hub ({latency:.1f} s)"
            elif False in self._recent:
                state, reason = HealthState.DEGRADED, "intermittent failures"
            else:
                state, reason = HealthState.ONLINE, None
            status = HealthStatus(state, latency, now, 0, reason)
        self._status = status
        if status.state != previous.state:
            log.info(
                "hub health: %s -> %s (%s)", previous.state, status.state, status.reason or "ok"
            )
            if self.on_change is not None:
                try:
                    self.on_change(status)
                except Exception:  # a listener's bug must not stop health checks
                    log.exception("health change listener failed")
        return status

    def _failed(self, previous: HealthStatus, now: float, reason: str) -> HealthStatus:
        self._recent.append(False)
        failures = previous.consecutive_failures + 1
        state = HealthState.OFFLINE if failures >= self.offline_after else HealthState.DEGRADED
        return HealthStatus(state, previous.latency, now, failures, reason)

    def next_delay(self) -> float:
        """Seconds until the next probe, given the current state."""
        status = self._status
        if status.consecutive_failures and status.state != HealthState.SIGNIN_NEEDED:
            return min(self.interval, self.fast_retry * 2.0 ** (status.consecutive_failures - 1))
        return self.interval

    def poke(self) -> None:
        """Probe now instead of waiting for the next turn."""
        self._wake.set()

    async def run(self) -> None:
        """Probe forever (until cancelled).

        Waits use ``asyncio.timeout``, never ``wait_for``: on Python 3.11 ``wait_for``
        swallows a cancel that arrives while the awaited event is being set, and the
        monitor then outlived ``stop()``.
        """
        while True:
            await self.check()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.next_delay()):
                    await self._wake.wait()
            self._wake.clear()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="hubsync-health")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, SyncError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    assert isinstance(exc, OSError)
    return f"cannot reach the hub ({exc.strerror or type(exc).__name__})"
