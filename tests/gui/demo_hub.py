"""The demo agent's hub: a few devices of one user and their files, served as the real
agent's ``hub.*`` methods answer (docs/control-api.md), for the Hub window's screenshot.

``hub.pull`` only reports progress (``hub_download`` events), slowly, and writes nothing.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
from datetime import datetime, timedelta
from typing import Any

from agent.control.protocol import ControlError
from agent.control.server import ControlServer

NOW = datetime(2026, 12, 3, 9, 41).astimezone()
DEVICES = [
    ("5f0c9a1e-laptop", "ada-laptop", True, 0.1),
    ("8b27d4c0-studio", "studio-imac", False, 2.5),
    ("c41e0f77-nas", "office-nas", False, 30.0),
]
FOLDERS: dict[str, dict[str, list[tuple[str, int, float]]]] = {
    "5f0c9a1e-laptop": {
        "/home/ada/Documents": [
            ("Quarterly report.pdf", 384_512, 3.0),
            ("notes/meeting 2026-12-02.md", 4_210, 20.0),
            ("notes/roadmap.md", 9_877, 50.0),
            ("taxes/2026/receipts.xlsx", 61_440, 240.0),
        ],
        "/home/ada/Code/hubsync": [("README.md", 14_003, 1.0), ("pyproject.toml", 2_318, 6.0)],
        "/home/ada/Pictures": [("2026/IMG_2040.jpg", 3_311_000, 0.2)],
    },
    "8b27d4c0-studio": {
        "/Users/ada/Projects/Site": [
            ("assets/hero.jpg", 2_811_904, 30.0),
            ("assets/logo.svg", 8_702, 400.0),
            ("drafts/launch-copy.docx", 48_128, 26.0),
            ("site-recording.mov", 14_000_000, 4.0),
        ],
    },
    "c41e0f77-nas": {"/volume1/Photos/2026": [("Camera/IMG_3104.jpg", 4_194_304, 700.0)]},
}
"""Per device, per folder: (relative path, size, hours since its last change)."""


def _iso(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat("T", "seconds")


def _sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _files() -> list[dict[str, Any]]:
    names = {device_id: name for device_id, name, _, _ in DEVICES}
    return [
        {
            "hub": "supabase",
            "device_id": device_id,
            "device": names[device_id],
            "folder": folder,
            "path": path,
            "size": size,
            "sha256": _sha(device_id, folder, path),
            "modified": _iso(hours),
            "version": 2 + len(path) % 3,
            "deleted": False,
            "content_type": "application/octet-stream",
        }
        for device_id, folders in FOLDERS.items()
        for folder, entries in folders.items()
        for path, size, hours in entries
    ]


def _devices() -> list[dict[str, Any]]:
    rows = []
    for device_id, name, here, seen in DEVICES:
        folders = [
            {
                "root_id": _sha(folder)[:12],
                "path": folder,
                "files": len(entries),
                "bytes": sum(size for _, size, _ in entries),
            }
            for folder, entries in FOLDERS[device_id].items()
        ]
        rows.append(
            {
                "hub": "supabase",
                "device_id": device_id,
                "name": name,
                "this_device": here,
                "last_seen": _iso(seen),
                "files": sum(f["files"] for f in folders),
                "bytes": sum(f["bytes"] for f in folders),
                "folders": folders,
            }
        )
    return rows


class DemoHub:
    def __init__(self, server: ControlServer, step_delay: float = 0.25) -> None:
        self.server = server
        self.step_delay = step_delay
        self.files = _files()
        for name in ("devices", "find", "versions", "link", "pull"):
            server.register(f"hub.{name}", getattr(self, f"m_{name}"))

    async def m_devices(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"devices": _devices()}

    async def m_find(self, params: dict[str, Any]) -> dict[str, Any]:
        pattern = str(params.get("pattern") or "*").lower()
        device, folder = params.get("device"), params.get("folder")

        def hit(f: dict[str, Any]) -> bool:
            subject = f["path"] if "/" in pattern else f["path"].rsplit("/", 1)[-1]
            return (
                fnmatch.fnmatchcase(subject.lower(), pattern)
                and device in (None, f["device_id"], f["device"])
                and folder in (None, f["folder"])
            )

        return {"files": [f for f in self.files if hit(f)]}

    def _file(self, source: str) -> dict[str, Any]:
        for f in self.files:
            if source == f"{f['device_id']}:{f['folder']}/{f['path']}":
                return f
        raise ControlError("not_found", f"no hub knows {source!r}")

    async def m_versions(self, params: dict[str, Any]) -> dict[str, Any]:
        f = self._file(str(params.get("source")))
        modified = datetime.fromisoformat(f["modified"])
        versions = [
            {
                "version": n,
                "sha256": _sha(f["sha256"], n),
                "size": max(1, f["size"] - (f["version"] - n) * 913),
                "deleted": False,
                "recorded_at": (modified - timedelta(days=3 * (f["version"] - n))).isoformat(),
                "mtime_ns": 0,
            }
            for n in range(1, f["version"] + 1)
        ]
        return {**{k: f[k] for k in ("hub", "device", "folder", "path")}, "versions": versions}

    async def m_link(self, params: dict[str, Any]) -> dict[str, Any]:
        f = self._file(str(params.get("source")))
        key = f"{f['device_id']}/{f['sha256'][:2]}/{f['sha256']}"
        return {
            **{k: f[k] for k in ("hub", "device", "folder", "path", "version", "sha256")},
            "link": f"https://demo.supabase.co/storage/v1/object/sign/user-files/{key}?token=d",
            "link_ttl_seconds": 7 * 86400,
            "ref": f"user-files/{key}",
        }

    async def m_pull(self, params: dict[str, Any]) -> dict[str, Any]:
        source = str(params.get("source"))
        device, _, folder = source.partition(":")
        files = [f for f in self.files if f["device_id"] == device and f["folder"] == folder]
        total = sum(f["size"] for f in files)
        done = 0
        for n, f in enumerate(files, 1):
            for part in range(1, 5):
                self.server.publish(
                    "hub_download",
                    {
                        "source": source,
                        "state": "running",
                        "bytes_done": done + f["size"] * part // 4,
                        "bytes_total": total,
                        "files_done": n - 1,
                        "files_total": len(files),
                    },
                )
                await asyncio.sleep(self.step_delay)
            done += f["size"]
        return {"hub": "supabase", "folder": folder, "files": len(files), "cache_hits": 0}
