"""Where the EXAI server is and how hard to try: config, environment and keyring.

``EXAI_WS_HOST`` / ``EXAI_WS_PORT`` / ``EXAI_WS_TOKEN`` override the config file
and the keyring, the same variables the EXAI server's own tools read. The
token is otherwise kept as the secret ``exai-token`` of service ``hubsync`` (the
keyring, or the opted-in secrets file; see :mod:`agent.secrets`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.config import ConfigError, ExaiConfig
from agent.secrets import SecretStoreError, open_secret_store

TOKEN_SECRET = "exai-token"


def read_token(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The EXAI token and where it came from ("env", "keyring" or "" when there is none)."""
    env = os.environ if env is None else env
    token = env.get("EXAI_WS_TOKEN", "")
    if token:
        return token, "env"
    try:
        stored = open_secret_store(env=env).get(TOKEN_SECRET)
    except SecretStoreError:
        stored = None
    return (stored, "keyring") if stored else ("", "")


@dataclass(frozen=True)
class ExaiSettings:
    host: str = "127.0.0.1"
    port: int = 8079
    token: str = field(default="", repr=False)
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
        settings = cls(host=host, port=port, token=token, health_port=config.health_port or None)
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
