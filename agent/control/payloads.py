"""The control API's requests, answers and events as types (docs/control-api.md).

Shared by the agent (its handlers build these) and its clients (the tray reads
them): the wire carries JSON objects, these say which keys they have.
"""

from __future__ import annotations

LINK_LIFETIME = 7 * 24 * 3600
"""How long a shared link stays valid unless the caller says (``link_ttl_seconds``)."""
