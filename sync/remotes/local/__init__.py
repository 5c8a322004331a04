"""The embedded default hub: a folder with the Supabase layout plus a SQLite file.

- :mod:`.hub`: :class:`LocalHub`, the :class:`sync.remotes.base.Remote` (blobs);
- :mod:`.rows`, :mod:`.reads`: its rows written and read, on :mod:`.database`;
- :mod:`.schema`: the tables and the rows' shapes; :mod:`.copying`: verified copies.
"""

from typing import TYPE_CHECKING, Any

from sync.remotes.local.schema import HUB_DB, LOCAL_USER, HubMissing

if TYPE_CHECKING:
    from sync.remotes.local.hub import LocalHub

__all__ = ["HUB_DB", "LOCAL_USER", "HubMissing", "LocalHub"]


def __getattr__(name: str) -> Any:
    # LocalHub on first use: the hub's ingest workers import only the writing part.
    if name == "LocalHub":
        from sync.remotes.local.hub import LocalHub

        return LocalHub
    raise AttributeError(name)
