"""Which deletions a pass applies, holds or leaves: the policy, with no I/O.

A deleted file the hub never had a version of is only forgotten; one that is
still there (ignored now, or no longer a regular file) is no longer mirrored, with
no tombstone; the rest are tombstones, unless they look like an accident (a mass
deletion: many files, or most of the folder, in a short time), in which case they
are all held for the user to confirm, never some of them. While a deletion was
held recently, new ones join it. The old name of a moved file is applied, never
held: its content is synced at another path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sync.journal import FileRow, FileState
from sync.renames import moves


@dataclass(frozen=True)
class MassDeletePolicy:
    """Hold a pass's deletions for confirmation when they look like an accident."""

    ratio: float = 0.5
    count: int = 1000
    min_files: int = 10
    """The ratio rule only applies from this many deletions on (a 3-file folder may lose 2)."""
    window: float = 600.0
    """Deletions applied this many seconds before count too: a slow ``rm -rf`` seen in
    many small passes is still one mass deletion."""
    settle: float = 0.0
    """Deletions wait until no new one was seen for this many seconds, then are judged
    all together (an agent: its watcher reports one ``rm -rf`` in many small batches,
    and judging each alone would apply the first ones before the hold trips)."""

    def holds(self, deleting: int, tracked: int) -> bool:
        if deleting > self.count:
            return True
        return deleting >= self.min_files and deleting > self.ratio * tracked


@dataclass(frozen=True)
class Sorted:
    """Deleted paths by what becomes of them."""

    forget: set[str]
    """Never recorded in the hub: their rows go."""
    unmirror: set[str]
    """Still there: no longer mirrored, no tombstone."""
    tombstone: list[str]
    """Gone: candidates for a tombstone (see :func:`decide`)."""


def sort_deleted(
    deleting: Sequence[str], rows: Mapping[str, FileRow], still_there: Collection[str]
) -> Sorted:
    recorded = [rel for rel in deleting if rel in rows and rows[rel].recorded]
    return Sorted(
        forget=set(deleting).difference(recorded),
        unmirror={rel for rel in recorded if rel in still_there},
        tombstone=[rel for rel in recorded if rel not in still_there],
    )


@dataclass(frozen=True)
class Plan:
    """What to do with a pass's tombstone candidates."""

    apply: list[str]
    """Tombstoned now, in this order."""
    moved: set[str]
    """Those of ``apply`` that are the old names of moved files (logged as such)."""
    hold: list[str] = field(default_factory=list)
    """Newly held (their rows become held)."""
    held: list[str] = field(default_factory=list)
    """Every deletion waiting for the user after this pass, sorted (the report's)."""


def decide(
    candidates: Sequence[str],
    rows: Mapping[str, FileRow],
    *,
    elsewhere: set[str],
    recent: int,
    tracked: int,
    joining: bool,
    confirm: bool,
    policy: MassDeletePolicy,
) -> Plan:
    """Judge ``candidates`` (recorded, gone) all together.

    ``elsewhere``: hashes synced at other paths of the folder (moves); ``recent``:
    deletions applied within the policy's window; ``tracked``: files mirrored now;
    ``joining``: a deletion was held within the window; ``confirm``: the user said
    yes to every deletion (nothing is held)."""
    moved = moves(candidates, rows, elsewhere)
    real = [rel for rel in candidates if rel not in moved]
    # A moved file has two rows until its old name is tombstoned: it is one file.
    tracked -= len(moved)
    if confirm:
        return Plan(list(candidates), moved)
    # What is held stays held until the user answers; only new deletions are judged.
    # A held file whose content is now at another path was moved back in under a new
    # name: applied like any move.
    held = [rel for rel in real if rows[rel].state == FileState.HELD]
    fresh_real = [rel for rel in real if rows[rel].state != FileState.HELD]
    hold: list[str] = []
    if fresh_real and (joining or policy.holds(len(fresh_real) + recent, tracked + recent)):
        hold = fresh_real
    waiting = {*held, *hold}
    apply = [rel for rel in candidates if rel not in waiting]
    return Plan(apply, moved & set(apply), hold, sorted(waiting))


class DeletionQueue:
    """Deletions seen but not judged yet, by folder, until the folder is quiet
    (:attr:`MassDeletePolicy.settle`)."""

    def __init__(self) -> None:
        self._pending: dict[str, set[str]] = {}
        self._last_new: dict[str, float] = {}

    def add(self, root_id: str, relpaths: Collection[str], now: float) -> set[str]:
        """Queue the paths not queued yet; returns every path queued for the folder."""
        pending = self._pending.setdefault(root_id, set())
        new = set(relpaths).difference(pending)
        if new:
            pending.update(new)
            self._last_new[root_id] = now
        return pending

    def quiet(self, root_id: str, now: float, settle: float) -> bool:
        """Whether no new deletion was seen in the folder for ``settle`` seconds."""
        return now - self._last_new.get(root_id, now) >= settle

    def take(self, root_id: str) -> set[str]:
        """Every path queued for the folder, leaving none."""
        return self._pending.pop(root_id, set())
