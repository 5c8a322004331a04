"""Reading the hub across devices, shared by the CLI (``get``, ``pull``) and the
control API: naming a device's folder or file, finding its version, bringing it here.

``DEVICE`` is a device's name, id or id prefix; a folder is its path on that device
or its name where that is unambiguous; a file is ``FOLDER/relative/path`` in either
form. The results are plain JSON-able dicts, what ``--json`` and the control API show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.cache import BlobCache
from sync.devices import DeviceInfo, FolderInfo
from sync.errors import PermanentError, TransientError
from sync.find import FindQuery
from sync.journal import Journal
from sync.pull import Pulled, file_version, folder_entries, pull_entries
from sync.remotes.base import ManifestEntry, ProgressFn, Remote


class HubReadError(PermanentError):
    """A read that cannot be done; the message is one line for the user."""


def resolve_device(devices: list[DeviceInfo], wanted: str) -> DeviceInfo | None:
    """A device by its id, its id's first digits, or its name; None when none fits."""
    exact = [d for d in devices if wanted in (d.device_id, d.name)]
    if len(exact) == 1:
        return exact[0]
    prefix = [d for d in devices if d.device_id.startswith(wanted)]
    return prefix[0] if len(prefix) == 1 and len(wanted) >= 4 else None


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def resolve_folder(devices: list[DeviceInfo], wanted: str) -> str | None:
    """A folder's path on its device, from that path or its unambiguous name."""
    paths = {f.path for d in devices for f in d.folders}
    if wanted in paths:
        return wanted
    named = {p for p in paths if _name(p) == wanted.rstrip("/")}
    return named.pop() if len(named) == 1 else None


def resolve_file(device: DeviceInfo, wanted: str) -> tuple[FolderInfo, str] | None:
    """The folder holding ``wanted`` (``FOLDER/rel/path``, FOLDER as its path there or
    its unambiguous name) and the path inside it."""
    for folder in device.folders:
        prefix = folder.path.rstrip("/") + "/"
        if wanted.startswith(prefix) and len(wanted) > len(prefix):
            return folder, wanted[len(prefix) :]
    head, sep, rel = wanted.partition("/")
    named = [f for f in device.folders if _name(f.path) == head]
    if sep and rel and len(named) == 1:
        return named[0], rel
    return None


def split_source(source: str, what: str) -> tuple[str, str]:
    device, sep, rest = source.partition(":")
    if not sep or not device or not rest:
        raise HubReadError(f"name the {what} as DEVICE:{what.upper()} (see `hubsync devices`)")
    return device, rest


@dataclass(frozen=True, slots=True)
class Located:
    hub: str
    remote: Remote
    device: DeviceInfo
    folder: FolderInfo
    relpath: str = ""


async def locate(
    remotes: Mapping[str, Remote],
    unavailable: MutableMapping[str, str],
    source: str,
    *,
    file: bool,
) -> Located:
    """The hub, device, folder (and file, with ``file``) that ``source`` names; a hub
    that cannot be reached is added to ``unavailable``."""
    device, rest = split_source(source, "path" if file else "folder")
    for hub, remote in sorted(remotes.items()):
        try:
            known = await remote.devices()
        except TransientError as exc:  # offline: noted, so a copy elsewhere may serve
            unavailable[hub] = exc.message
            continue
        found = resolve_device(known, device)
        if found is None:
            continue
        if file:
            hit = resolve_file(found, rest)
            if hit is not None:
                return Located(hub, remote, found, *hit)
        else:
            path = resolve_folder([found], rest)
            folder = next((f for f in found.folders if f.path == path), None)
            if folder is not None:
                return Located(hub, remote, found, folder)
    down = "; ".join(f"the {hub} hub: {why}" for hub, why in sorted(unavailable.items()))
    raise HubReadError(
        f"no hub knows {source!r} (see `hubsync devices`)"
        + (f"; cannot reach {down}" if down else "")
    )


def _entry_json(hub: str, names: dict[str, str], e: ManifestEntry) -> dict[str, Any]:
    return {
        "hub": hub,
        "device_id": e.device,
        "device": names.get(e.device, e.device[:8]),
        "folder": e.root_path,
        "path": e.relpath,
        "size": e.size,
        "sha256": e.sha256,
        "modified": datetime.fromtimestamp(e.mtime_ns / 1e9).astimezone().isoformat("T", "seconds"),
        "version": e.version,
        "deleted": e.deleted,
        "content_type": e.content_type,
    }


def _device_json(hub: str, this_device: str, device: Any) -> dict[str, Any]:
    return {
        "hub": hub,
        "device_id": device.device_id,
        "name": device.name,
        "this_device": device.device_id == this_device,
        "last_seen": device.last_seen,
        "files": device.files,
        "bytes": device.bytes,
        "folders": [
            {"root_id": f.root_id, "path": f.path, "files": f.files, "bytes": f.bytes}
            for f in device.folders
        ],
    }


async def list_devices(
    remotes: Mapping[str, Remote], unavailable: Mapping[str, str], this_device: str
) -> list[dict[str, Any]]:
    """Every device of this user in every hub that can be reached."""
    _reachable(remotes, unavailable)
    rows: list[dict[str, Any]] = []
    for hub, remote in sorted(remotes.items()):
        rows.extend(_device_json(hub, this_device, d) for d in await remote.devices())
    return rows


async def find_files(
    remotes: Mapping[str, Remote],
    unavailable: Mapping[str, str],
    base: FindQuery,
    device: str = "",
    folder: str = "",
) -> list[dict[str, Any]]:
    """``find`` over every hub; ``device`` and ``folder`` as a user names them."""
    _reachable(remotes, unavailable)
    rows: list[dict[str, Any]] = []
    searched = 0
    for hub, remote in sorted(remotes.items()):
        known = await remote.devices()
        query = base
        if device:
            found = resolve_device(known, device)
            if found is None:
                continue
            query = dataclasses.replace(query, device=found.device_id)
        if folder:
            path = resolve_folder(known, folder)
            if path is None:
                continue
            query = dataclasses.replace(query, folder=path)
        searched += 1
        names = {d.device_id: d.name for d in known}
        rows.extend(_entry_json(hub, names, e) for e in await remote.find(query))
    if not searched:
        what = f"device {device!r}" if device else ""
        what += (" or " if what else "") + (f"folder {folder!r}" if folder else "")
        raise HubReadError(f"no hub knows the {what} (see `hubsync devices`)")
    return rows


def _reachable(remotes: Mapping[str, Remote], unavailable: Mapping[str, str]) -> None:
    if not remotes:
        raise HubReadError("no hub can be reached: " + "; ".join(unavailable.values()))


def _others(remotes: Mapping[str, Remote], hub: str) -> list[Remote]:
    return [r for name, r in sorted(remotes.items()) if name != hub]


def _pulled_json(p: Pulled) -> dict[str, Any]:
    return {
        "path": p.relpath,
        "written_to": str(p.path),
        "identical": p.identical,
        "kept_both": p.kept_both,
        "source": p.source,
        "offline_copy": p.offline,
    }


async def _pull(
    remotes: Mapping[str, Remote],
    unavailable: Mapping[str, str],
    cache: BlobCache,
    hub: str,
    remote: Remote | None,
    entries: list[ManifestEntry],
    dest: Path,
    progress: Callable[[ManifestEntry], None] | None,
    moved: ProgressFn | None,
    flat: bool,
) -> list[Pulled]:
    """``remote`` None: ``hub`` is not connected; the cache or another hub serves."""
    try:
        return await pull_entries(
            remote,
            cache,
            entries,
            dest,
            progress,
            fallbacks=_others(remotes, hub),
            moved=moved,
            flat=flat,
            offline=(hub, unavailable.get(hub, "")),
        )
    except PermanentError as exc:
        raise HubReadError(exc.message) from None


async def versions_of(
    remotes: Mapping[str, Remote], unavailable: Mapping[str, str], source: str
) -> dict[str, Any]:
    """Every recorded version of one file of a device (``DEVICE:PATH``), oldest first."""
    at = await locate(remotes, dict(unavailable), source, file=True)
    history = await at.remote.history(at.device.device_id, at.folder.root_id, at.relpath)
    return {
        "hub": at.hub,
        "device": at.device.name,
        "folder": at.folder.path,
        "path": at.relpath,
        "versions": [
            {
                "version": v.version,
                "sha256": v.sha256,
                "size": v.size,
                "deleted": v.deleted,
                "recorded_at": v.recorded_at,
                "mtime_ns": v.mtime_ns,
            }
            for v in history
        ],
    }


async def get_file(
    remotes: Mapping[str, Remote],
    unavailable: Mapping[str, str],
    cache: BlobCache,
    source: str,
    dest: Path,
    *,
    at_utc: str = "",
    on_size: Callable[[ManifestEntry], None] | None = None,
    moved: ProgressFn | None = None,
    journal: Journal | None = None,
    this_name: str = "",
) -> dict[str, Any]:
    """One file of a device (``DEVICE:PATH``) into the folder ``dest``, by its name.

    With ``journal`` (this device's, named ``this_name``), a file of this device whose
    hub cannot be reached is still found, through the journal's versions, and served
    from the cache or another hub with the same content (an offline copy)."""
    remote: Remote | None
    unavailable = dict(unavailable)
    try:
        at = await locate(remotes, unavailable, source, file=True)
    except HubReadError:
        known = _from_journal(journal, this_name, unavailable, source, at_utc) if journal else None
        if known is None:
            raise
        hub, device, folder, entry = known
        remote = None
    else:
        hub, remote, device, folder = at.hub, at.remote, at.device, at.folder
        try:
            entry = await file_version(remote, device.device_id, folder.root_id, at.relpath, at_utc)
        except PermanentError as exc:
            raise HubReadError(exc.message) from None
    if on_size is not None:
        on_size(entry)
    (got,) = await _pull(
        remotes, unavailable, cache, hub, remote, [entry], dest, None, moved, flat=True
    )
    return {
        "hub": hub,
        "device": device.name,
        "folder": folder.path,
        "version": entry.version,
        "size": entry.size,
        "sha256": entry.sha256,
        **_pulled_json(got),
    }


def _from_journal(
    journal: Journal, this_name: str, unavailable: Mapping[str, str], source: str, at_utc: str
) -> tuple[str, DeviceInfo, FolderInfo, ManifestEntry] | None:
    """A file of this device in a folder whose hub is not connected, as the journal
    recorded its versions; None when ``source`` is not one."""
    device, rest = split_source(source, "path")
    me = journal.device_id
    if device not in (me, this_name) and not (len(device) >= 4 and me.startswith(device)):
        return None
    roots = [r for r in journal.roots() if r.hub in unavailable]
    folders = tuple(FolderInfo(r.id, str(r.path), 0, 0) for r in roots)
    info = DeviceInfo(me, this_name or me[:8], "", folders)
    hit = resolve_file(info, rest)
    if hit is None:
        return None
    folder, relpath = hit
    versions = journal.versions(folder.root_id, relpath)
    if at_utc:
        stamp = datetime.fromisoformat(at_utc).timestamp()
        versions = [v for v in versions if v.recorded_at <= stamp]
    if not versions or versions[-1].deleted:
        return None
    v = versions[-1]
    hub = next(r.hub for r in roots if r.id == folder.root_id)
    entry = ManifestEntry(
        device=me,
        root_id=folder.root_id,
        root_path=folder.path,
        relpath=relpath,
        sha256=v.sha256,
        size=v.size,
        mtime_ns=v.mtime_ns,
        version=v.version,
        key=v.remote_key,
    )
    return hub, info, folder, entry


async def pull_folder(
    remotes: Mapping[str, Remote],
    unavailable: Mapping[str, str],
    cache: BlobCache,
    source: str,
    dest: Path,
    *,
    at_utc: str = "",
    on_entries: Callable[[list[ManifestEntry]], None] | None = None,
    progress: Callable[[ManifestEntry], None] | None = None,
    moved: ProgressFn | None = None,
) -> dict[str, Any]:
    """A device's folder (``DEVICE:FOLDER``) into ``dest``, never overwriting."""
    unavailable = dict(unavailable)
    at = await locate(remotes, unavailable, source, file=False)
    entries = await folder_entries(at.remote, at.device.device_id, at.folder.path, at_utc)
    if on_entries is not None:
        on_entries(entries)
    hits = cache.stats().hits
    pulled = await _pull(
        remotes, unavailable, cache, at.hub, at.remote, entries, dest, progress, moved, flat=False
    )
    return {
        "hub": at.hub,
        "device": at.device.name,
        "folder": at.folder.path,
        "files": len(pulled),
        "identical": sum(p.identical for p in pulled),
        "kept_both": [str(p.path) for p in pulled if p.kept_both],
        "cache_hits": cache.stats().hits - hits,
        "offline_copies": sum(p.offline for p in pulled),
    }
