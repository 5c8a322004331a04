"""Get a hub file onto the EXAI server's own disk when a tool reads only server paths.

The real ``smart_file_query`` accepts a ``file_path`` only when it matches the
``pattern`` of its inputSchema (``^/(app|mnt/project/(EX-AI-MCP-Server|
Personal_AI_Agent))/.*``); a desktop's paths never do. Without a disk shared
with the server (``[exai] path_map``), HubSync asks EXAI's
``smart_file_download`` to fetch the hub object (``bucket/key``) from Supabase
Storage into a folder that pattern accepts, and gives the tool the path it
answered. Facts: shared/reference/exai.md.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.exai.arguments import PATH_LIST_NAMES, PATH_NAMES, map_path
from agent.exai.client import ExaiClient
from agent.exai.errors import ExaiToolError
from agent.exai.tools import TextCallback, ToolInfo

DOWNLOAD_TOOL = "smart_file_download"
DOWNLOAD_ROOT = "/mnt/project/"
"""smart_file_download writes only below this folder."""
DOWNLOAD_DIRS = (
    "/mnt/project/Personal_AI_Agent/hubsync-downloads",
    "/mnt/project/EX-AI-MCP-Server/hubsync-downloads",
    "/mnt/project/hubsync-downloads",
)
"""Folders tried, in order, when ``[exai] download_dir`` is not set: the first one the
tool's pattern accepts wins."""
_ANSWER_PATH_KEYS = ("local_path", "path", "file_path", "destination")


def path_pattern(tool: ToolInfo) -> re.Pattern[str] | None:
    """The pattern the tool's file path argument must match, when its schema has one."""
    props = tool.properties
    for name in (*PATH_NAMES, *PATH_LIST_NAMES):
        spec = props.get(name)
        if not isinstance(spec, Mapping):
            continue
        if name in PATH_LIST_NAMES and isinstance(spec.get("items"), Mapping):
            spec = spec["items"]
        pattern = spec.get("pattern")
        if isinstance(pattern, str):
            try:
                return re.compile(pattern)
            except re.error:
                return None
        return None
    return None


def accepts(pattern: re.Pattern[str] | None, path: str) -> bool:
    return pattern is None or pattern.search(path) is not None


def shared_disk_path(
    tool: ToolInfo, file_ref: str, local_path: Path | None, path_map: Mapping[str, str]
) -> str | None:
    """The path to give ``tool`` without any download, or None when EXAI must download
    the file first: the tool has a path pattern that neither a ``path_map`` target nor
    the local path satisfies."""
    pattern = path_pattern(tool)
    mapped = map_path(file_ref, local_path, path_map)
    return mapped if accepts(pattern, mapped) else None


def download_destination(tool: ToolInfo, sha256: str, filename: str, configured: str = "") -> str:
    """A file path under /mnt/project/ that ``tool``'s pattern accepts: the configured
    folder or the first of :data:`DOWNLOAD_DIRS`, then ``<sha256>/<name>`` so that two
    versions of a file never meet (and EXAI's own cache, keyed by arguments, cannot
    answer an older one)."""
    pattern = path_pattern(tool)
    name = posixpath.basename(filename) or "file"
    folders = [configured.rstrip("/")] if configured else list(DOWNLOAD_DIRS)
    for folder in folders:
        path = f"{folder}/{sha256}/{name}"
        if path.startswith(DOWNLOAD_ROOT) and accepts(pattern, path):
            return path
    if configured:
        raise ExaiToolError(
            f"[exai] download_dir {configured} is not a folder both {DOWNLOAD_TOOL} "
            f"(under {DOWNLOAD_ROOT}) and {tool.name} ({_shown(pattern)}) accept"
        )
    raise ExaiToolError(
        f"EXAI tool {tool.name} reads only paths matching {_shown(pattern)}, and none is "
        f"under {DOWNLOAD_ROOT}, where {DOWNLOAD_TOOL} writes: set [exai] download_dir, "
        "or [exai] path_map for a disk shared with the server"
    )


async def download_to_server(
    client: ExaiClient,
    tools: Sequence[ToolInfo],
    tool: ToolInfo,
    file_ref: str,
    destination: str,
    *,
    on_progress: TextCallback | None = None,
    time_limit: float | None = None,
) -> str:
    """Ask EXAI to download ``file_ref`` (``bucket/key``) to ``destination``; the server
    path it answered, checked against ``tool``'s pattern."""
    if not any(t.name == DOWNLOAD_TOOL for t in tools):
        raise ExaiToolError(
            f"EXAI tool {tool.name} reads only files on the EXAI server, and this server has "
            f"no {DOWNLOAD_TOOL} to fetch one from the hub: configure [exai] path_map onto "
            "a disk shared with the server"
        )
    result = await client.call_tool(
        DOWNLOAD_TOOL,
        {"file_id": file_ref, "destination": destination},
        on_progress=on_progress,
        time_limit=time_limit,
    )
    path = answered_path(result.content)
    if path is None:
        raise ExaiToolError(f"EXAI tool {DOWNLOAD_TOOL} did not answer with a path")
    if not accepts(path_pattern(tool), path):
        raise ExaiToolError(
            f"EXAI downloaded the file to {path}, which {tool.name} does not accept"
        )
    return path


def answered_path(content: str) -> str | None:
    """The server path in ``smart_file_download``'s answer: the text itself, or a path
    member when it answered JSON."""
    text = content.strip()
    value: Any = None
    if text[:1] in "{[":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
    if isinstance(value, dict):
        found = next((value[k] for k in _ANSWER_PATH_KEYS if isinstance(value.get(k), str)), None)
        text = found.strip() if found else ""
    elif value is not None:
        return None
    if not text.startswith("/") or "\n" in text or "\x00" in text:
        return None
    return text


def _shown(pattern: re.Pattern[str] | None) -> str:
    return pattern.pattern if pattern is not None else "any path"
