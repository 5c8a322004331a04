"""The Supabase hub, the only part of HubSync that speaks to supabase-py.

- :mod:`.remote`: :class:`SupabaseRemote`, the :class:`sync.remotes.base.Remote`;
- :mod:`.session`: one signed-in client (tokens, retries, rate limit);
- :mod:`.files`, :mod:`.rows`, :mod:`.batch`: the PostgREST tables and their rows;
- :mod:`.tus`: resumable uploads; :mod:`.http`, :mod:`.errors`: failures as
  :mod:`sync.errors` kinds; :mod:`.token`: token lifetimes; :mod:`.schema`: the
  shipped SQL migrations.
"""

from sync.remotes.supabase.remote import MemoryResumeStore, SupabaseRemote
from sync.remotes.supabase.session import SupabaseSession, SupabaseSettings

__all__ = ["MemoryResumeStore", "SupabaseRemote", "SupabaseSession", "SupabaseSettings"]
