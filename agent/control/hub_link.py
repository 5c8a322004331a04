"""``hub.link``: a link to one hub file of any device, and its reference for EXAI.

What the Hub window's "Copy link" and "Ask EXAI…" need: the version of ``DEVICE:PATH``
(current, or the one current at ``at``), a signed URL to it (a ``file://`` URL on the
local hub, as ``upload_paths`` answers) and ``user-files/<key>``, which ``exai.process``
takes as its ``source``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent.control.payloads import LINK_LIFETIME
from agent.control.protocol import BAD_PARAMS, ControlError
from agent.control.service_api import AgentApi
from agent.hub.reads import locate
from sync.errors import PermanentError
from sync.pull import file_version
from sync.remotes.base import BUCKET_FILES, Remote


async def link_to(
    remotes: Mapping[str, Remote],
    unavailable: Mapping[str, str],
    source: str,
    ttl_seconds: int,
    at_utc: str = "",
) -> dict[str, Any]:
    """The link and EXAI reference of one file version (PermanentError when there is none)."""
    at = await locate(remotes, dict(unavailable), source, file=True)
    entry = await file_version(
        at.remote, at.device.device_id, at.folder.root_id, at.relpath, at_utc
    )
    return {
        "hub": at.hub,
        "device": at.device.name,
        "folder": at.folder.path,
        "path": at.relpath,
        "version": entry.version,
        "sha256": entry.sha256,
        "link": await at.remote.signed_url(entry.key, ttl_seconds),
        "link_ttl_seconds": ttl_seconds,
        "ref": f"{BUCKET_FILES}/{entry.key}",
    }


def register_hub_link(agent: AgentApi) -> None:
    ctx = agent.ctx

    async def link(params: dict[str, Any]) -> dict[str, Any]:
        source, at = params.get("source"), params.get("at") or ""
        ttl = params.get("link_ttl_seconds", LINK_LIFETIME)
        if not isinstance(source, str) or not source:
            raise ControlError(BAD_PARAMS, "'source' must be a string (given)")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            raise ControlError(BAD_PARAMS, "'link_ttl_seconds' must be a positive integer")
        try:
            at_utc = datetime.fromisoformat(at).astimezone(UTC).isoformat() if at else ""
        except (TypeError, ValueError):
            raise ControlError(BAD_PARAMS, "'at' must be an ISO date and time") from None
        try:
            return await link_to(ctx.remotes, ctx.unavailable, source, ttl, at_utc)
        except PermanentError as exc:
            raise ControlError("not_found", exc.message) from None

    agent.server.register("hub.link", link)
