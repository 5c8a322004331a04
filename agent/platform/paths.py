"""Where HubSync keeps its state.

``HUBSYNC_HOME=<dir>`` puts everything (config, journal, local hub, cache, logs,
results, runtime socket) under one directory, which is what tests, portable
installs and a second profile use. Otherwise the platform's usual places.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "hubsync"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path
    runtime_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def journal(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def default_local_hub(self) -> Path:
        return self.data_dir / "hub"

    @property
    def blob_cache(self) -> Path:
        return self.cache_dir / "blobs"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "hubsync.log"

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "agent.sock"

    @property
    def agent_lock(self) -> Path:
        return self.runtime_dir / "agent.lock"

    def ensure(self) -> Paths:
        for d in (self.config_dir, self.data_dir, self.cache_dir, self.log_dir, self.runtime_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def resolve_paths(env: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    home = env.get("HUBSYNC_HOME")
    if home:
        base = Path(home).expanduser().resolve()
        return Paths(
            config_dir=base / "config",
            data_dir=base / "data",
            cache_dir=base / "cache",
            log_dir=base / "logs",
            runtime_dir=base / "run",
        )
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR platformdirs falls back to a private folder of its own
        # (checked 0700, as the control server checks it again): nothing for the user to do.
        warnings.simplefilter("ignore")  # RuntimeDirWarning, only in newer platformdirs
        runtime = platformdirs.user_runtime_path(APP)
    return Paths(
        config_dir=platformdirs.user_config_path(APP),
        data_dir=platformdirs.user_data_path(APP),
        cache_dir=platformdirs.user_cache_path(APP),
        log_dir=platformdirs.user_log_path(APP),
        runtime_dir=runtime,
    )
