"""The states of a mirrored file and the moves between them, written down once.

The journal installs :data:`TRANSITIONS` as a table that triggers on ``files``
consult, so that a write moving a file the wrong way fails (with
:class:`IllegalTransition`) whoever makes it.

::

    new ─> seen ─> recording ─> synced ─> held ─> deleted (tombstoned)
            │          │         │  ^       │
            └──────────┴─> error ┘  └───────┘ (back as it was)
    seen, recording, synced, error, held ─> deleted | unmirrored
    any state ─> seen (it changed, or a file is again at a gone path)

- **seen**: new or changed, waiting to be hashed and uploaded (a changed file
  keeps the hash of its last recorded version, which a deletion tombstones);
- **recording**: hashed and its blob in the hub, about to be recorded in the hub's
  manifest (the hub may have the row already: a deletion leaves a tombstone);
- **synced**: the hub's newest version is the file as it is;
- **error**: failed; retried at ``next_retry`` or when it changes;
- **held**: deleted here, the deletion held for the user to confirm (it looked
  like an accident);
- **deleted**: deleted here and tombstoned in the hub;
- **unmirrored**: still there but no longer mirrored (ignored now, or no longer a
  regular file): the hub keeps its last version as it was, with no tombstone.
"""

from __future__ import annotations

from enum import StrEnum


class FileState(StrEnum):
    SEEN = "seen"
    RECORDING = "recording"
    SYNCED = "synced"
    ERROR = "error"
    HELD = "held"
    DELETED = "deleted"
    UNMIRRORED = "unmirrored"

    @property
    def shown_as(self) -> FileState:
        """The state counts report it under: recording is still waiting (seen), and an
        unmirrored file is out of the mirror like a deleted one."""
        return _SHOWN.get(self, self)


_SHOWN = {FileState.RECORDING: FileState.SEEN, FileState.UNMIRRORED: FileState.DELETED}

GONE = frozenset({FileState.DELETED, FileState.UNMIRRORED})
"""No longer mirrored: a file found at such a path is new."""
WAITING = frozenset({FileState.SEEN, FileState.RECORDING})
"""Not in the hub as it is yet: hashed again by the next pass."""
IN_HUB = frozenset({FileState.SYNCED, FileState.HELD})
"""The hub's newest version is live and the journal agrees it is this file's."""

S = FileState
TRANSITIONS: dict[FileState | None, frozenset[FileState]] = {
    None: frozenset({S.SEEN, S.SYNCED, S.DELETED}),  # found here; or taken from the hub
    S.SEEN: frozenset({S.SEEN, S.RECORDING, S.SYNCED, S.ERROR, S.HELD, S.DELETED, S.UNMIRRORED}),
    S.RECORDING: frozenset({S.SEEN, S.SYNCED, S.ERROR, S.HELD, S.DELETED, S.UNMIRRORED}),
    S.SYNCED: frozenset({S.SEEN, S.SYNCED, S.ERROR, S.HELD, S.DELETED, S.UNMIRRORED}),
    S.ERROR: frozenset({S.SEEN, S.SYNCED, S.ERROR, S.HELD, S.DELETED, S.UNMIRRORED}),
    S.HELD: frozenset({S.SEEN, S.SYNCED, S.HELD, S.DELETED, S.UNMIRRORED}),
    S.DELETED: frozenset({S.SEEN, S.SYNCED, S.DELETED}),
    S.UNMIRRORED: frozenset({S.SEEN, S.SYNCED, S.UNMIRRORED}),
}
"""state → the states it may become (``None``: a new row). Every state may stay as it
is (each step is repeated after a crash), except recording, which only a pass makes
once per seen file. Restoring a version (``hubsync restore``) makes any file synced."""
del S

NEW = ""
"""How the transition table names the source of a new row."""


class IllegalTransition(RuntimeError):
    """A write would move a file between states the machine above does not allow: a bug."""


def transition_rows() -> list[tuple[str, str]]:
    """(source, target) of every allowed move, for the journal's table (``NEW`` for none)."""
    return sorted(
        (NEW if source is None else source.value, target.value)
        for source, targets in TRANSITIONS.items()
        for target in targets
    )
