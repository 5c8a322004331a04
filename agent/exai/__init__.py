"""EXAI processing: the WebSocket client, the processing flow and the ``hubsync exai`` CLI.

The names below load their modules when first used: the client pulls in websockets,
which a CLI that only reads the EXAI settings should not load at start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.exai.client import ExaiClient
    from agent.exai.errors import (
        ExaiAuthError,
        ExaiError,
        ExaiOverCapacity,
        ExaiProtocolError,
        ExaiTimeout,
        ExaiToolError,
        ExaiUnavailable,
    )
    from agent.exai.settings import ExaiSettings, read_token
    from agent.exai.tools import ToolInfo, ToolResult

_HOMES = {
    "ExaiAuthError": "errors",
    "ExaiClient": "client",
    "ExaiError": "errors",
    "ExaiOverCapacity": "errors",
    "ExaiProtocolError": "errors",
    "ExaiSettings": "settings",
    "ExaiTimeout": "errors",
    "ExaiToolError": "errors",
    "ExaiUnavailable": "errors",
    "ToolInfo": "tools",
    "ToolResult": "tools",
    "read_token": "settings",
}

__all__ = [
    "ExaiAuthError",
    "ExaiClient",
    "ExaiError",
    "ExaiOverCapacity",
    "ExaiProtocolError",
    "ExaiSettings",
    "ExaiTimeout",
    "ExaiToolError",
    "ExaiUnavailable",
    "ToolInfo",
    "ToolResult",
    "read_token",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
