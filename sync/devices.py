"""The devices of one user as a hub knows them: each HubSync home is one.

A device's folders, file counts and sizes are those of the current version of
each path it mirrors (deleted files left out), as ``hubsync devices`` shows.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

DEVICE_NAME_ENV = "HUBSYNC_DEVICE_NAME"


def default_device_name(configured: str = "") -> str:
    """``HUBSYNC_DEVICE_NAME``, else the configured ``[device] name``, else the host name."""
    return os.environ.get(DEVICE_NAME_ENV) or configured or socket.gethostname()


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """One folder a device mirrors."""

    root_id: str
    path: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    name: str
    last_seen: str
    folders: tuple[FolderInfo, ...] = field(default_factory=tuple)

    @property
    def files(self) -> int:
        return sum(f.files for f in self.folders)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.folders)


def summarize(
    devices: Iterable[tuple[str, str, str]],
    current: Iterable[tuple[str, str, str, int]],
) -> list[DeviceInfo]:
    """Devices from (device id, name, last seen) rows and the (device id, root id,
    root path, size) of each current, undeleted file; ordered by name."""
    folders: dict[str, dict[str, list[int | str]]] = {}
    for device_id, root_id, root_path, size in current:
        slot = folders.setdefault(device_id, {}).setdefault(root_id, [root_path, 0, 0])
        slot[1] = int(slot[1]) + 1
        slot[2] = int(slot[2]) + size
    out = [
        DeviceInfo(
            device_id=device_id,
            name=name or device_id[:8],
            last_seen=last_seen or "",
            folders=tuple(
                sorted(
                    (
                        FolderInfo(root_id, str(v[0]), int(v[1]), int(v[2]))
                        for root_id, v in folders.get(device_id, {}).items()
                    ),
                    key=lambda f: f.path,
                )
            ),
        )
        for device_id, name, last_seen in devices
    ]
    return sorted(out, key=lambda d: (d.name, d.device_id))
