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
from dataclasses import dataclass
from pathlib import Path

from sync.journal import Journal
from sync.remotes.local import LocalHub

LOCAL = "local"


@dataclass(frozen=True, slots=True)
class OpenedHub:
    hub: LocalHub
    notice: str | None
    """What the user should know about this opening (a new hub to fill), if anything."""


def open_local_hub(journal: Journal, folder: Path, *, own_folder: bool = False) -> OpenedHub:
    """Open (or create) the local hub at ``folder`` for ``journal``.

    ``own_folder``: the folder is HubSync's own default hub, not a drive or share
    the user chose; if it is missing, it was deleted, and a new one is made.
    Raises :class:`~sync.remotes.local.HubMissing` when a hub in use is missing.
    """
    known_id, known_folder = journal.hub_seen(LOCAL)
    where = os.fspath(folder)
    in_use = known_id is not None or journal.has_blobs(LOCAL)
    moved = known_folder is not None and known_folder != where
    hub = LocalHub(folder, create=own_folder or moved or not in_use)
    notice = adopt_hub(
        journal,
        LOCAL,
        hub.hub_id,
        where,
        made_anew=hub.created,
        why=" (the hub setting changed)" if moved else "",
    )
    return OpenedHub(hub, notice)


def adopt_hub(
    journal: Journal, name: str, hub_id: str, where: str, *, made_anew: bool = False, why: str = ""
) -> str | None:
    """Remember that ``name`` is now the hub ``hub_id`` (at ``where``). If the journal
    mirrored to another one, every file is sent back to be uploaded; returns a notice."""
    known_id, known_where = journal.hub_seen(name)
    in_use = known_id is not None or journal.has_blobs(name)
    notice = None
    if (known_id is not None and hub_id != known_id) or (in_use and made_anew):
        files = journal.rebase_hub(name)
        notice = (
            f"the {name} hub {where} is not the hub your folders were mirrored to{why}; "
            f"{files:,} {'file' if files == 1 else 'files'} will be uploaded to it"
        )
    if (known_id, known_where) != (hub_id, where):
        journal.remember_hub(name, hub_id, where)
    return notice
