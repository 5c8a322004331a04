"""What can go wrong when talking to EXAI, as error kinds the agent can act on.

Every class derives from :class:`sync.errors.SyncError` so the agent stores and
shows EXAI failures the same way as sync failures (``kind`` + message). Messages
are written for the user and never contain the token.
"""

from __future__ import annotations

from sync.errors import SyncError


class ExaiError(SyncError):
    """Base class of every EXAI failure."""

    kind = "exai"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code


class ExaiAuthError(ExaiError):
    """The server refused our hello (close 4003): retrying cannot help."""

    kind = "auth"


class ExaiUnavailable(ExaiError):
    """The server cannot be reached, refused the connection or went away: transient."""

    kind = "transient"


class ExaiProtocolError(ExaiError):
    """The server and this client disagree about the protocol (4000/4001/4002, odd frames)."""

    kind = "permanent"


class ExaiToolError(ExaiError):
    """The tool ran and failed, or rejected its arguments."""

    kind = "permanent"


class ExaiOverCapacity(ExaiError):
    """The server is busy with the same request and asked us to come back later."""

    kind = "transient"


class ExaiTimeout(ExaiError):
    """The tool did not answer in time (server TIMEOUT or our own deadline)."""

    kind = "transient"
