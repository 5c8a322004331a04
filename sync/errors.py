"""Error kinds the engine tells apart.

Every failure that reaches the engine is one of these, so that it can decide
between retrying soon (transient), asking the user to sign in (auth), giving up
on one file until it changes (permanent), or telling the user about a limit
(quota). Messages never contain secrets.
"""

from __future__ import annotations

import os


class SyncError(Exception):
    """Base class; ``kind`` is stored in the journal next to the message."""

    kind = "error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # Intact across processes whatever the subclass's __init__ takes (the local
        # hub's ingest workers hand theirs back): args and attributes as they are.
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[SyncError], args: tuple[object, ...], state: dict[str, object]) -> SyncError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class TransientError(SyncError):
    """Network trouble, 5xx, 429, timeouts: retry with backoff."""

    kind = "transient"


class HubSwitched(TransientError):
    """The name of a folder's hub came to mean another hub (another account, another
    folder) while a pass ran: what went to the old one does not count as synced."""

    def __init__(self, hub: str) -> None:
        super().__init__(f"the {hub} hub was switched during the pass")


class AuthError(SyncError):
    """The session expired or was revoked: pause the remote until sign-in."""

    kind = "auth"


class PermanentError(SyncError):
    """This one file cannot be synced as it is (bad name, rejected type...)."""

    kind = "permanent"


class QuotaError(PermanentError):
    """Too large for the bucket or over the project's quota."""

    kind = "quota"


class FileChangedError(SyncError):
    """The file changed while we read it: send it back to 'seen'."""

    kind = "changed"


class LocalFileError(SyncError):
    """The local file cannot be read (permissions, vanished, I/O error)."""

    kind = "local"


class FileVanished(LocalFileError):
    """The file went away between the scan and its reading: a deletion, not a failure."""

    def __init__(self, message: str = "cannot read: vanished before it could be read") -> None:
        super().__init__(message)


class IntegrityError(SyncError):
    """Bytes read back do not match their SHA-256."""

    kind = "integrity"


def shown_name(path: str | os.PathLike[str]) -> str:
    """``path`` as text that can always be printed: undecodable bytes as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class UndecodableName(LocalFileError):
    """A name that is not valid UTF-8: never mirrored (the scan reports it), so never
    found in the journal either."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(
            f"{shown_name(path)}: the name is not valid UTF-8; HubSync does not mirror such "
            "names (rename the file to sync it)"
        )


class DiskFull(TransientError):
    """A disk ran out of space (or quota): nothing is damaged, the work waits for space.

    Made by :func:`sync.disk_space.disk_full`, which also tells a full disk from a
    damaged file when SQLite only says "disk I/O error"."""

    def __init__(self, where: str | os.PathLike[str], free: int, *, whose: str = "") -> None:
        self.where = shown_name(where)
        self.free = free
        prefix = f"{whose} " if whose else ""
        super().__init__(f"{prefix}disk full ({free // 2**20} MB free on {self.where})")
