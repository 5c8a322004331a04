"""Use a hub only as the one the journal mirrored to.

The journal remembers the id and place of each hub it last used: the local
hub's own id, and for Supabase the project and the user. A local hub that was
in use and is now missing is waited for (an unplugged drive, an unmounted
share): a new, empty one in its place would lack every file the journal calls
synced. A *different* hub (the setting changed, the hub was replaced, another
project or user signed in) gets every file uploaded again, since what the
journal knows describes the old one.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sync.errors import TransientError
from sync.journal import Journal
from sync.remotes.local import HUB_DB, LocalHub

LOCAL = "local"
NO_HUB_YET = ""
"""Remembered before a hub is made for a journal that used another: if the process
dies before the new hub is adopted, the next start still sees a different hub."""


class HubChanged(TransientError):
    """The hub is not the one the journal mirrored to, and this process may not switch
    (an agent runs and owns the journal)."""


@dataclass(frozen=True, slots=True)
class OpenedHub:
    hub: LocalHub
    notice: str | None
    """What the user should know about this opening (a new hub to fill), if anything."""


MakeHub = Callable[[Path, bool], Awaitable[LocalHub]]


async def open_local_hub(
    journal: Journal,
    folder: Path,
    make: MakeHub,
    *,
    own_folder: bool = False,
    adopt: bool = True,
) -> OpenedHub:
    """Open (or create) the local hub at ``folder`` for ``journal``.

    ``make(folder, create)`` builds the :class:`LocalHub` (file work the caller may
    run in a thread); the journal is only touched here, in the caller's thread.
    ``own_folder``: the folder is HubSync's own default hub, not a drive or share
    the user chose; if it is missing, it was deleted, and a new one is made.
    ``adopt``: this process may switch the journal to another hub (no agent runs).
    Raises :class:`~sync.remotes.local.HubMissing` when a hub in use is missing,
    :class:`HubChanged` when it differs and ``adopt`` is off.
    """
    known_id, known_folder = journal.hub_seen(LOCAL)
    where = os.fspath(folder)
    in_use = known_id is not None or journal.hub_in_use(LOCAL)
    moved = known_folder is not None and known_folder != where
    if moved and not adopt:
        raise _changed(LOCAL, where, " (the hub setting changed)")
    create = adopt and (own_folder or moved or not in_use)
    if create and in_use and known_id is None and not (folder / HUB_DB).is_file():
        journal.remember_hub(LOCAL, NO_HUB_YET, where)
        known_id = NO_HUB_YET
    hub = await make(folder, create)
    try:
        notice = adopt_hub(
            journal,
            LOCAL,
            hub.hub_id,
            where,
            made_anew=hub.created,
            why=" (the hub setting changed)" if moved else "",
            adopt=adopt,
        )
    except BaseException:
        await hub.close()
        raise
    return OpenedHub(hub, notice)


def adopt_hub(
    journal: Journal,
    name: str,
    hub_id: str,
    where: str,
    *,
    made_anew: bool = False,
    why: str = "",
    adopt: bool = True,
) -> str | None:
    """Remember that ``name`` is now the hub ``hub_id`` (at ``where``). If the journal
    mirrored to another one, every file is sent back to be uploaded; returns a notice."""
    known_id, known_where = journal.hub_seen(name)
    in_use = known_id is not None or journal.hub_in_use(name)
    replaced = (known_id is not None and hub_id != known_id) or (in_use and made_anew)
    if not adopt:
        if replaced:
            raise _changed(name, where, why)
        return None
    if replaced:
        files = journal.rebase_hub(name, hub_id, where)
        return (
            f"the {name} hub {where} is not the hub your folders were mirrored to{why}; "
            f"{files:,} {'file' if files == 1 else 'files'} will be uploaded to it"
        )
    if (known_id, known_where) != (hub_id, where):
        journal.remember_hub(name, hub_id, where)
    return None


def _changed(name: str, where: str, why: str) -> HubChanged:
    return HubChanged(
        f"the {name} hub {where} is not the hub your folders are mirrored to{why}; "
        "the running agent keeps using that one until it is restarted"
    )
