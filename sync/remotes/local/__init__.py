"""The embedded default hub: a folder with the Supabase layout plus a SQLite file.

- :mod:`.hub`: :class:`LocalHub`, the :class:`sync.remotes.base.Remote` (blobs);
- :mod:`.rows`, :mod:`.reads`: its rows written and read, on :mod:`.database`;
- :mod:`.schema`: the tables and the rows' shapes; :mod:`.copying`: verified copies.
"""

from sync.remotes.local.hub import LocalHub
from sync.remotes.local.schema import HUB_DB, LOCAL_USER, HubMissing

__all__ = ["HUB_DB", "LOCAL_USER", "HubMissing", "LocalHub"]
