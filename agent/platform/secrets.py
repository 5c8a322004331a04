"""Secrets (the Supabase session, a service-role key) in the OS keyring.

Everything is stored under the keyring service ``hubsync``. Headless Linux
often has no keyring at all (keyring falls back to its ``fail`` or ``null``
backend); then HubSync refuses to store secrets and says how to opt in to the
documented alternative: ``HUBSYNC_ALLOW_FILE_SECRETS=1`` keeps them in a
``secrets.json`` readable only by the user (0600) in the config folder, in
plain text, with a warning every time it is opened. Never silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.platform.paths import Paths, resolve_paths

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

# keyring (and its backends, found through entry points) loads when a secret is
# first needed: most commands never touch one and should not pay for it at start.

SERVICE = "hubsync"
FILE_SECRETS_ENV = "HUBSYNC_ALLOW_FILE_SECRETS"
SERVICE_ROLE_SECRET = "supabase_service_role_key"
SERVICE_ROLE_ENV = "SUPABASE_SERVICE_ROLE_KEY"
"""Where the service-role key may come from instead of the keyring."""


class SecretStoreError(RuntimeError):
    """No usable place for secrets, or the keyring refused an operation."""


class SecretStore(Protocol):
    warning: str | None

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


class KeyringSecrets:
    """Secrets in the OS keyring (Secret Service, Keychain, Credential Manager).

    Windows' Credential Manager holds about 1,280 characters per entry and a
    Supabase session (two JWTs and the user record) is longer, so long values
    are stored as numbered parts behind a small head entry. Parts are written
    before the head, so a crash mid-write leaves the old head or an unreadable
    session (which supabase_auth discards: sign in again), never a mix that parses.
    """

    warning: str | None = None
    PART = 1000
    SPLIT = "hubsync-parts:"

    def __init__(self, backend: KeyringBackend) -> None:
        self.backend = backend

    def _get(self, name: str) -> str | None:
        import keyring.errors

        try:
            return self.backend.get_password(SERVICE, name)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"the keyring refused to read a secret: {exc}") from None

    def _set(self, name: str, value: str) -> None:
        import keyring.errors

        try:
            self.backend.set_password(SERVICE, name, value)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"the keyring refused to store a secret: {exc}") from None

    def _delete(self, name: str) -> None:
        import keyring.errors

        try:
            self.backend.delete_password(SERVICE, name)
        except keyring.errors.PasswordDeleteError:
            return
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"the keyring refused to delete a secret: {exc}") from None

    def _part_count(self, head: str | None) -> int:
        if head is None or not head.startswith(self.SPLIT):
            return 0
        count = head[len(self.SPLIT) :]
        return int(count) if count.isdigit() else 0

    def get(self, name: str) -> str | None:
        head = self._get(name)
        count = self._part_count(head)
        if not count:
            return head
        parts = [self._get(f"{name}#{i}") for i in range(count)]
        return None if any(p is None for p in parts) else "".join(p or "" for p in parts)

    def set(self, name: str, value: str) -> None:
        old = self._part_count(self._get(name))
        if len(value) <= self.PART and not value.startswith(self.SPLIT):
            self._set(name, value)
            count = 0
        else:
            parts = [value[i : i + self.PART] for i in range(0, len(value), self.PART)]
            for i, part in enumerate(parts):
                self._set(f"{name}#{i}", part)
            self._set(name, f"{self.SPLIT}{len(parts)}")
            count = len(parts)
        for i in range(count, old):
            self._delete(f"{name}#{i}")

    def delete(self, name: str) -> None:
        count = self._part_count(self._get(name))
        self._delete(name)
        for i in range(count):
            self._delete(f"{name}#{i}")


class FileSecrets:
    """Plain-text secrets in a 0600 JSON file: only with HUBSYNC_ALLOW_FILE_SECRETS=1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warning: str | None = (
            f"No OS keyring is available; {FILE_SECRETS_ENV}=1 is set, so HubSync keeps its "
            f"secrets in plain text in {path} (readable only by you). Anyone with access to "
            "your account or backups can read them."
        )

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise SecretStoreError(f"{self.path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SecretStoreError(f"{self.path} does not hold a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, data: Mapping[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(data), handle)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def get(self, name: str) -> str | None:
        return self._load().get(name)

    def set(self, name: str, value: str) -> None:
        data = self._load()
        data[name] = value
        self._save(data)

    def delete(self, name: str) -> None:
        data = self._load()
        if data.pop(name, None) is not None:
            self._save(data)


def keyring_usable(backend: KeyringBackend) -> bool:
    from keyring.backends import chainer, fail, null

    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return False
    return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)


def open_secret_store(
    paths: Paths | None = None, env: Mapping[str, str] | None = None
) -> SecretStore:
    """The keyring when one works, else the opted-in file, else a clear error."""
    import keyring

    env = os.environ if env is None else env
    backend = keyring.get_keyring()
    if keyring_usable(backend):
        return KeyringSecrets(backend)
    paths = paths or resolve_paths(env)
    if env.get(FILE_SECRETS_ENV) == "1":
        # The caller shows ``store.warning`` (the CLI prints it, the agent logs it).
        return FileSecrets(paths.config_dir / "secrets.json")
    raise SecretStoreError(
        "No usable OS keyring was found (on a headless Linux box there is usually no "
        "Secret Service running). Either install and unlock a keyring (e.g. gnome-keyring "
        "or KWallet), or set "
        f"{FILE_SECRETS_ENV}=1 to keep HubSync's secrets in plain text in "
        f"{paths.config_dir / 'secrets.json'} (file mode 0600)."
    )


def get_secret(name: str, store: SecretStore | None = None) -> str | None:
    return (store or open_secret_store()).get(name)


def set_secret(name: str, value: str, store: SecretStore | None = None) -> None:
    (store or open_secret_store()).set(name, value)


def delete_secret(name: str, store: SecretStore | None = None) -> None:
    (store or open_secret_store()).delete(name)


def session_namespace(supabase_url: str) -> str:
    """Secrets of one Supabase project: sessions of two projects never mix."""
    return f"supabase-session:{supabase_url.rstrip('/')}"
