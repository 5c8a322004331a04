"""Control API methods that read the hub across devices (``hub.*``, docs/control-api.md).

The same work as ``hubsync devices/find/get/pull`` (agent/hub/reads.py), done by the
agent with its own hubs and download cache; downloads report ``hub_download`` events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.control.payloads import HubDownloadEvent
from agent.control.protocol import BAD_PARAMS, ControlError
from agent.control.service_api import AgentApi
from agent.hub.reads import (
    HubReadError,
    find_files,
    get_file,
    list_devices,
    pull_folder,
    versions_of,
)
from sync.find import FindQuery
from sync.remotes.base import ManifestEntry

EVENT = "hub_download"
EVERY = 0.2
"""Seconds between two progress events of one download (and one at its end)."""


def _text(params: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = params.get(key, "")
    if not isinstance(value, str) or (required and not value) or "\0" in value:
        raise ControlError(
            BAD_PARAMS, f"'{key}' must be a string" + (" (given)" if required else "")
        )
    return value


def _int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ControlError(BAD_PARAMS, f"'{key}' must be a number of bytes")
    return value


def _time_ns(params: dict[str, Any], key: str) -> int | None:
    return int(_when(params, key).timestamp() * 1e9) if params.get(key) else None


def _when(params: dict[str, Any], key: str) -> datetime:
    try:
        return datetime.fromisoformat(_text(params, key)).astimezone()
    except ValueError:
        raise ControlError(BAD_PARAMS, f"'{key}' must be an ISO date and time") from None


def _utc(params: dict[str, Any]) -> str:
    return _when(params, "at").astimezone(UTC).isoformat() if params.get("at") else ""


def _folder(params: dict[str, Any]) -> Path:
    text = _text(params, "to", required=True)
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ControlError(BAD_PARAMS, "'to' must be an absolute folder")
    return path


class DownloadProgress:
    """Bytes of one download as ``hub_download`` events, at most every EVERY seconds.

    Made on the loop; ``moved`` is also called from the threads that land files in
    place, so it hands the count over to the loop, where events are published."""

    def __init__(self, publish: Callable[[str, Any], int], source: str) -> None:
        self._publish = publish
        self._loop = asyncio.get_running_loop()
        self.source = source
        self.done = 0
        self.total = 0
        self.files_done = 0
        self.files_total = 0
        self._last = 0.0

    def sized(self, entry: ManifestEntry) -> None:
        self.total, self.files_total = entry.size, 1
        self._send(force=True)

    def listed(self, entries: list[ManifestEntry]) -> None:
        self.total, self.files_total = sum(e.size for e in entries), len(entries)
        self._send(force=True)

    def moved(self, n: int) -> None:
        self._loop.call_soon_threadsafe(self._moved, n)

    def _moved(self, n: int) -> None:
        self.done += n
        self._send()

    def file_done(self, _entry: ManifestEntry) -> None:
        self.files_done += 1
        self._send()

    def finish(self, ok: bool) -> None:
        self._send(force=True, state="done" if ok else "failed")

    def _send(self, *, force: bool = False, state: str = "running") -> None:
        now = time.monotonic()
        if not force and now - self._last < EVERY:
            return
        self._last = now
        event: HubDownloadEvent = {
            "source": self.source,
            "state": state,
            "bytes_done": self.done,
            "bytes_total": self.total,
            "files_done": self.files_done,
            "files_total": self.files_total,
        }
        self._publish(EVENT, event)


async def _reported(progress: DownloadProgress, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Await a download, its last progress event saying how it ended."""
    try:
        result = await work
    except HubReadError as exc:
        progress.finish(ok=False)
        raise ControlError("not_found", exc.message) from None
    progress.finish(ok=True)
    return result


def register_hub_handlers(agent: AgentApi) -> None:
    ctx = agent.ctx

    async def devices(params: dict[str, Any]) -> dict[str, Any]:
        try:
            rows = await list_devices(ctx.remotes, ctx.unavailable, ctx.journal.device_id)
        except HubReadError as exc:
            raise ControlError("unavailable", exc.message) from None
        return {"devices": rows}

    async def find(params: dict[str, Any]) -> dict[str, Any]:
        query = FindQuery(
            pattern=_text(params, "pattern"),
            ext=_text(params, "type"),
            larger=_int(params, "larger"),
            smaller=_int(params, "smaller"),
            since_ns=_time_ns(params, "since"),
            until_ns=_time_ns(params, "until"),
            sha256=_text(params, "sha"),
            deleted=bool(params.get("deleted", False)),
        )
        device, folder = _text(params, "device"), _text(params, "folder")
        try:
            rows = await find_files(ctx.remotes, ctx.unavailable, query, device, folder)
        except HubReadError as exc:
            raise ControlError("not_found", exc.message) from None
        return {"files": rows}

    async def versions(params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await versions_of(
                ctx.remotes, ctx.unavailable, _text(params, "source", required=True)
            )
        except HubReadError as exc:
            raise ControlError("not_found", exc.message) from None

    async def get(params: dict[str, Any]) -> dict[str, Any]:
        source = _text(params, "source", required=True)
        progress = DownloadProgress(agent.server.publish, source)
        return await _reported(
            progress,
            get_file(
                ctx.remotes,
                ctx.unavailable,
                ctx.cache,
                source,
                _folder(params),
                at_utc=_utc(params),
                on_size=progress.sized,
                moved=progress.moved,
                journal=ctx.journal,
                this_name=ctx.config.device_name,
            ),
        )

    async def pull(params: dict[str, Any]) -> dict[str, Any]:
        source = _text(params, "source", required=True)
        progress = DownloadProgress(agent.server.publish, source)
        return await _reported(
            progress,
            pull_folder(
                ctx.remotes,
                ctx.unavailable,
                ctx.cache,
                source,
                _folder(params),
                at_utc=_utc(params),
                on_entries=progress.listed,
                progress=progress.file_done,
                moved=progress.moved,
            ),
        )

    for name, handler in {
        "hub.devices": devices,
        "hub.find": find,
        "hub.versions": versions,
        "hub.get": get,
        "hub.pull": pull,
    }.items():
        agent.server.register(name, handler)
