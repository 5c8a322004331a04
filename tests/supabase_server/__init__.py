"""A Supabase-compatible HTTP server for tests (auth, storage, TUS, REST).

/rest/v1 runs as SQL on a real PostgreSQL database with the project's
migrations (see :mod:`.rest`); auth, storage and TUS state live in memory.

In tests use the fixtures of :mod:`tests.fixtures.supabase`. By hand::

    python -m tests.supabase_server --port 54321 --jwt-secret SECRET [--database-url URL]

prints the URL, the anon key and the service-role key (HS256 JWTs signed with
the secret, like a real project's) and serves until interrupted. See
:class:`SupabaseTestServer` for the Python API.
"""

from __future__ import annotations

from .app import DEFAULT_BUCKETS, SupabaseTestServer
from .auth import Identity
from .faults import Faults, LogEntry, RequestLog
from .tus import CHUNK

__all__ = [
    "CHUNK",
    "DEFAULT_BUCKETS",
    "Faults",
    "Identity",
    "LogEntry",
    "RequestLog",
    "SupabaseTestServer",
]
