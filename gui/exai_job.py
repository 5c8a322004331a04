"""One EXAI job: its request from the dialog's form, then followed on a control-API
connection of its own.

The connection subscribes to the ``exai.*`` events before the job starts, so no
event of the job is missed; it is closed when the job ended or the caller stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.control.client import ControlClient
from agent.control.payloads import ExaiProcessParams
from agent.control.protocol import Event
from gui.schema_form import FormError, SchemaForm

EVENTS = ["exai.job", "exai.progress", "exai.chunk"]
FINAL_STATES = ("completed", "failed", "cancelled")
CALL_TIMEOUT = 30.0
SLICE_SECONDS = 0.01
"""Longest run of events applied before Qt gets to paint."""


@dataclass(frozen=True)
class JobWatch:
    """What a followed job reports: its state changes, progress messages, answer chunks."""

    on_job: Callable[[dict[str, Any]], None]
    on_progress: Callable[[str], None]
    on_chunk: Callable[[str], None]


def process_params(
    source: str, tool: dict[str, Any] | None, form: SchemaForm | None, question: str
) -> ExaiProcessParams:
    """The ``exai.process`` request for ``tool`` on ``source`` with the form's arguments;
    FormError when something the tool needs is missing."""
    if tool is None or form is None:
        raise FormError("Choose a tool first.")
    if not source:
        raise FormError("Choose a file first.")
    arguments = form.arguments()
    question = question.strip()
    field = form.question_field
    if field is not None and field.required and not question:
        raise FormError("Write a question first.")
    params: ExaiProcessParams = {"source": source, "tool": str(tool["name"])}
    if question and field is not None:
        params["question"] = question
    if arguments:
        params["arguments"] = arguments
    return params


async def run_job(
    socket_path: Path, params: ExaiProcessParams, watch: JobWatch
) -> dict[str, Any] | None:
    """Start ``exai.process`` and apply its events until it ends: the job as it ended, or
    None when the connection ended first. AgentUnavailable / ControlError propagate."""
    client = await ControlClient.connect(socket_path)
    try:
        events = await client.subscribe(EVENTS)
        job = await client.call("exai.process", params, timeout=CALL_TIMEOUT)
        watch.on_job(job)
        return await _follow(events, str(job["id"]), watch)
    finally:
        await client.close()


async def _follow(
    events: AsyncIterator[Event], job_id: str, watch: JobWatch
) -> dict[str, Any] | None:
    slice_start = time.monotonic()
    async for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        if event.event == "exai.job" and data.get("id") == job_id:
            watch.on_job(data)
            if data.get("state") in FINAL_STATES:
                return data
        elif event.event == "exai.progress" and data.get("job") == job_id:
            watch.on_progress(str(data.get("message", "")))
        elif event.event == "exai.chunk" and data.get("job") == job_id:
            watch.on_chunk(str(data.get("chunk", "")))
        if time.monotonic() - slice_start > SLICE_SECONDS:
            await asyncio.sleep(0)  # let Qt paint between bursts of chunks
            slice_start = time.monotonic()
    return None
