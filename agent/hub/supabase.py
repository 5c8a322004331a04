"""Open the Supabase hub for the agent and the CLI: settings, secrets, session, remote.

Loaded (with supabase-py) only when a Supabase hub is used: by
:class:`agent.context.Context` (``open_supabase``) and by the ``login``/``logout``/
``whoami`` commands. The session lives in the keyring (see
:mod:`agent.platform.secrets`); service-role mode is opt-in per call and loud.
"""

from __future__ import annotations

import asyncio
import logging
import os

from agent.config import Config
from agent.platform.paths import Paths
from agent.platform.secrets import (
    SERVICE_ROLE_ENV,
    SERVICE_ROLE_SECRET,
    SecretStore,
    SecretStoreError,
    open_secret_store,
    session_namespace,
)
from sync.errors import AuthError, SyncError
from sync.remotes.base import ResumeStore
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.auth import SessionStorage
from sync.remotes.supabase.session import SupabaseSession, SupabaseSettings

log = logging.getLogger(__name__)


class KeyringSessionStorage(SessionStorage):
    """supabase_auth's session storage backed by a :class:`SecretStore`.

    Keyring calls may block (D-Bus, Keychain prompts), so they run in a thread.
    """

    def __init__(self, store: SecretStore, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    def _name(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def get_item(self, key: str) -> str | None:
        return await asyncio.to_thread(self.store.get, self._name(key))

    async def set_item(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.store.set, self._name(key), value)

    async def remove_item(self, key: str) -> None:
        await asyncio.to_thread(self.store.delete, self._name(key))


def settings_from(config: Config) -> SupabaseSettings:
    """URL and anon key from the environment or the config file, plus limits."""
    if not config.supabase_configured:
        raise AuthError(
            "Supabase is not configured: set SUPABASE_URL and SUPABASE_ANON_KEY, "
            "or [supabase] url and anon_key in the config"
        )
    return SupabaseSettings(
        url=config.supabase_url,
        anon_key=config.supabase_anon_key,
        requests_per_second=config.supabase.requests_per_second,
        tus_threshold=config.supabase.tus_threshold_bytes,
        max_connections=max(4, config.sync.workers * 2),
    )


def session_storage(settings: SupabaseSettings, store: SecretStore) -> KeyringSessionStorage:
    return KeyringSessionStorage(store, session_namespace(settings.public_url))


def service_role_key(store: SecretStore | None) -> str:
    key = os.environ.get(SERVICE_ROLE_ENV, "")
    if not key and store is not None:
        key = store.get(SERVICE_ROLE_SECRET) or ""
    if not key:
        raise AuthError(
            f"service-role mode needs the key in {SERVICE_ROLE_ENV} or stored with "
            "`hubsync login --service-role`"
        )
    return key


async def open_session(
    config: Config,
    paths: Paths,
    *,
    service_role: bool = False,
    user_id: str | None = None,
    store: SecretStore | None = None,
) -> SupabaseSession:
    settings = settings_from(config)
    if service_role:
        if not user_id:
            raise AuthError("service-role mode needs a fixed --user-id")
        if store is None and not os.environ.get(SERVICE_ROLE_ENV):
            store = open_secret_store(paths)
            if store.warning:
                log.warning("%s", store.warning)
        return await SupabaseSession.service_role(settings, service_role_key(store), user_id)
    if store is None:
        store = open_secret_store(paths)
        if store.warning:
            log.warning("%s", store.warning)
    return await SupabaseSession.restore(settings, session_storage(settings, store))


async def open_supabase(
    config: Config,
    paths: Paths,
    resume_store: ResumeStore,
    *,
    service_role: bool = False,
    user_id: str | None = None,
) -> tuple[SupabaseRemote | None, str]:
    """The Supabase remote, or None and the reason it is unavailable (shown as status);
    ``resume_store`` keeps its interrupted uploads (the journal's)."""
    try:
        session = await open_session(config, paths, service_role=service_role, user_id=user_id)
    except (SyncError, SecretStoreError) as exc:
        return None, str(exc)
    return SupabaseRemote(session, resume_store=resume_store), ""
