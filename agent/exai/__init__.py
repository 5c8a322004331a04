"""EXAI processing: the WebSocket client, the processing flow and the ``hubsync exai`` CLI."""

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
