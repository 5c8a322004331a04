"""Where the EXAI server is and how hard to try: config, environment and keyring.

``EXAI_WS_HOST`` / ``EXAI_WS_PORT`` / ``EXAI_WS_TOKEN`` override the config file
and the keyring, the same variables the EXAI server's own tools read. The
token is otherwise kept as the secret ``exai-token`` of service ``hubsync`` (the
keyring, or the opted-in secrets file; see :mod:`agent.platform.secrets`). A daemon with
JWT validation also wants a ``jwt`` in hello: ``EXAI_WS_JWT``, else the secret
``exai-jwt`` (``hubsync exai token --jwt``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.config import ConfigError, ExaiConfig
from agent.platform.secrets import SecretStoreError, open_secret_store

TOKEN_SECRET = "exai-token"
JWT_SECRET = "exai-jwt"
TOKEN_ENV = "EXAI_WS_TOKEN"
JWT_ENV = "EXAI_WS_JWT"


def _read_secret(variable: str, secret: str, env: Mapping[str, str] | None) -> tuple[str, str]:
    env = os.environ if env is None else env
    value = env.get(variable, "")
    if value:
        return value, "env"
    try:
        stored = open_secret_store(env=env).get(secret)
    except SecretStoreError:
        stored = None
    return (stored, "keyring") if stored else ("", "")


def read_token(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The EXAI token and where it came from ("env", "keyring" or "" when there is none)."""
    return _read_secret(TOKEN_ENV, TOKEN_SECRET, env)


def read_jwt(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The JWT for hello and where it came from ("env", "keyring" or "")."""
    return _read_secret(JWT_ENV, JWT_SECRET, env)


@dataclass(frozen=True)
class ExaiSettings:
    host: str = "127.0.0.1"
    port: int = 8079
    token: str = field(default="", repr=False)
    jwt: str = field(default="", repr=False)
    """Sent in hello when set (daemons with JWT validation require it)."""
    health_port: int | None = 8082
    open_timeout: float = 10.0
    """Seconds for TCP + WebSocket handshake."""
    hello_timeout: float = 10.0
    """Seconds to wait for hello_ack (the server itself allows 15 s for our hello)."""
    call_timeout: float = 330.0
    """Our deadline for one call; above the server's own 300 s so its TIMEOUT wins."""
    max_connections: int = 4
    connect_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    over_capacity_attempts: int = 5
    max_retry_after: float = 30.0
    max_message_bytes: int = 32 * 1024 * 1024
    cancel_grace: float = 1.0
    """Seconds to wait for ``cancelled`` after sending ``cancel`` before closing the socket."""
    keepalive_interval: float = 30.0
    """Seconds an idle pooled connection waits before a ``ping``; 0 turns pings off."""
    pong_timeout: float = 10.0
    """Seconds for the ``pong``; a connection without one is closed."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def health_url(self) -> str | None:
        if not self.health_port:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.health_port}/health"

    @classmethod
    def from_config(
        cls, config: ExaiConfig, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> ExaiSettings:
        env = os.environ if env is None else env
        host = env.get("EXAI_WS_HOST") or config.host
        port = _port(env.get("EXAI_WS_PORT"), config.port)
        token, _ = read_token(env)
        jwt, _ = read_jwt(env)
        settings = cls(
            host=host, port=port, token=token, jwt=jwt, health_port=config.health_port or None
        )
        return replace(settings, **overrides)


def _port(raw: str | None, default: int) -> int:
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"EXAI_WS_PORT is not a number: {raw!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"EXAI_WS_PORT out of range: {port}")
    return port
