"""Sign-in, the keyring-backed session, refresh, revocation and the CLI commands."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path

import httpx
import keyring
import pytest
import typer
from keyring.backends import fail
from postgrest.exceptions import APIError
from storage3.exceptions import StorageApiError
from supabase_auth.errors import AuthApiError as GoTrueApiError
from supabase_auth.errors import AuthRetryableError
from typer.testing import CliRunner

from agent.cli.supabase import register
from agent.platform.secrets import (
    FILE_SECRETS_ENV,
    SERVICE,
    SERVICE_ROLE_SECRET,
    FileSecrets,
    KeyringSecrets,
    SecretStoreError,
    open_secret_store,
)
from sync.errors import AuthError
from sync.remotes.base import BUCKET_FILES
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.errors import is_jwt_failure, map_error
from sync.remotes.supabase.session import SupabaseSession, SupabaseSettings
from tests.fixtures.supabase import SupabaseUser
from tests.fixtures.supabase_remote import (
    MemoryKeyring,
    session_storage,
    sign_in,
    write_file,
)
from tests.supabase_server import SupabaseTestServer

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]


def stored_session(backend: MemoryKeyring) -> dict[str, object]:
    (head,) = [name for (service, name) in backend.items if service == SERVICE and "#" not in name]
    value = KeyringSecrets(backend).get(head)
    assert value is not None
    data: dict[str, object] = json.loads(value)
    return data


class SmallKeyring(MemoryKeyring):
    """Like Windows' Credential Manager: entries of at most 1,280 characters."""

    def set_password(self, service: str, username: str, password: str) -> None:
        if len(password) > 1280:
            raise keyring.errors.PasswordSetError("the password is too long")
        super().set_password(service, username, password)


async def test_a_long_session_fits_a_keyring_with_small_entries(
    hub_settings: SupabaseSettings, supabase_user: SupabaseUser
) -> None:
    backend = SmallKeyring()
    await (await sign_in(hub_settings, supabase_user, backend)).close()
    assert len(backend.items) > 1  # the session was split into parts
    assert all(len(v) <= 1280 for v in backend.items.values())

    restored = await SupabaseSession.restore(hub_settings, session_storage(backend, hub_settings))
    try:
        assert restored.user_id == supabase_user.uid
    finally:
        await restored.close()
    secrets = KeyringSecrets(backend)
    (head,) = [name for (_, name) in backend.items if "#" not in name]
    secrets.set(head, "short now")
    assert list(backend.items.values()) == ["short now"]  # stale parts are gone
    secrets.delete(head)
    assert backend.items == {}


async def test_sign_in_keeps_the_session_in_the_keyring_and_never_the_password(
    hub_settings: SupabaseSettings, supabase_user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    session = await sign_in(hub_settings, supabase_user, memory_keyring)
    await session.close()

    saved = stored_session(memory_keyring)
    assert saved["refresh_token"] and saved["access_token"]
    assert all(supabase_user.password not in v for v in memory_keyring.items.values())

    restored = await SupabaseSession.restore(
        hub_settings, session_storage(memory_keyring, hub_settings)
    )
    try:
        assert restored.user_id == supabase_user.uid
        identity = await restored.current_identity()
        assert identity.email == supabase_user.email
    finally:
        await restored.close()


async def test_wrong_password_and_missing_session(
    hub_settings: SupabaseSettings, supabase_user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    wrong = SupabaseUser(supabase_user.email, "not it", supabase_user.uid)
    with pytest.raises(AuthError, match="sign-in refused") as refused:
        await sign_in(hub_settings, wrong, memory_keyring)
    assert "not it" not in str(refused.value)
    with pytest.raises(AuthError, match="hubsync login"):
        await SupabaseSession.restore(hub_settings, session_storage(memory_keyring, hub_settings))


async def test_restore_after_revocation_asks_to_sign_in_again(
    hub_settings: SupabaseSettings,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
) -> None:
    await (await sign_in(hub_settings, supabase_user, memory_keyring)).close()
    supabase_server.auth.revoke_refresh_tokens(supabase_user.uid)
    supabase_server.auth.expire_access_tokens()
    storage = session_storage(memory_keyring, hub_settings)
    # The stored token still looks valid to the client; the server refuses it.
    session = await SupabaseSession.restore(hub_settings, storage)
    remote = SupabaseRemote(session)
    try:
        with pytest.raises(AuthError, match="sign in again"):
            await remote.ping()
    finally:
        await remote.close()


async def test_tokens_refresh_on_their_own_and_land_in_the_keyring(
    hub_settings: SupabaseSettings,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
    tmp_path: Path,
) -> None:
    supabase_server.auth.set_access_token_ttl(12)  # refreshed 10 s before expiry: after ~2 s
    session = await sign_in(hub_settings, supabase_user, memory_keyring)
    remote = SupabaseRemote(session)
    try:
        first = stored_session(memory_keyring)["access_token"]
        sha = write_file(tmp_path / "a", b"abc")
        for _ in range(30):
            await remote.put_blob(tmp_path / "a", sha, 3, "a.txt", "text/plain")
            await asyncio.sleep(0.1)
        assert stored_session(memory_keyring)["access_token"] != first
        refreshes = [
            e
            for e in supabase_server.log.entries("POST", "/auth/v1/token")
            if "refresh_token" in e.query
        ]
        assert refreshes and all(e.status == 200 for e in refreshes)
        failed = [e for e in supabase_server.log.entries(prefix="/storage/") if e.status >= 400]
        assert failed == []
    finally:
        await remote.close()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_service_role_mode_acts_for_a_fixed_user_loudly(
    hub_settings: SupabaseSettings,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    with caplog.at_level(logging.WARNING):
        session = await SupabaseSession.service_role(
            hub_settings, supabase_server.service_key, supabase_user.uid
        )
    assert "SERVICE-ROLE MODE" in caplog.text and supabase_user.uid in caplog.text
    remote = SupabaseRemote(session)
    try:
        sha = write_file(tmp_path / "a", b"from the server")
        key = await remote.put_blob(tmp_path / "a", sha, 15, "a.txt", "text/plain")
        assert key.startswith(f"{supabase_user.uid}/")
        (row,) = supabase_server.rest.snapshot("file_metadata")
        assert row["user_id"] == supabase_user.uid
        assert remote.describe().endswith("(service role)")
    finally:
        await remote.close()
    with pytest.raises(AuthError, match="user-id"):
        await SupabaseSession.service_role(hub_settings, supabase_server.service_key, "")


def test_no_keyring_is_an_explicit_choice(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        env = {"HUBSYNC_HOME": str(tmp_path)}
        with pytest.raises(SecretStoreError, match=FILE_SECRETS_ENV):
            open_secret_store(env=env)
        store = open_secret_store(env={**env, FILE_SECRETS_ENV: "1"})
        assert isinstance(store, FileSecrets)
        assert store.warning is not None and "plain text" in store.warning
        store.set("token", "s3cret")
        assert store.get("token") == "s3cret"
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        store.delete("token")
        assert store.get("token") is None
    finally:
        keyring.set_keyring(previous)


def test_error_messages_never_carry_tokens() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
    exc = StorageApiError(f"bad token {token}", "InvalidRequest", "400")
    message = map_error(exc, "uploading").message
    assert token not in message and "<token>" in message


@pytest.fixture
def cli(
    supabase_server: SupabaseTestServer,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> typer.Typer:
    monkeypatch.setenv("HUBSYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SUPABASE_URL", supabase_server.url)
    monkeypatch.setenv("SUPABASE_ANON_KEY", supabase_server.anon_key)
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_login_whoami_logout(
    cli: typer.Typer, supabase_user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["login", "--email", supabase_user.email, "--password-stdin"],
        input=supabase_user.password + "\n",
    )
    assert result.exit_code == 0, result.output
    assert supabase_user.uid in result.output
    assert supabase_user.password not in result.output
    assert memory_keyring.items

    result = runner.invoke(cli, ["whoami"])
    assert result.exit_code == 0, result.output
    assert supabase_user.email in result.output and supabase_user.uid in result.output

    result = runner.invoke(cli, ["logout"])
    assert result.exit_code == 0, result.output
    assert memory_keyring.items == {}

    result = runner.invoke(cli, ["whoami"])
    assert result.exit_code == 1
    assert "hubsync login" in result.output


def test_login_with_a_wrong_password_fails_cleanly(
    cli: typer.Typer, supabase_user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    result = CliRunner().invoke(
        cli, ["login", "--email", supabase_user.email, "--password-stdin"], input="nope\n"
    )
    assert result.exit_code == 1
    assert "sign-in refused" in result.output and "Traceback" not in result.output
    assert memory_keyring.items == {}


def test_schema_command_prints_the_migrations(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["supabase", "schema"])
    assert result.exit_code == 0
    for table in ("file_metadata", "file_operations", "hubsync_manifest", "hubsync_devices"):
        assert f"public.{table}" in result.output


def test_files_are_in_the_user_files_bucket_by_default() -> None:
    assert BUCKET_FILES == "user-files"


def test_login_without_a_keyring_says_what_to_do(
    cli: typer.Typer, supabase_user: SupabaseUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FILE_SECRETS_ENV, raising=False)
    keyring.set_keyring(fail.Keyring())  # the memory_keyring fixture restores the old one
    args = ["login", "--email", supabase_user.email, "--password-stdin"]
    refused = CliRunner().invoke(cli, args, input=supabase_user.password + "\n")
    assert refused.exit_code == 1
    assert FILE_SECRETS_ENV in refused.output

    monkeypatch.setenv(FILE_SECRETS_ENV, "1")
    accepted = CliRunner().invoke(cli, args, input=supabase_user.password + "\n")
    assert accepted.exit_code == 0, accepted.output
    assert "plain text" in accepted.output
    secrets_file = Path(os.environ["HUBSYNC_HOME"]) / "config" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert supabase_user.password not in secrets_file.read_text()


def test_service_role_login_and_whoami(
    cli: typer.Typer,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["login", "--service-role", "--password-stdin"], input="x\n")
    assert refused.exit_code == 1 and "--user-id" in refused.output

    args = ["login", "--service-role", "--user-id", supabase_user.uid, "--password-stdin"]
    wrong = runner.invoke(cli, args, input=supabase_server.anon_key + "x\n")
    assert wrong.exit_code == 1 and "nothing was stored" in wrong.output
    assert memory_keyring.items == {}

    result = runner.invoke(cli, args, input=supabase_server.service_key + "\n")
    assert result.exit_code == 0, result.output
    assert "SERVICE-ROLE MODE" in result.output
    assert memory_keyring.items[(SERVICE, SERVICE_ROLE_SECRET)] == supabase_server.service_key
    assert supabase_server.service_key not in result.output

    who = runner.invoke(cli, ["whoami", "--service-role", "--user-id", supabase_user.uid])
    assert who.exit_code == 0, who.output
    assert "service role" in who.output and supabase_user.uid in who.output


@pytest.mark.parametrize(
    ("error", "kind", "jwt"),
    [
        (
            StorageApiError("exceeded the maximum allowed size", "Payload too large", "413"),
            "quota",
            False,
        ),
        (
            StorageApiError("mime type x/y is not supported", "invalid_mime_type", "415"),
            "permanent",
            False,
        ),
        (StorageApiError("Invalid key: a#b", "InvalidKey", "400"), "permanent", False),
        (
            StorageApiError('"exp" claim timestamp check failed', "Unauthorized", "403"),
            "auth",
            True,
        ),
        (StorageApiError("jwt expired", "InvalidJWT", "400"), "auth", True),
        (
            StorageApiError("new row violates row-level security policy", "Unauthorized", "403"),
            "permanent",
            False,
        ),
        (StorageApiError("Object not found", "not_found", "404"), "permanent", False),
        (StorageApiError("Internal Server Error", "InternalError", 500), "transient", False),
        (APIError({"code": "PGRST303", "message": "JWT expired"}), "auth", True),
        (APIError({"code": "42P01", "message": "relation does not exist"}), "permanent", False),
        (APIError({"code": "57014", "message": "canceling statement"}), "transient", False),
        (
            GoTrueApiError("Invalid Refresh Token: Revoked", 400, "refresh_token_not_found"),
            "auth",
            False,
        ),
        (AuthRetryableError("connection refused", 0), "transient", False),
        (httpx.ConnectError("refused"), "transient", False),
        (PermissionError(13, "Permission denied"), "local", False),
    ],
)
def test_error_kinds(error: Exception, kind: str, jwt: bool) -> None:
    mapped = map_error(error, "doing it")
    assert mapped.kind == kind
    assert is_jwt_failure(error) is jwt
    if kind == "auth" and not jwt:
        assert "sign in again" in mapped.message
