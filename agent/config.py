"""The user's settings, kept in ``config.toml`` (never any secret: those live in the keyring)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from agent.paths import Paths
from sync.devices import default_device_name


@dataclass
class HubConfig:
    default: str = "auto"
    """"local", "supabase", or "auto" (Supabase when configured, else local)."""
    local_path: str = ""
    """Folder of the embedded local hub; empty means the data dir's ``hub``."""


@dataclass
class SupabaseConfig:
    url: str = ""
    anon_key: str = ""
    """The anon key is public by design (it ships in every web app), so it may live here."""
    requests_per_second: float = 100.0
    tus_threshold_bytes: int = 6 * 1024 * 1024


@dataclass
class SyncConfig:
    workers: int = 4
    hash_threads: int = 2
    mass_delete_ratio: float = 0.5
    mass_delete_count: int = 1000


@dataclass
class CacheConfig:
    size_limit_bytes: int = 1024**3
    ttl_seconds: int = 24 * 3600


@dataclass
class AgentConfig:
    debounce_seconds: float = 0.6
    rescan_interval_seconds: float = 4 * 3600
    health_interval_seconds: float = 30.0
    upload_limit_kbps: int = 0
    download_limit_kbps: int = 0


@dataclass
class ExaiConfig:
    host: str = "127.0.0.1"
    port: int = 8079
    health_port: int = 8082
    results_dir: str = ""
    path_map: dict[str, str] = field(default_factory=dict)


@dataclass
class DeviceConfig:
    name: str = ""
    """How other devices see this one; empty means the host name
    (``HUBSYNC_DEVICE_NAME`` overrides both)."""


@dataclass
class Config:
    hub: HubConfig = field(default_factory=HubConfig)
    supabase: SupabaseConfig = field(default_factory=SupabaseConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    exai: ExaiConfig = field(default_factory=ExaiConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)

    @property
    def device_name(self) -> str:
        return default_device_name(self.device.name)

    @property
    def supabase_url(self) -> str:
        return os.environ.get("SUPABASE_URL") or self.supabase.url

    @property
    def supabase_anon_key(self) -> str:
        return os.environ.get("SUPABASE_ANON_KEY") or self.supabase.anon_key

    @property
    def supabase_configured(self) -> bool:
        return bool(self.supabase_url and self.supabase_anon_key)

    def default_hub(self) -> str:
        if self.hub.default in ("local", "supabase"):
            return self.hub.default
        return "supabase" if self.supabase_configured else "local"

    def local_hub_path(self, paths: Paths) -> Path:
        return (
            Path(self.hub.local_path).expanduser()
            if self.hub.local_path
            else paths.default_local_hub
        )


class ConfigError(ValueError):
    pass


def _section(cls: type[Any], data: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{name}]: {', '.join(sorted(unknown))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"bad [{name}] section: {exc}") from None


def load_config(paths: Paths) -> Config:
    try:
        raw = tomllib.loads(paths.config_file.read_text("utf-8"))
    except FileNotFoundError:
        return Config()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{paths.config_file}: {exc}") from None
    sections = {f.name: f.type for f in fields(Config)}
    unknown = set(raw) - set(sections)
    if unknown:
        raise ConfigError(
            f"unknown section(s) in {paths.config_file}: {', '.join(sorted(unknown))}"
        )
    defaults = Config()
    kwargs = {
        name: _section(type(getattr(defaults, name)), raw.get(name, {}), name) for name in sections
    }
    return Config(**kwargs)


def save_config(paths: Paths, config: Config) -> None:
    """Write atomically so a crash never leaves half a config file."""
    paths.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = paths.config_file.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(asdict(config)), "utf-8")
    os.replace(tmp, paths.config_file)
