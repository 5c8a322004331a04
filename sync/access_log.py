"""The hub's read log (``file_operations`` download rows of every device) as
:class:`sync.prefetch.Access` records, read incrementally."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sync.keys import sha_from_key
from sync.prefetch import Access


@runtime_checkable
class ReadLogSource(Protocol):
    """A hub whose read log can be read back (both hubs)."""

    async def read_log(self, since: str, limit: int = 5000) -> list[dict[str, Any]]: ...


def to_access(row: dict[str, Any]) -> Access | None:
    """One log row as an access; None for a row that does not name a file version."""
    meta = row.get("metadata") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    key = str(row.get("file_id") or "")
    sha = sha_from_key(key)
    owner, root, rel = (str(meta.get(k) or "") for k in ("device_id", "root_path", "rel_path"))
    try:
        at = datetime.fromisoformat(str(row.get("started_at"))).timestamp()
    except ValueError:
        return None
    if sha is None or not (owner and rel):
        return None
    # The rows do not say which device read (device_id is the file's owner): sessions
    # are taken across devices.
    return Access(f"{owner}/{root.strip('/')}/{rel}", sha, key, int(row.get("bytes") or 0), at)
