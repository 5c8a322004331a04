"""Run the Supabase test server by hand.

    python -m tests.supabase_server [--port 54321] [--jwt-secret S] [--user EMAIL:PASSWORD]

Prints the URL, anon key and service-role key, then serves until Ctrl-C or
SIGTERM. Point ``SUPABASE_URL``/``SUPABASE_ANON_KEY`` at it to run the agent
and tray against it; another storage server sharing ``--jwt-secret`` accepts
its tokens. State is kept in memory only.
"""

from __future__ import annotations

import argparse
import signal
import threading

from .app import SupabaseTestServer


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
    args = parser.parse_args(argv)
    server = SupabaseTestServer(
        jwt_secret=args.jwt_secret,
        host=args.host,
        port=args.port,
        access_token_ttl=args.access_token_ttl,
    )
    server.start()
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
