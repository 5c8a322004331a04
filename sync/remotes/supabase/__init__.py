"""The Supabase hub, the only part of HubSync that speaks to supabase-py.

- :mod:`.remote`: :class:`SupabaseRemote`, the :class:`sync.remotes.base.Remote`;
  :mod:`.manifest`: its reads of the manifest; :mod:`.blobs`: bytes to and from Storage;
- :mod:`.session`: one signed-in client (tokens, retries, rate limit); :mod:`.auth`:
  where the agent keeps a session;
- :mod:`.files`, :mod:`.rows`, :mod:`.batch`: the PostgREST tables and their rows;
- :mod:`.tus`: resumable uploads; :mod:`.http`, :mod:`.errors`: failures as
  :mod:`sync.errors` kinds; :mod:`.token`: token lifetimes; :mod:`.schema`: the
  shipped SQL migrations.

The names below load their modules when first used, so that importing one module
of the package (the schema, the sign-in storage) does not load them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.remotes.supabase.remote import MemoryResumeStore, SupabaseRemote
    from sync.remotes.supabase.session import SupabaseSession, SupabaseSettings

_HOMES = {
    "MemoryResumeStore": "remote",
    "SupabaseRemote": "remote",
    "SupabaseSession": "session",
    "SupabaseSettings": "session",
}

__all__ = ["MemoryResumeStore", "SupabaseRemote", "SupabaseSession", "SupabaseSettings"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
