"""Fill a tool's arguments from its input schema: file reference, path, question, hash.

EXAI's argument names vary between tools and versions, so the names are
looked up in the schema instead of being hard-coded per tool. A tool that wants
a path on the server's own disk gets ``server_path`` when the caller has one
(see :mod:`agent.exai.server_files`: a download by EXAI, or a shared disk),
else one through ``path_map`` (local or hub prefix → server prefix); without a
matching mapping it gets the local path (right when EXAI runs on this machine)
or else the hub reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.exai.errors import ExaiToolError
from agent.exai.tools import ToolInfo

FILE_REF_NAMES = ("file_id", "file_ref", "file_reference", "file_key", "storage_path")
PATH_NAMES = ("file_path", "path", "filepath", "file")
PATH_LIST_NAMES = ("files", "file_paths", "absolute_file_paths")
QUESTION_NAMES = ("question", "prompt", "query", "message", "instructions", "request")
HASH_NAMES = ("sha256", "file_sha256", "sha256_hash", "content_hash", "file_hash")


def _first(names: tuple[str, ...], props: Mapping[str, Any]) -> str | None:
    return next((n for n in names if n in props), None)


def map_path(file_ref: str, local_path: Path | None, path_map: Mapping[str, str]) -> str:
    """The path EXAI should open: the longest ``path_map`` prefix matching the local path
    or the hub reference wins; else the local path, else the hub reference."""
    candidates = [local_path.as_posix()] if local_path is not None else []
    candidates.append(file_ref)
    prefixes = sorted(path_map.items(), key=lambda kv: len(kv[0]), reverse=True)
    for candidate in candidates:
        for prefix, target in prefixes:
            base = prefix.rstrip("/")
            if base and (candidate == base or candidate.startswith(base + "/")):
                return target.rstrip("/") + candidate[len(base) :]
    return candidates[0]


def wants_path(tool: ToolInfo) -> bool:
    """True when ``tool`` gets the file as a path (on the server's disk), not a reference."""
    props = tool.properties
    ref_name = _first(FILE_REF_NAMES, props)
    path_name = _first(PATH_NAMES, props)
    if path_name:
        return not ref_name or path_name in tool.required
    return not ref_name and _first(PATH_LIST_NAMES, props) is not None


def build_arguments(
    tool: ToolInfo,
    *,
    file_ref: str,
    sha256: str,
    question: str,
    local_path: Path | None = None,
    path_map: Mapping[str, str] | None = None,
    server_path: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Arguments for calling ``tool`` on one hub file; raises ExaiToolError when the
    schema asks for something HubSync cannot fill (name it in ``extra`` then)."""
    props = tool.properties
    required = set(tool.required)
    args: dict[str, Any] = {}
    ref_name = _first(FILE_REF_NAMES, props)
    path_name = _first(PATH_NAMES, props)
    list_name = _first(PATH_LIST_NAMES, props)
    path = server_path or map_path(file_ref, local_path, path_map or {})
    if ref_name:
        args[ref_name] = file_ref
    if path_name and (not ref_name or path_name in required):
        args[path_name] = path
    if list_name and not ref_name and not path_name:
        args[list_name] = [path]
    if not (ref_name or path_name or list_name):
        raise ExaiToolError(f"EXAI tool {tool.name} takes no file argument")

    question_name = _first(QUESTION_NAMES, props)
    if question_name and question:
        args[question_name] = question
    elif question:
        raise ExaiToolError(f"EXAI tool {tool.name} takes no question or prompt")

    hash_name = _first(HASH_NAMES, props)
    if hash_name:
        args[hash_name] = sha256
    elif tool.input_schema.get("additionalProperties") is not False:
        # EXAI caches answers per (tool, arguments) for 5 minutes: the hash keeps a
        # changed file from being answered from that cache.
        args["sha256"] = sha256

    args.update(extra or {})
    missing = sorted(r for r in required if r not in args)
    if missing:
        raise ExaiToolError(
            f"EXAI tool {tool.name} needs {', '.join(missing)}, which HubSync cannot fill"
        )
    return args
