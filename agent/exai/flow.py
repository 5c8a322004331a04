"""Process one file with EXAI: hub upload, tool call, result file, ``process`` rows.

The ``file_operations`` log is append-only, so the life of one processing is a
series of rows sharing ``metadata.op_id``: ``pending`` → ``processing`` →
``completed`` or ``failed``. Once ``pending`` is written, a final row is
written on every path — errors and cancellation included — so nothing stays
half-recorded. Blobs (the file, then the result) are stored and made durable
before any row points at them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from agent.exai.arguments import build_arguments, wants_path
from agent.exai.client import ExaiClient
from agent.exai.errors import ExaiToolError
from agent.exai.results import write_result
from agent.exai.server_files import (
    download_destination,
    download_to_server,
    path_pattern,
    shared_disk_path,
)
from agent.exai.tools import TextCallback, ToolInfo, ToolResult
from sync.errors import SyncError
from sync.hashing import hash_file
from sync.keys import sha_from_key
from sync.remotes.base import (
    BUCKET_FILES,
    BUCKET_RESULTS,
    Operation,
    Remote,
    guess_content_type,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_QUESTION_META = 500
_FINAL_ROW_TIME_LIMIT = 30.0


@dataclass(frozen=True)
class HubRef:
    """A file already in the hub, named by its key."""

    key: str
    sha256: str
    filename: str
    size: int = 0

    @property
    def file_ref(self) -> str:
        return f"{BUCKET_FILES}/{self.key}"

    @classmethod
    def parse(cls, ref: str) -> HubRef:
        """``user-files/<user>/<sha[:2]>/<sha>/<name>`` (the bucket prefix is optional)."""
        key = ref.removeprefix(BUCKET_FILES + "/")
        sha = sha_from_key(key)
        if sha is None:
            raise ValueError(f"not a hub file reference: {ref!r}")
        return cls(key=key, sha256=sha, filename=key.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class ProcessOutcome:
    op_id: str
    tool: str
    file_ref: str
    sha256: str
    result: ToolResult
    result_path: Path
    result_key: str
    duration_ms: int


@dataclass
class _Record:
    """The rows of one processing, written through ``remote.log_operations``."""

    remote: Remote
    sha256: str
    size: int
    metadata: dict[str, str]
    key: str | None = None
    started_at: str = field(default_factory=lambda: _now())
    started: float = field(default_factory=time.monotonic)

    async def log(self, status: str, error: str | None = None, **extra: str) -> None:
        self.metadata.update(extra)
        final = status in ("completed", "failed")
        op = Operation(
            operation="process",
            status=status,
            key=self.key,
            sha256=self.sha256,
            bytes=self.size,
            started_at=self.started_at,
            finished_at=_now() if final else "",
            duration_ms=self.elapsed_ms if final else 0,
            error=error,
            metadata=dict(self.metadata),
        )
        await self.remote.log_operations([op])

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def reason_of(exc: BaseException) -> str:
    """The user-facing reason stored in a failed row (never a secret, never a traceback)."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, SyncError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


async def process_file(
    remote: Remote,
    client: ExaiClient,
    source: Path | HubRef | str,
    question: str,
    tool: str,
    results_dir: Path,
    *,
    path_map: Mapping[str, str] | None = None,
    download_dir: str = "",
    extra_arguments: Mapping[str, Any] | None = None,
    tools: Sequence[ToolInfo] | None = None,
    on_progress: TextCallback | None = None,
    on_chunk: TextCallback | None = None,
    on_stage: TextCallback | None = None,
    time_limit: float | None = None,
) -> ProcessOutcome:
    """Ask EXAI's ``tool`` about ``source`` (a local path or a hub reference) and keep
    the answer: in ``results_dir`` and in the ``results`` bucket. A tool that reads only
    server paths gets the file through ``path_map`` (a shared disk) or, without one, by
    EXAI downloading it from the hub first (``download_dir``: where on the server).
    Raises the error that made it fail after recording it."""
    stage: Callable[[str], None] = on_stage or (lambda _msg: None)
    source = _as_source(source)
    local_path: Path | None = None
    if isinstance(source, Path):
        local_path = source
        stage(f"hashing {local_path.name}")
        hashed = await asyncio.to_thread(hash_file, local_path)
        sha256, size, filename = hashed.sha256, hashed.size, local_path.name
    else:
        sha256, size, filename = source.sha256, source.size, source.filename

    metadata = {
        "op_id": uuid.uuid4().hex,
        "tool": tool,
        "filename": filename,
        "question": question[:_MAX_QUESTION_META],
    }
    record = _Record(remote, sha256, size, metadata)
    if isinstance(source, HubRef):
        record.key = source.key
    await record.log("pending")
    try:
        if local_path is not None:
            stage("checking the hub")
            record.key = await _ensure_in_hub(remote, local_path, sha256, size, filename)
        assert record.key is not None
        file_ref = f"{BUCKET_FILES}/{record.key}"
        await record.log("processing", file_ref=file_ref)

        listed = tools if tools is not None else await client.list_tools()
        info = _tool_info(listed, tool)
        server_path: str | None = None
        if wants_path(info):
            server_path = shared_disk_path(info, file_ref, local_path, path_map or {})
            if server_path is None:  # no shared disk: EXAI downloads the file from the hub
                _check_server_can_download(remote, info)
                stage("EXAI is fetching the file from the hub")
                name = record.key.rsplit("/", 1)[-1]
                server_path = await download_to_server(
                    client,
                    listed,
                    info,
                    file_ref,
                    download_destination(info, sha256, name, download_dir),
                    on_progress=on_progress,
                    time_limit=time_limit,
                )
                record.metadata["server_path"] = server_path

        stage(f"asking EXAI ({tool})")
        args = build_arguments(
            info,
            file_ref=file_ref,
            sha256=sha256,
            question=question,
            local_path=local_path,
            path_map=path_map,
            server_path=server_path,
            extra=extra_arguments,
        )
        result = await client.call_tool(
            tool, args, on_progress=on_progress, on_chunk=on_chunk, time_limit=time_limit
        )
        stage("saving the result")
        saved = await _save_whole(_save(remote, record, results_dir, filename, tool, result))
    except BaseException as exc:
        await _log_failure(record, exc)
        raise
    result_path, result_key = saved
    return ProcessOutcome(
        op_id=metadata["op_id"],
        tool=tool,
        file_ref=file_ref,
        sha256=sha256,
        result=result,
        result_path=result_path,
        result_key=result_key,
        duration_ms=record.elapsed_ms,
    )


async def _save(
    remote: Remote, record: _Record, results_dir: Path, filename: str, tool: str, result: ToolResult
) -> tuple[Path, str]:
    """The answer into the results folder and bucket, then the ``completed`` row."""
    result_path = await asyncio.to_thread(
        write_result, results_dir, filename, tool, result.content, structured=result.structured
    )
    record.metadata["result_file"] = result_path.name
    result_key = await _upload_result(remote, result_path, result)
    await record.log(
        "completed",
        result_key=f"{BUCKET_RESULTS}/{result_key}",
        content_type=result.content_type,
    )
    return result_path, result_key


async def _save_whole(saving: Coroutine[Any, Any, T]) -> T:
    """Run ``saving`` to its end even when cancelled meanwhile: once EXAI has answered, a
    cancel is too late and the answer is kept whole (file, bucket object and
    ``completed`` row), never half of it. The cancel is then taken back
    (``Task.uncancel``), so the caller sees the completed job it is."""
    task = asyncio.ensure_future(saving)
    cancels = 0
    try:
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
                cancels += 1
                if task.done():
                    return task.result()
    finally:
        current = asyncio.current_task()
        if cancels and current is not None and not task.cancelled():
            for _ in range(cancels):
                current.uncancel()
            log.info("a cancel came after EXAI had answered; the answer was kept")


def _check_server_can_download(remote: Remote, tool: ToolInfo) -> None:
    """EXAI's smart_file_download fetches from Supabase Storage only."""
    if remote.kind == "supabase":
        return
    pattern = path_pattern(tool)
    shown = pattern.pattern if pattern is not None else "server paths"
    raise ExaiToolError(
        f"EXAI tool {tool.name} reads only files on the EXAI server ({shown}); EXAI can "
        f"fetch them from the Supabase hub, not from the {remote.kind} hub: use the "
        "Supabase hub, or map a disk shared with the server in [exai] path_map"
    )


def _as_source(source: Path | HubRef | str) -> Path | HubRef:
    if isinstance(source, str):
        if source.startswith(BUCKET_FILES + "/"):
            return HubRef.parse(source)
        source = Path(source)
    if isinstance(source, Path):
        return source.expanduser().absolute()
    return source


async def _ensure_in_hub(remote: Remote, path: Path, sha256: str, size: int, filename: str) -> str:
    found = await remote.find_blobs([sha256])
    if sha256 in found:
        return found[sha256]
    key = await remote.put_blob(path, sha256, size, filename, guess_content_type(filename))
    await remote.record([])  # make the new blob durable (and listed) before rows name it
    return key


def _tool_info(listed: Sequence[ToolInfo], name: str) -> ToolInfo:
    for info in listed:
        if info.name == name:
            return info
    raise ExaiToolError(f"EXAI has no tool named {name!r}", code="TOOL_NOT_FOUND")


async def _upload_result(remote: Remote, path: Path, result: ToolResult) -> str:
    hashed = await asyncio.to_thread(hash_file, path)
    content_type = "application/json" if result.structured else "text/markdown"
    key = await remote.put_blob(
        path, hashed.sha256, hashed.size, path.name, content_type, bucket=BUCKET_RESULTS
    )
    await remote.record([])
    return key


async def _log_failure(record: _Record, exc: BaseException) -> None:
    """Write the ``failed`` row; shielded so a second cancel cannot lose it."""
    reason = reason_of(exc)
    cancelled = isinstance(exc, asyncio.CancelledError)
    record.metadata["error_kind"] = "cancelled" if cancelled else getattr(exc, "kind", "error")
    try:
        async with asyncio.timeout(_FINAL_ROW_TIME_LIMIT):
            await asyncio.shield(record.log("failed", error=reason))
    except Exception as log_exc:  # the original error is the one to report
        log.warning("could not record the failed process row: %s", reason_of(log_exc))
