"""Everything a command or the agent needs, opened once: paths, config, journal, hubs, cache."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from agent.config import Config, load_config
from agent.platform.paths import Paths, resolve_paths
from sync.cache import BlobCache
from sync.disk_space import disk_full
from sync.engine import MassDeletePolicy, SyncEngine
from sync.errors import SyncError
from sync.hub_identity import HubChanged, adopt_hub, open_local_hub
from sync.journal import Journal, JournalResumeStore
from sync.remotes.base import Remote
from sync.remotes.local import LocalHub
from sync.throttle import Bandwidth


@dataclass
class Context(AbstractAsyncContextManager["Context"]):
    paths: Paths
    config: Config
    journal: Journal
    cache: BlobCache
    remotes: dict[str, Remote] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """hub name → why it cannot be used now (not configured, signed out...)."""
    notices: list[str] = field(default_factory=list)
    """What opening the hubs found that the user should know (a new hub to fill)."""
    service_role_user: str | None = None
    """Service-role mode (headless servers): act for this fixed user id. Explicit only."""
    may_adopt: bool = True
    """Whether this process may switch the journal to another hub; not while an agent
    (another process) runs on it."""
    _engine: SyncEngine | None = None

    @classmethod
    def open(
        cls,
        paths: Paths | None = None,
        *,
        service_role_user: str | None = None,
        may_adopt: bool = True,
    ) -> Context:
        paths = (paths or resolve_paths()).ensure()
        config = load_config(paths)
        journal = Journal(paths.journal)
        cache = BlobCache(
            paths.blob_cache,
            size_limit=config.cache.size_limit_bytes,
            ttl=config.cache.ttl_seconds,
            download_limit=Bandwidth(config.agent.download_limit_kbps * 1024),
        )
        return cls(
            paths,
            config,
            journal,
            cache,
            service_role_user=service_role_user,
            may_adopt=may_adopt,
        )

    async def __aenter__(self) -> Context:
        await self.open_hubs()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open_hubs(self) -> None:
        await self.open_local()
        await self.open_supabase()

    async def open_local(
        self, *, remake_own: bool = True, executor: Executor | None = None
    ) -> bool:
        """Open the local hub if it is there (and the one in use); else say why not.

        ``remake_own``: HubSync's own hub (the default folder), if missing, was
        deleted: make a new one. A running agent that saw it go waits instead.
        ``executor``: where the file work runs (a hung share must not stall the loop).
        """
        hub_dir = self.config.local_hub_path(self.paths)
        own = remake_own and hub_dir == self.paths.default_local_hub
        loop = asyncio.get_running_loop()

        async def make(folder: Path, create: bool) -> LocalHub:
            made = loop.run_in_executor(
                executor, functools.partial(LocalHub, folder, create=create)
            )
            try:
                return await asyncio.shield(made)
            except asyncio.CancelledError:  # the hub may still be made: let go of it then
                made.add_done_callback(_discard_made_hub)
                raise

        try:
            opened = await open_local_hub(
                self.journal, hub_dir, make, own_folder=own, adopt=self.may_adopt
            )
        except SyncError as exc:  # missing, or another hub than this agent's
            self.unavailable["local"] = exc.message
            return False
        except (OSError, sqlite3.Error) as exc:  # unreadable, damaged, locked, disk full
            full = disk_full(exc, hub_dir, whose="hub")
            why = full or (exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
            self.unavailable["local"] = f"local hub {hub_dir} cannot be opened: {why}"
            return False
        opened.hub.device_name = self.config.device_name
        self.remotes["local"] = opened.hub
        self.unavailable.pop("local", None)
        if opened.notice:
            self.notices.append(opened.notice)
        return True

    async def open_supabase(self) -> None:
        """Open the Supabase remote when configured and signed in; else say why not."""
        if self.config.supabase_configured:
            from agent.hub.supabase import open_supabase

            remote, problem = await open_supabase(
                self.config,
                self.paths,
                JournalResumeStore(self.journal),
                service_role=self.service_role_user is not None,
                user_id=self.service_role_user,
            )
            if remote is not None:
                identity = remote.session.identity
                try:
                    notice = adopt_hub(
                        self.journal,
                        "supabase",
                        f"{remote.session.settings.public_url} {identity.user_id}",
                        f"{remote.session.settings.public_url} ({identity.email or identity.user_id})",
                        why=" (another project or user)",
                        adopt=self.may_adopt,
                    )
                except HubChanged as exc:
                    await remote.close()
                    self.unavailable["supabase"] = exc.message
                    return
                remote.device_name = self.config.device_name
                self.remotes["supabase"] = remote
                if notice:
                    self.notices.append(notice)
            else:
                self.unavailable["supabase"] = problem
        else:
            self.unavailable["supabase"] = (
                "Supabase is not configured (set SUPABASE_URL and SUPABASE_ANON_KEY, "
                "or [supabase] url/anon_key in the config)"
            )

    @property
    def engine(self) -> SyncEngine:
        if self._engine is None:
            s = self.config.sync
            self._engine = SyncEngine(
                self.journal,
                self.remotes,
                hash_threads=s.hash_threads,
                workers=s.workers,
                mass_delete=MassDeletePolicy(ratio=s.mass_delete_ratio, count=s.mass_delete_count),
                upload_limit=Bandwidth(self.config.agent.upload_limit_kbps * 1024),
                folder_rules=lambda root: self.config.upload.rules_for(root.path),
            )
        return self._engine

    async def aclose(self) -> None:
        if self._engine is not None:
            self._engine.close()
        for remote in self.remotes.values():
            await remote.close()
        self.remotes.clear()
        self.cache.close()
        self.journal.close()


def _discard_made_hub(made: asyncio.Future[LocalHub]) -> None:
    if not made.cancelled() and made.exception() is None:
        made.result().discard()
