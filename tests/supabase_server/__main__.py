"""Run the Supabase test server by hand.

    python -m tests.supabase_server [--port 54321] [--jwt-secret S] [--user EMAIL:PASSWORD]
                                    [--database-url URL [--skip-migrations]]

Prints the URL, anon key and service-role key, then serves until Ctrl-C or
SIGTERM. Point ``SUPABASE_URL``/``SUPABASE_ANON_KEY`` at it to run the agent
and tray against it; another storage server sharing ``--jwt-secret`` accepts
its tokens. /rest/v1 runs on the PostgreSQL database at ``--database-url``
(a real-storage one, say; the project's migrations are applied to it first,
they are idempotent), otherwise on a private cluster the server starts and
removes on exit. Auth and storage state is kept in memory only.
"""

from __future__ import annotations

import argparse
import signal
import threading

import psycopg
import pytest

from .app import SupabaseTestServer
from .database import apply_migrations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.supabase_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=54321)
    parser.add_argument("--jwt-secret", default=None, help="HS256 secret (random when omitted)")
    parser.add_argument("--access-token-ttl", type=int, default=3600)
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD",
        help="create a user at start",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL database for /rest/v1 (default: a private cluster)",
    )
    parser.add_argument(
        "--skip-migrations",
        action="store_true",
        help="do not apply resources/supabase/migrations to --database-url",
    )
    args = parser.parse_args(argv)
    server = SupabaseTestServer(
        jwt_secret=args.jwt_secret,
        host=args.host,
        port=args.port,
        access_token_ttl=args.access_token_ttl,
        database_url=args.database_url,
    )
    try:
        if args.database_url and not args.skip_migrations:
            apply_migrations(args.database_url)
        server.start()
    except psycopg.Error as exc:
        parser.exit(1, f"error: database: {str(exc).strip().splitlines()[0]}\n")
    except pytest.fail.Exception as exc:  # no PostgreSQL binaries for a private cluster
        parser.exit(1, f"error: {exc.msg}\n")
    print(f"SUPABASE_URL={server.url}")
    print(f"SUPABASE_ANON_KEY={server.anon_key}")
    print(f"SUPABASE_SERVICE_ROLE_KEY={server.service_key}")
    for spec in args.user:
        email, _, password = spec.partition(":")
        print(f"user {email} uid={server.create_user(email, password)}")
    print("serving; Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
