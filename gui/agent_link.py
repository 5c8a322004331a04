"""The tray's line to the agent: Qt signals on top of the control API's reconnecting link.

It starts the agent (detached, so it outlives the tray) when none answers, follows it
across restarts, fetches a fresh snapshot after every (re)connection, and turns the
pushed events into Qt signals. Event bursts are consumed in slices so the Qt event
loop (painting, input, timers) never waits more than ``SLICE_SECONDS`` for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from agent.control.client import CONNECTION_EVENT, AgentUnavailable, ControlClient
from agent.control.client import AgentLink as ControlLink
from agent.control.payloads import ActivityAnswer, ActivityParams, StatusSnapshot
from agent.control.protocol import LAGGED_EVENT, ControlError, Event

log = logging.getLogger("hubsync.gui.link")

SLICE_SECONDS = 0.01
ACTIVITY_LIMIT = 1000
ACTIVITY_REFRESH_MS = 500
"""A finished pass announces itself; its files are fetched at most this often."""
RESPAWN_AFTER_SECONDS = 5.0
"""Disconnected this long with nobody serving the socket: start the agent again."""
RESPAWN_MIN_INTERVAL = 30.0


def describe(exc: AgentUnavailable | ControlError) -> str:
    """A failed call in words for the user."""
    if isinstance(exc, ControlError):
        return exc.message
    return "the HubSync agent is not running"


def default_agent_command() -> list[str]:
    """How to start ``hubsync agent``: the ``hubsync`` next to this program (same venv or
    bundle), else the one on PATH, else this interpreter with ``-m agent``."""
    here = Path(sys.executable).parent
    for sibling in (here / "hubsync", here / "hubsync.exe"):
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return [str(sibling), "agent"]
    script = shutil.which("hubsync")
    if script:
        return [script, "agent"]
    return [sys.executable, "-m", "agent", "agent"]


class AgentLink(QObject):
    connection_changed = Signal(bool, str)
    """(connected, one-line explanation for the user); ``hello`` is set before it fires."""
    status = Signal(dict)
    progress = Signal(dict)
    activity = Signal(dict)
    """The ``activity`` method's result (recent operations), after connecting and after passes."""
    health = Signal(dict)
    error = Signal(dict)
    upload = Signal(dict)
    exai_job = Signal(dict)
    hub_download = Signal(dict)
    """Progress of a ``hub.get`` / ``hub.pull`` (anyone's: match its ``source``)."""
    call_failed = Signal(str, str)
    """(method, message) of a call that failed and had no error handler of its own."""

    def __init__(
        self,
        socket_path: Path,
        *,
        agent_command: Sequence[str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.socket_path = socket_path
        self.agent_command = list(agent_command) if agent_command else None
        """``None``: never start an agent (someone else runs it)."""
        self.hello: dict[str, Any] = {}
        self.agent_started_by_us: subprocess.Popen[bytes] | None = None
        self._events: dict[str, Callable[[Any], None]] = {
            "status": self.status.emit,
            "progress": self.progress.emit,
            "health": self.health.emit,
            "error": self.error.emit,
            "upload": self.upload.emit,
            "exai.job": self.exai_job.emit,
            "hub_download": self.hub_download.emit,
            "activity": lambda _: self._activity_timer.start(),
        }
        self._link = ControlLink(socket_path, topics=list(self._events), max_backoff=2.0)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._last_spawn = 0.0
        self._down_since: float | None = time.monotonic()
        self._activity_timer = QTimer(self)
        self._activity_timer.setSingleShot(True)
        self._activity_timer.setInterval(ACTIVITY_REFRESH_MS)
        self._activity_timer.timeout.connect(self.refresh_activity)

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self.hello.get("methods") or [])

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop following the agent (the agent itself keeps running)."""
        self._activity_timer.stop()
        runner, self._runner = self._runner, None
        tasks = [t for t in (runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._link.close()

    async def _run(self) -> None:
        watchdog = self.spawn(self._watchdog())
        try:
            events = self._link.events()
            try:
                slice_start = time.monotonic()
                async for event in events:
                    self._dispatch(event)
                    if time.monotonic() - slice_start > SLICE_SECONDS:
                        await asyncio.sleep(0)  # let Qt paint and run its timers
                        slice_start = time.monotonic()
            finally:
                await events.aclose()
        finally:
            watchdog.cancel()

    def _dispatch(self, event: Event) -> None:
        name, data = event.event, event.data
        if name == CONNECTION_EVENT:
            if data.get("connected"):
                self._down_since = None
                self.hello = dict(data.get("hello") or {})
                self.connection_changed.emit(True, "Connected to the HubSync agent")
                self.spawn(self._snapshot())
            else:
                self._down_since = time.monotonic()
                self.connection_changed.emit(False, "The HubSync agent stopped; reconnecting…")
        elif name == LAGGED_EVENT:
            log.warning("the agent dropped this tray for reading too slowly; resyncing")
        elif name in self._events and isinstance(data, dict):
            self._events[name](data)

    async def _snapshot(self) -> None:
        """Fetch the full picture; runs after the subscription so no event falls in between."""
        try:
            status: StatusSnapshot = await self._link.call("status")
            self.status.emit(status)
            asked: ActivityParams = {"limit": ACTIVITY_LIMIT}
            activity: ActivityAnswer = await self._link.call("activity", asked)
            self.activity.emit(activity)
        except (AgentUnavailable, ControlError) as exc:
            log.info("snapshot after connecting failed: %s", exc)

    def refresh_activity(self) -> None:
        if self.connected:
            self.fire(
                "activity",
                {"limit": ACTIVITY_LIMIT},
                on_result=self.activity.emit,
                on_error=lambda _: None,
            )

    async def _watchdog(self) -> None:
        """Start the agent when nobody serves the socket for a while."""
        if self.agent_command is None:
            return
        first = True
        while True:
            down = self._down_since
            due = down is not None and (first or time.monotonic() - down > RESPAWN_AFTER_SECONDS)
            if due and not await self._agent_answers():
                self._spawn_agent()
            first = False
            await asyncio.sleep(1.0)

    async def _agent_answers(self) -> bool:
        try:
            client = await ControlClient.connect(self.socket_path, timeout=1.0)
        except (AgentUnavailable, ControlError):
            return False
        await client.close()
        return True

    def _spawn_agent(self) -> None:
        now = time.monotonic()
        if self.agent_command is None or now - self._last_spawn < RESPAWN_MIN_INTERVAL:
            return
        self._last_spawn = now
        log.info("no agent is running; starting %s", " ".join(self.agent_command))
        self.connection_changed.emit(False, "Starting the HubSync agent…")
        # A new session: the agent must survive the tray closing or crashing.
        self.agent_started_by_us = subprocess.Popen(
            self.agent_command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=dict(os.environ),
        )

    # -- calls -------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - a per-call deadline, as in the control client
    ) -> Any:
        return await self._link.call(method, params, timeout=timeout)

    async def call_alone(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - a per-call deadline, as in the control client
    ) -> Any:
        """Call on a connection of its own, closed when the call ends: cancelling the
        awaiting task hangs up, and the agent then cancels the work (a long download)."""
        client = await ControlClient.connect(self.socket_path)
        try:
            return await client.call(method, params, timeout=timeout)
        finally:
            await client.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def fire(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        timeout: float = 30.0,
    ) -> asyncio.Task[Any]:
        """Call without awaiting (from a Qt slot); a failure goes to ``on_error``, or else is
        announced by ``call_failed``."""

        async def run() -> None:
            try:
                result = await self.call(method, params, timeout)
            except (AgentUnavailable, ControlError) as exc:
                message = describe(exc)
            else:
                if on_result is not None:
                    on_result(result)
                return
            if on_error is not None:
                on_error(message)
            else:
                self.call_failed.emit(method, message)

        return self.spawn(run())
