"""Control API methods for settings, secrets and sign-in (what the tray's Settings window uses).

Settings are agent state: the tray never edits config.toml or the keyring
itself. Secrets go to the keyring only; a password is used once and dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from agent.config import Config, ConfigError, save_config
from agent.control.payloads import (
    AccountAnswer,
    IgnoreAnswer,
    SetSecretAnswer,
    SettingsAnswer,
)
from agent.control.protocol import BAD_PARAMS, ControlError
from agent.control.service_api import AgentApi
from agent.exai.settings import JWT_SECRET, TOKEN_SECRET
from agent.platform import autostart
from agent.platform.secrets import SecretStore, SecretStoreError, open_secret_store
from sync.errors import SyncError
from sync.ignore import IGNORE_FILE

log = logging.getLogger("hubsync.settings")

SECRET_NAMES = {"exai_token": TOKEN_SECRET, "exai_jwt": JWT_SECRET}
"""Names the API uses → names in the keyring."""


def merge_config(config: Config, changes: dict[str, Any]) -> Config:
    """A new Config with ``{section: {key: value}}`` applied; unknown keys are refused."""
    if not isinstance(changes, dict):
        raise ControlError(BAD_PARAMS, "'config' must be an object of sections")
    sections = {}
    for field in dataclasses.fields(config):
        current = getattr(config, field.name)
        update = changes.get(field.name, {})
        if not isinstance(update, dict):
            raise ControlError(BAD_PARAMS, f"[{field.name}] must be an object")
        known = {f.name: f for f in dataclasses.fields(current)}
        unknown = set(update) - set(known)
        if unknown:
            raise ControlError(
                BAD_PARAMS, f"unknown setting(s) in [{field.name}]: {', '.join(sorted(unknown))}"
            )
        for key, value in update.items():
            expected = type(getattr(current, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ControlError(
                    BAD_PARAMS, f"[{field.name}] {key} must be a {expected.__name__}"
                )
            update = {**update, key: value}
        try:
            sections[field.name] = dataclasses.replace(current, **update)
        except ConfigError as exc:  # a section that checks itself ([upload])
            raise ControlError(BAD_PARAMS, str(exc)) from None
    unknown_sections = set(changes) - set(sections)
    if unknown_sections:
        raise ControlError(BAD_PARAMS, f"unknown section(s): {', '.join(sorted(unknown_sections))}")
    return Config(**sections)


def read_ignore(root: Path) -> list[str]:
    try:
        return (root / IGNORE_FILE).read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []


def write_ignore(root: Path, lines: list[str]) -> None:
    """Replace a root's ``.hubignore`` atomically."""
    target = root / IGNORE_FILE
    tmp = target.with_name(".hubsync-ignore.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), "utf-8")
    tmp.replace(target)


def _resolved(path: str) -> Path:
    return Path(path).expanduser().resolve()


def register_settings(agent: AgentApi) -> None:
    ctx = agent.ctx

    def store() -> SecretStore:
        try:
            return open_secret_store(ctx.paths)
        except SecretStoreError as exc:
            raise ControlError("unavailable", str(exc)) from None

    async def account() -> AccountAnswer:
        remote = ctx.remotes.get("supabase")
        identity = getattr(getattr(remote, "session", None), "identity", None)
        user = getattr(identity, "email", None) or getattr(identity, "user_id", None)
        return {"signed_in": remote is not None, "user": user}

    async def snapshot() -> SettingsAnswer:
        try:
            has_token = store().get(TOKEN_SECRET) is not None
        except ControlError:
            has_token = False
        return {
            "config": dataclasses.asdict(ctx.config),
            "autostart": any(autostart.status().values()),
            "secrets": {
                "exai_token": has_token,
                "exai_token_env": bool(os.environ.get("EXAI_WS_TOKEN")),  # overrides the stored one
            },
            "account": await account(),
        }

    async def config_get(params: dict[str, Any]) -> SettingsAnswer:
        return await snapshot()

    async def config_set(params: dict[str, Any]) -> SettingsAnswer:
        new = merge_config(ctx.config, params.get("config", {}))
        try:
            save_config(ctx.paths, new)
        except (OSError, ConfigError) as exc:
            raise ControlError("internal", f"cannot save the settings: {exc}") from None
        ctx.config = new
        agent.apply_settings()
        if "autostart" in params:
            if params["autostart"]:
                autostart.enable(log_dir=ctx.paths.log_dir)
            else:
                autostart.disable()
        agent.publish_status()
        return await snapshot()

    async def set_secret(params: dict[str, Any]) -> SetSecretAnswer:
        name = params.get("name")
        if name not in SECRET_NAMES:
            raise ControlError(BAD_PARAMS, f"unknown secret {name!r}")
        value = params.get("value")
        if value is not None and not isinstance(value, str):
            raise ControlError(BAD_PARAMS, "'value' must be a string or null")
        secrets = store()
        if value:
            secrets.set(SECRET_NAMES[name], value)
        else:
            secrets.delete(SECRET_NAMES[name])
        return {"name": name, "set": bool(value)}

    async def sign_in(params: dict[str, Any]) -> AccountAnswer:
        email, password = params.get("email"), params.get("password")
        if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
            raise ControlError(BAD_PARAMS, "'email' and 'password' are required")
        if not ctx.config.supabase_configured:
            raise ControlError("unavailable", "set the Supabase URL and anon key first")
        from agent.hub.supabase import session_storage, settings_from
        from sync.remotes.supabase.session import SupabaseSession

        try:
            settings = settings_from(ctx.config)
            session = await SupabaseSession.sign_in(
                settings, session_storage(settings, store()), email, password
            )
            await session.close()
        except SyncError as exc:
            raise ControlError("auth", exc.message) from None
        if await agent.reopen_supabase():
            return await account()
        # The switch waits for the pass under way; the sign-in itself is done.
        return {"signed_in": True, "user": session.identity.email or session.identity.user_id}

    async def sign_out(params: dict[str, Any]) -> AccountAnswer:
        remote = ctx.remotes.get("supabase")
        session = getattr(remote, "session", None)
        if session is not None:
            try:
                await session.sign_out()
            except SyncError as exc:
                log.info("server-side sign-out failed (%s); the local session is removed", exc.kind)
        if ctx.config.supabase_configured:
            from agent.hub.supabase import settings_from
            from agent.platform.secrets import session_namespace
            from sync.remotes.supabase.auth import SESSION_KEY as STORAGE_KEY

            base_url = settings_from(ctx.config).public_url
            store().delete(f"{session_namespace(base_url)}:{STORAGE_KEY}")
        if await agent.reopen_supabase():
            return await account()
        return {"signed_in": False, "user": None}  # the switch follows the pass under way

    async def set_ignore(params: dict[str, Any]) -> IgnoreAnswer:
        path = params.get("path")
        patterns = params.get("patterns")
        if not isinstance(path, str) or not isinstance(patterns, list):
            raise ControlError(BAD_PARAMS, "'path' and 'patterns' are required")
        root = ctx.journal.root_by_path(_resolved(path))
        if root is None:
            raise ControlError("not_found", f"{path} is not a mirrored folder")
        lines = [str(p).rstrip("\n") for p in patterns]
        write_ignore(root.path, lines)
        agent.rescan(root.id)
        return {"path": str(root.path), "ignore": lines}

    for name, handler in {
        "config_get": config_get,
        "config_set": config_set,
        "set_secret": set_secret,
        "sign_in": sign_in,
        "sign_out": sign_out,
        "set_ignore": set_ignore,
    }.items():
        agent.server.register(name, handler)
