"""What the agent keeps of a Supabase sign-in: the interface supabase-py writes its
session through, and the key it writes it under."""

from supabase_auth import AsyncSupportedStorage as SessionStorage

from sync.remotes.supabase.names import SESSION_KEY

__all__ = ["SESSION_KEY", "SessionStorage"]
