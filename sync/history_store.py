"""The compressed-history side of a hub, for the hubs that have one (both do)."""

from __future__ import annotations

from sync.compaction import PackedHistory
from sync.remotes.base import Remote


def packed_history(remote: Remote) -> PackedHistory | None:
    """The :class:`PackedHistory` of ``remote``; None for a hub without one."""
    from sync.remotes.local import LocalHub

    if isinstance(remote, LocalHub):
        from sync.remotes.local.history import LocalHistory

        return LocalHistory(remote)
    from sync.remotes.supabase import SupabaseRemote

    if isinstance(remote, SupabaseRemote):
        from sync.remotes.supabase.history import SupabaseHistory

        return SupabaseHistory(remote)
    return None
