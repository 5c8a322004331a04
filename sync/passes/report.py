"""What a pass did, for the caller: counts, the files not in the hub and why, and
why the pass stopped when it did not reach its end."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.errors import AuthError, SyncError
from sync.journal import Root
from sync.journal.issues import WHOLE_FOLDER


@dataclass(frozen=True)
class PassFailure:
    """Why a pass stopped (or never began) for the folder as a whole: the folder is
    not reachable (``local``), the hub stopped answering (``transient``), wants a
    sign-in (``auth``), or failed otherwise."""

    kind: str
    reason: str

    @classmethod
    def of(cls, error: SyncError) -> PassFailure:
        return cls(error.kind, error.message)


@dataclass
class PassReport:
    root: Root
    scanned: int = 0
    unchanged: int = 0
    hashed: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    deduplicated: int = 0
    dedup_bytes: int = 0
    renamed: int = 0
    recorded: int = 0
    deleted: int = 0
    held_deletes: list[str] = field(default_factory=list)
    deferred: int = 0
    """Deletions waiting for the folder to be quiet (see ``MassDeletePolicy.settle``)."""
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    """relpath → (kind, reason) for files (and unreadable folders) not in the hub as they are."""
    failure: PassFailure | None = None
    """Why the pass stopped for the folder as a whole (the first reason)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """relpath → why it is not mirrored by design (links, FIFOs...)."""
    ignored: int = 0
    folders: int = 0
    auth_needed: bool = False

    def fail(self, kind: str, reason: str) -> None:
        """The pass stopped for the folder as a whole; the first reason is kept."""
        if self.failure is None:
            self.failure = PassFailure(kind, reason)

    def stopped(self, error: SyncError) -> None:
        """The hub failed the pass with ``error``."""
        self.auth_needed = self.auth_needed or isinstance(error, AuthError)
        if self.failure is None:
            self.failure = PassFailure.of(error)

    def shown_errors(self) -> dict[str, tuple[str, str]]:
        """:attr:`errors` and the pass's failure (under :data:`WHOLE_FOLDER`), as the
        control API, ``sync --json`` and the logs show them."""
        if self.failure is None:
            return dict(self.errors)
        return {WHOLE_FOLDER: (self.failure.kind, self.failure.reason), **self.errors}

    @classmethod
    def shown(cls, root: Root, errors: dict[str, tuple[str, str]]) -> PassReport:
        """A report with the errors :meth:`shown_errors` gave (read back from JSON)."""
        report = cls(root)
        report.errors = dict(errors)
        whole = report.errors.pop(WHOLE_FOLDER, None)
        if whole is not None:
            report.failure = PassFailure(*whole)
        return report

    @property
    def complete(self) -> bool:
        return (
            not self.errors
            and self.failure is None
            and not self.held_deletes
            and not self.auth_needed
            and not self.deferred
        )
