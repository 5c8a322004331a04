"""EXAI work inside the agent: background jobs whose progress reaches control-API clients.

Methods (``register`` puts them on the control server):

* ``exai.tools``   ``{}`` → ``[{name, description, inputSchema}]``
* ``exai.process`` ``{source, question, tool, hub?, arguments?}`` → the new job
* ``exai.cancel``  ``{job}`` → ``{cancelled}``; sends EXAI ``cancel``, then closes the connection
* ``exai.jobs``    ``{}`` → recent jobs, newest first
* ``exai.results`` ``{limit?}`` → past result files, newest first
* ``exai.status``  ``{}`` → the endpoint's health

Events: ``exai.job`` (the whole job on every state change), ``exai.progress``
``{job, message}``, ``exai.chunk`` ``{job, chunk}`` (streamed answer text).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.config import Config
from agent.control.protocol import BAD_PARAMS, BUSY, UNAVAILABLE, ControlError
from agent.exai.client import ExaiClient
from agent.exai.flow import HubRef, process_file, reason_of
from agent.exai.health import check_health
from agent.exai.results import default_results_dir, list_results
from agent.exai.settings import ExaiSettings
from agent.platform.paths import Paths
from sync.errors import SyncError
from sync.remotes.base import BUCKET_FILES, Remote

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
CHUNK_EVENT_CHARS = 256 * 1024
"""Longer streamed chunks are split so every event stays far below the frame limit."""


class Registry(Protocol):
    """What jobs need from the control server."""

    def register(self, name: str, handler: Handler) -> None: ...

    def publish(self, event: str, data: Any) -> int: ...


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Job:
    id: str
    source: str
    tool: str
    question: str
    hub: str
    state: str = "queued"
    """queued → running → completed | failed | cancelled"""
    stage: str = ""
    error: str | None = None
    error_kind: str | None = None
    file_ref: str | None = None
    result_path: str | None = None
    result_key: str | None = None
    created_at: str = field(default_factory=_now)
    finished_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExaiJobs:
    def __init__(
        self,
        client: ExaiClient,
        remotes: Mapping[str, Remote],
        *,
        default_hub: str,
        results_dir: Path,
        publish: Callable[[str, Any], object],
        path_map: Mapping[str, str] | None = None,
        download_dir: str = "",
        keep: int = 100,
        max_running: int = 16,
    ) -> None:
        self._client = client
        self._remotes = remotes
        self._default_hub = default_hub
        self._results_dir = results_dir
        self._publish = publish
        self._path_map = dict(path_map or {})
        self._download_dir = download_dir
        self._keep = keep
        self._max_running = max_running
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @classmethod
    def from_config(
        cls,
        config: Config,
        paths: Paths,
        remotes: Mapping[str, Remote],
        publish: Callable[[str, Any], object],
    ) -> ExaiJobs:
        """The agent's jobs, as the user's settings say (server, path map, results)."""
        return cls(
            ExaiClient(ExaiSettings.from_config(config.exai)),
            remotes,
            default_hub=config.default_hub(),
            results_dir=default_results_dir(config, paths),
            publish=publish,
            path_map=config.exai.path_map,
            download_dir=config.exai.download_dir,
        )

    def register(self, server: Registry) -> None:
        handlers: dict[str, Handler] = {
            "exai.tools": self.tools,
            "exai.process": self.process,
            "exai.cancel": self.cancel,
            "exai.jobs": self.jobs,
            "exai.results": self.results,
            "exai.status": self.status,
        }
        for name, handler in handlers.items():
            server.register(name, handler)

    @property
    def client(self) -> ExaiClient:
        return self._client

    @property
    def running(self) -> int:
        return len(self._tasks)

    # -- methods --------------------------------------------------------------------------

    async def tools(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        listed = await self._client.list_tools()
        return [
            {"name": t.name, "description": t.description, "inputSchema": dict(t.input_schema)}
            for t in listed
        ]

    async def process(self, params: dict[str, Any]) -> dict[str, Any]:
        source = _text(params, "source")
        tool = _text(params, "tool")
        question = str(params.get("question") or "")
        hub = str(params.get("hub") or self._default_hub)
        extra = params.get("arguments") or {}
        if not isinstance(extra, dict):
            raise ControlError(BAD_PARAMS, "arguments must be an object")
        remote = self._remotes.get(hub)
        if remote is None:
            raise ControlError(UNAVAILABLE, f"the {hub} hub is not available")
        target: Path | HubRef
        if source.startswith(BUCKET_FILES + "/"):
            try:
                target = HubRef.parse(source)
            except ValueError as exc:
                raise ControlError(BAD_PARAMS, str(exc)) from None
        else:
            target = Path(source)
            if not target.is_absolute() or not await asyncio.to_thread(target.is_file):
                raise ControlError(BAD_PARAMS, f"{source}: no such file (give an absolute path)")
        if len(self._tasks) >= self._max_running:
            raise ControlError(BUSY, f"{len(self._tasks)} EXAI jobs are running; try again later")
        job = Job(uuid.uuid4().hex, source, tool, question, hub)
        self._remember(job)
        task = asyncio.create_task(self._run(job, remote, target, extra), name=f"exai-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job.id, None))
        self._changed(job)
        return job.as_dict()

    async def cancel(self, params: dict[str, Any]) -> dict[str, bool]:
        task = self._tasks.get(_text(params, "job"))
        if task is None:
            return {"cancelled": False}
        task.cancel()
        await asyncio.wait([task])
        return {"cancelled": True}

    async def jobs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [job.as_dict() for job in reversed(self._jobs.values())]

    async def results(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        limit = params.get("limit", 200)
        if not isinstance(limit, int) or limit < 1:
            raise ControlError(BAD_PARAMS, "limit must be a positive integer")
        found = await asyncio.to_thread(list_results, self._results_dir, limit)
        return [
            {
                "path": str(r.path),
                "source": r.source,
                "tool": r.tool,
                "created": r.created.isoformat(),
                "size": r.size,
            }
            for r in found
        ]

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        health = await check_health(self._client.settings)
        return {**asdict(health), "state": health.state, "running_jobs": self.running}

    async def aclose(self) -> None:
        """Cancel running jobs (each records its failed row) and close the connections."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    # -- running ----------------------------------------------------------------------------

    async def _run(
        self, job: Job, remote: Remote, target: Path | HubRef, extra: dict[str, Any]
    ) -> None:
        job.state = "running"
        self._changed(job)
        try:
            outcome = await process_file(
                remote,
                self._client,
                target,
                job.question,
                job.tool,
                self._results_dir,
                path_map=self._path_map,
                download_dir=self._download_dir,
                extra_arguments=extra,
                on_stage=lambda message: self._stage(job, message),
                on_progress=lambda message: self._progress(job, message),
                on_chunk=lambda chunk: self._chunk(job, chunk),
            )
        except asyncio.CancelledError:
            self._finish(job, "cancelled", error="cancelled", kind="cancelled")
            raise
        except SyncError as exc:
            self._finish(job, "failed", error=exc.message, kind=exc.kind)
        except Exception as exc:
            log.exception("EXAI job %s failed unexpectedly", job.id)
            self._finish(job, "failed", error=reason_of(exc), kind="error")
        else:
            job.file_ref = outcome.file_ref
            job.result_path = str(outcome.result_path)
            job.result_key = outcome.result_key
            self._finish(job, "completed")

    def _stage(self, job: Job, message: str) -> None:
        job.stage = message
        self._changed(job)

    def _progress(self, job: Job, message: str) -> None:
        self._publish("exai.progress", {"job": job.id, "message": message})

    def _chunk(self, job: Job, chunk: str) -> None:
        for start in range(0, len(chunk), CHUNK_EVENT_CHARS):
            piece = chunk[start : start + CHUNK_EVENT_CHARS]
            self._publish("exai.chunk", {"job": job.id, "chunk": piece})

    def _finish(
        self, job: Job, state: str, *, error: str | None = None, kind: str | None = None
    ) -> None:
        job.state, job.error, job.error_kind = state, error, kind
        job.finished_at = _now()
        self._changed(job)

    def _changed(self, job: Job) -> None:
        self._publish("exai.job", job.as_dict())

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        for job_id in list(self._jobs):
            if len(self._jobs) <= self._keep:
                break
            if job_id not in self._tasks:  # running jobs are never forgotten
                del self._jobs[job_id]


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(BAD_PARAMS, f"{name} is required (a non-empty string)")
    return value
