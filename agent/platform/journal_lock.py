"""One engine per journal: an exclusive lock on a file beside it.

The agent holds it for its life; a one-off ``sync --once`` or ``restore`` without
an agent holds it while it runs. Two engines on one journal would each record
the same change (two identical versions), so a second one is kept out with a
message. With an agent running, the CLI asks the agent instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from agent.platform.lock import AgentLock, AlreadyRunning, read_holder

log = logging.getLogger("hubsync.agent")
WAIT_STEP = 0.5


class JournalBusy(RuntimeError):
    def __init__(self, path: Path) -> None:
        pid = read_holder(path)
        who = f" (pid {pid})" if pid is not None else ""
        super().__init__(
            f"another HubSync process{who} is syncing with this journal; "
            "wait for it to finish, or run this command again when it has"
        )


def lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


@contextlib.contextmanager
def one_engine(journal: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the journal's lock; ``JournalBusy`` if another process has it, or with
    ``wait`` (the agent) wait until it lets go."""
    path = lock_path(journal)
    lock = AgentLock(path)
    told = False
    while True:
        try:
            lock.acquire()
            break
        except AlreadyRunning:
            if not wait:
                raise JournalBusy(path) from None
            if not told:
                log.info("%s", JournalBusy(path))
                told = True
            time.sleep(WAIT_STEP)
    try:
        yield
    finally:
        lock.release()
