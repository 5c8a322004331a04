"""The user's settings, kept in ``config.toml`` (never any secret: those live in the keyring)."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from agent.platform.paths import Paths
from sync.devices import default_device_name
from sync.policy import FolderRules


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
    prefetch: bool = True
    """Fetch the files likely to be read next while idle on an unmetered link."""
    prefetch_bytes_per_day: int = 512 * 1024**2
    prefetch_cache_share: float = 0.25
    """Of ``size_limit_bytes`` that prefetched files not read yet may fill."""
    prefetch_metered: str = "auto"
    """``auto`` (NetworkManager, else $HUBSYNC_METERED), ``yes`` (never prefetch), ``no``."""


@dataclass
class AgentConfig:
    debounce_seconds: float = 0.6
    """Quiet time before a changed path is synced; a file closed after writing skips it
    where the watcher reports closes (inotify), renames and deletions always wait."""
    rescan_interval_seconds: float = 4 * 3600
    health_interval_seconds: float = 30.0
    upload_limit_kbps: int = 0
    download_limit_kbps: int = 0
    compress_history: bool = True
    """Store superseded versions compressed (sync/compaction.py)."""
    compaction_interval_seconds: float = 600.0


@dataclass
class ExaiConfig:
    host: str = "127.0.0.1"
    port: int = 8079
    health_port: int = 8082
    results_dir: str = ""
    path_map: dict[str, str] = field(default_factory=dict)
    """Only for a disk shared with the EXAI server: local or hub prefix → server prefix."""
    download_dir: str = ""
    """Server folder (under /mnt/project/) where EXAI downloads hub files for tools that
    read only server paths; empty: the first default the tool accepts."""


@dataclass
class DeviceConfig:
    name: str = ""
    """How other devices see this one; empty means the host name
    (``HUBSYNC_DEVICE_NAME`` overrides both)."""


_RULE_KEYS = ("allow_extensions", "deny_extensions", "allow_types", "deny_types")
_EXTENSION = re.compile(r"[a-z0-9_+-]{1,32}")
_TYPE = re.compile(r"(\*|[a-z0-9][a-z0-9.+-]*)/(\*|[a-z0-9][a-z0-9.+*-]*)")


def _check_rules(name: str, rules: object) -> None:
    """Allow/deny lists: extensions without the dot, content types like ``image/*``."""
    if not isinstance(rules, dict):
        raise ConfigError(f"{name} must be a table of allow/deny lists, not {rules!r}")
    unknown = set(rules) - set(_RULE_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) in {name}: {', '.join(sorted(unknown))}")
    for key, values in rules.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{name} {key} must be a list of text, not {values!r}")
        pattern = _EXTENSION if key.endswith("extensions") else _TYPE
        for v in values:
            if not pattern.fullmatch(v):
                what = "an extension without the dot, in lower case, like 'exe'"
                if key.endswith("types"):
                    what = "a content type in lower case, like 'image/png' or 'image/*'"
                raise ConfigError(f"{name} {key}: {v!r} is not {what}")


@dataclass
class UploadConfig:
    """What may be uploaded (on top of the bucket's own limits). Lists apply to every
    folder; ``folders`` adds lists for one folder (its path → lists): its allow lists
    replace the general ones, its deny lists add to them."""

    allow_extensions: list[str] = field(default_factory=list)
    deny_extensions: list[str] = field(default_factory=list)
    allow_types: list[str] = field(default_factory=list)
    deny_types: list[str] = field(default_factory=list)
    folders: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_rules("[upload]", {k: getattr(self, k) for k in _RULE_KEYS})
        if not isinstance(self.folders, dict):
            raise ConfigError(f"[upload] folders must be a table, not {self.folders!r}")
        for folder, rules in self.folders.items():
            _check_rules(f"[upload.folders.{folder!r}]", rules)

    def rules_for(self, folder: Path) -> FolderRules:
        own: dict[str, list[str]] = {}
        for path, rules in self.folders.items():
            if Path(path).expanduser().resolve() == folder:
                own = rules
        return FolderRules(
            allow_extensions=tuple(own.get("allow_extensions") or self.allow_extensions),
            deny_extensions=(*self.deny_extensions, *own.get("deny_extensions", ())),
            allow_types=tuple(own.get("allow_types") or self.allow_types),
            deny_types=(*self.deny_types, *own.get("deny_types", ())),
        )


@dataclass
class Config:
    hub: HubConfig = field(default_factory=HubConfig)
    supabase: SupabaseConfig = field(default_factory=SupabaseConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    exai: ExaiConfig = field(default_factory=ExaiConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)

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


_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("hub", "default"): ("auto", "local", "supabase"),
    ("cache", "prefetch_metered"): ("auto", "yes", "no"),
}
_POSITIVE = {
    ("supabase", "requests_per_second"),
    ("supabase", "tus_threshold_bytes"),
    ("sync", "workers"),
    ("sync", "hash_threads"),
    ("sync", "mass_delete_count"),
    ("agent", "rescan_interval_seconds"),
    ("agent", "health_interval_seconds"),
    ("exai", "port"),
}
"""Settings that must be above zero; every other number must not be negative."""


def _check_value(section: str, key: str, value: Any, default: Any) -> None:
    name = f"[{section}] {key}"
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{name} must be {type(default).__name__}, not {value!r}")
    if section == "upload":
        return  # checked as a whole by UploadConfig
    if isinstance(value, dict) and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{name} must map text to text")
    choices = _CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    if isinstance(value, int | float):
        if (section, key) in _POSITIVE and not value > 0:
            raise ConfigError(f"{name} must be above 0, not {value!r}")
        if not value >= 0:
            raise ConfigError(f"{name} must not be negative, not {value!r}")
    if (section, key) == ("cache", "prefetch_cache_share") and not 0 <= value <= 1:
        raise ConfigError(f"{name} must be between 0 and 1, not {value!r}")
    if (section, key) == ("sync", "mass_delete_ratio") and not 0 < value <= 1:
        raise ConfigError(f"{name} must be above 0 and at most 1, not {value!r}")
    if section == "exai" and key.endswith("port") and not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port number (0..65535), not {value!r}")


def _section(cls: type[Any], data: object, name: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a section of settings, not {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{name}]: {', '.join(sorted(unknown))}")
    defaults = cls()
    for key, value in data.items():
        _check_value(name, key, value, getattr(defaults, key))
    return cls(**data)


def load_config(paths: Paths) -> Config:
    try:
        raw = tomllib.loads(paths.config_file.read_text("utf-8"))
    except FileNotFoundError:
        return Config()
    except UnicodeDecodeError:
        raise ConfigError(f"{paths.config_file} is not text (UTF-8 TOML)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {paths.config_file}: {exc.strerror or exc}") from None
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
