"""What the control handlers need from the running agent, and nothing more.

The agent (``agent/daemon/service.py``) registers the handlers and satisfies
``AgentApi`` structurally; the handlers never import the daemon, so the
dependency points one way: daemon -> control.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from agent.context import Context
from agent.control.payloads import ActivityItem, StatusSnapshot, UploadEvent
from agent.control.server import ControlServer
from agent.exai.jobs import ExaiJobs
from sync.compaction import HistoryStats
from sync.engine import PassReport
from sync.journal import Root


class HeldAnswers(Protocol):
    def apply(self, root_id: str, expected: int | None) -> int: ...
    def bring_back(self, root_id: str) -> int: ...


class LiveMetrics(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


class StoredMetrics(Protocol):
    def totals(
        self, names: Iterable[str] | None = None, *, since: float = 0.0
    ) -> dict[str, float]: ...


class CompactionFigures(Protocol):
    @property
    def stats(self) -> Mapping[str, HistoryStats]:
        """Per hub, as the hub said after the last compaction round."""


class AgentApi(Protocol):
    @property
    def ctx(self) -> Context: ...
    @property
    def server(self) -> ControlServer: ...
    @property
    def runtimes(self) -> Mapping[str, object]:
        """The folders the agent runs, by root id."""

    @property
    def activity(self) -> Iterable[ActivityItem]:
        """The latest passes and answers, newest first."""

    @property
    def metrics(self) -> LiveMetrics: ...
    @property
    def metrics_store(self) -> StoredMetrics: ...
    @property
    def held(self) -> HeldAnswers: ...
    @property
    def exai(self) -> ExaiJobs | None: ...
    @property
    def pass_lock(self) -> asyncio.Lock:
        """Held by a pass (the journal's writer is then the pass's)."""

    @property
    def compactor(self) -> CompactionFigures: ...

    def status(self) -> StatusSnapshot: ...
    def publish_status(self) -> None: ...
    def set_paused(
        self, paused: bool, root_id: str | None = None, for_seconds: float | None = None
    ) -> None: ...
    def add_root(self, root: Root) -> None: ...
    def remove_root(self, root_id: str) -> None: ...
    def rescan(self, root_id: str) -> None: ...
    def wake(self) -> None: ...
    def stop(self) -> None: ...
    def apply_settings(self) -> None: ...
    async def sync_now(self) -> list[PassReport]: ...
    async def upload(
        self, paths: list[Path], hub: str | None, link_ttl: int
    ) -> list[UploadEvent]: ...
    async def reopen_supabase(self, wait: float = 5.0) -> bool: ...
