"""What EXAI tools are, and what one call answered (outputs parsed, errors typed)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.exai.errors import ExaiToolError

TextCallback = Callable[[str], None]
"""Receives one progress message or one streamed chunk."""

_MAX_REASON = 300


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def properties(self) -> Mapping[str, Any]:
        props = self.input_schema.get("properties")
        return props if isinstance(props, Mapping) else {}

    @property
    def required(self) -> list[str]:
        req = self.input_schema.get("required")
        return [str(r) for r in req] if isinstance(req, list) else []


@dataclass(frozen=True)
class ToolResult:
    """The answer of one call, unwrapped from EXAI's ``{status, content, ...}`` envelope."""

    tool: str
    content: str
    content_type: str
    metadata: Mapping[str, Any]
    structured: bool
    """True when ``content`` is JSON (written as ``.json``)."""
    streamed: str = ""

    @property
    def extension(self) -> str:
        return "json" if self.structured else "md"


def _json_value(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def parse_outputs(tool: str, outputs: object, streamed: str = "") -> ToolResult:
    """Turn ``call_tool_res.outputs`` into a result; a ``status: error`` envelope raises."""
    texts = [
        o["text"]
        for o in (outputs if isinstance(outputs, list) else [])
        if isinstance(o, dict)
        and o.get("type", "text") == "text"
        and isinstance(o.get("text"), str)
    ]
    text = "\n".join(texts) if texts else streamed
    value = _json_value(text)
    if isinstance(value, dict) and "status" in value:
        metadata = value.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        content = value.get("content")
        if str(value["status"]).lower() in ("error", "failed", "failure"):
            reason = content or metadata.get("error") or "no reason given"
            raise ExaiToolError(f"EXAI tool {tool} reported an error: {short(reason)}")
        content_type = str(value.get("content_type") or "text")
        if isinstance(content, str) and content_type == "json":
            content = _json_value(content) if _json_value(content) is not None else content
        if isinstance(content, dict | list):
            body = json.dumps(content, indent=2, ensure_ascii=False)
            return ToolResult(tool, body, "json", metadata, True, streamed)
        body = "" if content is None else str(content)
        return ToolResult(tool, body, content_type, metadata, False, streamed)
    if isinstance(value, dict | list):
        body = json.dumps(value, indent=2, ensure_ascii=False)
        return ToolResult(tool, body, "json", {}, True, streamed)
    return ToolResult(tool, text, "text", {}, False, streamed)


def short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def tool_info(raw: Mapping[str, Any]) -> ToolInfo:
    schema = raw.get("inputSchema") or raw.get("input_schema") or {}
    return ToolInfo(
        name=str(raw.get("name", "")),
        description=str(raw.get("description") or ""),
        input_schema=schema if isinstance(schema, dict) else {},
    )
