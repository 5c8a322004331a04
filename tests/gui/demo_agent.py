"""A stand-in agent for the tray tests and screenshots, served by the real control server.

The methods answer with the real agent's shapes (docs/control-api.md): ``status``,
``pause``, ``resume``, ``add_root``, ``remove_root``, ``upload_paths``, ``activity``,
``retry``, ``quit`` and the settings methods ``config_get``, ``config_set``,
``set_secret``, ``sign_in``, ``sign_out``, ``set_ignore`` (left out with
``--no-settings``, like an agent from before they existed).
Dropped files are really copied into a local hub folder. Two test-only methods:
``emit`` (publish an event and fold it into the model) and ``flood`` (push progress
for N files as fast as the server takes it).

Run: ``python -m tests.gui.demo_agent --socket PATH --hub DIR [--busy HOME]``; prints
``ready`` once it listens and exits on ``quit`` or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import stat
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.control.protocol import BAD_PARAMS, ControlError
from agent.control.server import ControlServer
from tests.gui.demo_hub import DemoHub

PASSWORD = "correct horse battery staple"
CHUNK = 64 * 1024
SUPABASE_URL = "https://abcd1234.supabase.co"


def _health(
    state: str = "online", latency: float | None = 0.004, reason: str | None = None
) -> dict[str, Any]:
    return {
        "state": state,
        "latency": latency,
        "last_check": time.time(),
        "consecutive_failures": 0 if state == "online" else 2,
        "reason": reason,
    }


def _root(path: str, hub: str, **extra: Any) -> dict[str, Any]:
    """A folder as the real agent's ``status`` shows it (agent.control.payloads.RootStatus)."""
    return {
        "id": uuid.uuid4().hex,
        "path": path,
        "hub": hub,
        "paused": False,
        "degraded": None,
        "missing": False,
        "watching": True,
        "ignore": [],
        "counts": {},
        "held": [],
        "answering": False,
        "pass_due": False,
        "waiting": 0,
        "waiting_sample": [],
        "problems": [],
        **extra,
    }


class DemoAgent:
    def __init__(
        self,
        socket_path: Path,
        hub: Path,
        *,
        chunk_delay: float = 0.02,
        queue_limit: int = 1000,
        settings: bool = True,
    ) -> None:
        self.server = ControlServer(
            socket_path, queue_limit=queue_limit, server_info={"version": "demo", "pid": 0}
        )
        self.hub = hub
        self.hub_label = str(hub)
        self.chunk_delay = chunk_delay
        self.stopped = asyncio.Event()
        self.paused = False
        self.paused_until: float | None = None
        self.user: str | None = None
        self.config: dict[str, Any] = asdict(Config())
        self.autostart = False
        self.secrets: dict[str, str] = {}
        self.roots: dict[str, dict[str, Any]] = {}
        self.passes: list[dict[str, Any]] = []
        self.operations: list[dict[str, Any]] = []
        self.health: dict[str, dict[str, Any]] = {"local": _health()}
        self.progress: dict[str, Any] | None = None
        self.queue = 0
        self.cache = {
            "entries": 0,
            "bytes": 0,
            "limit": 1024**3,
            "hits": 0,
            "misses": 0,
            "hit_rate": 0.0,
        }
        self.counters = {
            "files_uploaded": 0,
            "bytes_uploaded": 0,
            "dedup_hits": 0,
            "dedup_bytes_saved": 0,
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        names = [
            "status",
            "pause",
            "resume",
            "add_root",
            "remove_root",
            "upload_paths",
            "activity",
            "retry",
            "quit",
            "emit",
            "flood",
        ]
        if settings:  # without them: an agent from before the settings methods
            names += ["config_get", "config_set", "set_secret", "sign_in", "sign_out", "set_ignore"]
        for name in names:
            self.server.register(name, getattr(self, f"m_{name}"))
        DemoHub(self.server)

    # -- model (the real agent's status snapshot) ----------------------------------------

    def state(self) -> str:
        states = {h["state"] for h in self.health.values()}
        if self.paused:
            return "paused"
        if "signin_needed" in states:
            return "signin_needed"
        if "offline" in states:
            return "offline"
        if self.progress is not None and self.progress.get("phase") != "done":
            return "syncing"
        if any(r["problems"] for r in self.roots.values()):
            return "error"
        return "idle"

    def status(self) -> dict[str, Any]:
        hubs = {"local": self.hub_label}
        unavailable = {}
        if self.config["supabase"]["url"] and self.user:
            hubs["supabase"] = self.config["supabase"]["url"]
        else:
            unavailable["supabase"] = (
                "Supabase is not configured (set the URL and anon key, then sign in)"
            )
        return {
            "state": self.state(),
            "paused": self.paused,
            "paused_until": self.paused_until,
            "disk_full": None,
            "roots": list(self.roots.values()),
            "queue": self.queue,
            "progress": self.progress,
            "health": self.health,
            "exai": None,
            "history": {"enabled": True, "rounds": 0, "compressed": 0, "hubs": {}},
            "hubs": hubs,
            "unavailable": unavailable,
            "cache": self.cache,
            "prefetch": {
                "enabled": False,
                "state": "off",
                "prefetched": 0,
                "hits": 0,
                "wasted_bytes": 0,
                "bytes": 0,
                "hit_rate_without": 0.0,
            },
            "metrics": {
                "since": time.time() - 3600,
                "counters": self.counters,
                "errors": {},
                "gauges": {"queue_length": self.queue},
                "latency": {},
            },
        }

    def publish_status(self) -> None:
        self.server.publish("status", self.status())

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _root(self, path: Any) -> dict[str, Any]:
        if path not in self.roots:
            raise ControlError("not_found", f"{path} is not a mirrored folder")
        return self.roots[path]

    # -- the real agent's methods -------------------------------------------------------

    async def m_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.status()

    async def m_pause(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_paused(params, True)

    async def m_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_paused(params, False)

    def _set_paused(self, params: dict[str, Any], paused: bool) -> dict[str, Any]:
        if params.get("root"):
            self._root(params["root"])["paused"] = paused
        else:
            self.paused = paused
            seconds = params.get("for_seconds") if paused else None
            self.paused_until = None if seconds is None else time.time() + float(seconds)
        self.publish_status()
        return self.status()

    async def m_add_root(self, params: dict[str, Any]) -> dict[str, Any]:
        path = str(params.get("path") or "")
        if not Path(path).is_dir():
            raise ControlError(BAD_PARAMS, f"{path} is not a folder")
        root = _root(path, "local")
        self.roots[path] = root
        self.publish_status()
        return {"id": root["id"], "path": path, "hub": "local"}

    async def m_remove_root(self, params: dict[str, Any]) -> dict[str, Any]:
        self._root(params.get("path"))
        del self.roots[params["path"]]
        self.publish_status()
        return {"removed": params["path"]}

    async def m_upload_paths(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("paths")
        if not isinstance(raw, list):
            raise ControlError(BAD_PARAMS, "'paths' must be a list of paths")
        items = []
        for top in (Path(p) for p in raw):
            files = (
                [
                    (p, f"{top.name}/{p.relative_to(top)}")
                    for p in sorted(top.rglob("*"))
                    if p.is_file()
                ]
                if top.is_dir()
                else [(top, top.name)]
            )
            for path, name in files:
                items.append(await self._upload_one(path, name))
        return {"items": items}

    async def _upload_one(self, path: Path, name: str) -> dict[str, Any]:
        item: dict[str, Any] = {"path": str(path), "name": name, "state": "hashing"}
        self.server.publish("upload", dict(item))
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                raise OSError("not a regular file")
            size = path.stat().st_size
            digest = hashlib.sha256()
            dest = self.hub / "user-files" / "local" / uuid.uuid4().hex[:8] / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            sent = 0
            with open(path, "rb") as src, open(dest, "wb") as out:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    sent += len(chunk)
                    self.server.publish(
                        "upload",
                        {**item, "state": "uploading", "bytes_done": sent, "bytes_total": size},
                    )
                    await asyncio.sleep(self.chunk_delay)
            item.update(
                state="done",
                ok=True,
                key=f"local/{digest.hexdigest()}/{path.name}",
                sha256=digest.hexdigest(),
                size=size,
                link=dest.as_uri(),
                deduplicated=False,
            )
        except OSError as exc:
            item.update(state="failed", ok=False, error=exc.strerror or str(exc), kind="local")
        self.server.publish("upload", dict(item))
        return item

    async def m_activity(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit", 50))
        return {"passes": self.passes[:limit], "operations": self.operations[:limit]}

    async def m_retry(self, params: dict[str, Any]) -> dict[str, Any]:
        count = 0
        for path, root in self.roots.items():
            if params.get("root") in (None, path):
                count += len(root["problems"])
                root["problems"] = []
        self.publish_status()
        return {"retrying": count}

    async def m_quit(self, params: dict[str, Any]) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, self.stopped.set)
        return {"stopping": True}

    # -- the settings methods the tray asks for ------------------------------------------

    def config_result(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "autostart": self.autostart,
            "secrets": {"exai_token": "exai_token" in self.secrets},
            "account": {"signed_in": self.user is not None, "user": self.user},
        }

    async def m_config_get(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.config_result()

    async def m_config_set(self, params: dict[str, Any]) -> dict[str, Any]:
        changes = params.get("config") or {}
        for section, values in changes.items():
            known = self.config.get(section)
            if (
                not isinstance(known, dict)
                or not isinstance(values, dict)
                or set(values) - set(known)
            ):
                raise ControlError(BAD_PARAMS, f"unknown setting in [{section}]")
        for section, values in changes.items():
            self.config[section].update(values)
        if "autostart" in params:
            self.autostart = bool(params["autostart"])
        return self.config_result()

    async def m_set_secret(self, params: dict[str, Any]) -> dict[str, Any]:
        name, value = params.get("name"), params.get("value")
        if name != "exai_token":
            raise ControlError(BAD_PARAMS, "unknown secret")
        if value:
            self.secrets[name] = str(value)
        else:
            self.secrets.pop(name, None)
        return {"name": name, "set": name in self.secrets}

    async def m_sign_in(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.config["supabase"]["url"]:
            raise ControlError("unavailable", "set the Supabase URL and anon key first")
        if params.get("password") != PASSWORD:
            raise ControlError("auth", "Invalid login credentials")
        self.user = str(params.get("email"))
        self.health["supabase"] = {**_health(latency=0.042), "user": self.user}
        self.server.publish("health", {"hub": "supabase", **self.health["supabase"]})
        self.publish_status()
        return {"signed_in": True, "user": self.user}

    async def m_sign_out(self, params: dict[str, Any]) -> dict[str, Any]:
        self.user = None
        self.health.pop("supabase", None)
        self.publish_status()
        return {"signed_in": False, "user": None}

    async def m_set_ignore(self, params: dict[str, Any]) -> dict[str, Any]:
        root = self._root(params.get("path"))
        root["ignore"] = [str(p) for p in params.get("patterns") or []]
        self.publish_status()
        return {"path": root["path"], "ignore": root["ignore"]}

    # -- test-only -------------------------------------------------------------------------

    async def m_emit(self, params: dict[str, Any]) -> dict[str, Any]:
        """Publish an event and keep the model consistent with it, as the agent would."""
        event, data = str(params.get("event")), params.get("data")
        if not isinstance(data, dict):
            raise ControlError(BAD_PARAMS, "data must be an object")
        if event == "error" and data.get("root") in self.roots and data.get("path"):
            self.roots[data["root"]]["problems"].append(
                {"path": data["path"], "kind": data.get("kind"), "reason": data.get("reason")}
            )
        elif event == "health":
            self.health[str(data.get("hub"))] = {k: v for k, v in data.items() if k != "hub"}
        elif event == "progress":
            self.progress = data
        elif event == "activity":
            self.passes.insert(0, data)
            self.operations[:0] = params.get("operations") or []
        return {"seq": self.server.publish(event, data)}

    async def m_flood(self, params: dict[str, Any]) -> dict[str, Any]:
        """Sync of ``files`` files, unthrottled: a ``hash`` and an ``upload`` progress event per
        file, an error for every 50th file and a pass summary every 100 files."""
        files = int(params.get("files") or 10_000)
        root = next(iter(self.roots), "/home/ada/Pictures")
        size = 48_000
        started = time.monotonic()
        sent = 0
        for done in range(1, files + 1):
            name = f"photos/2026/IMG_{done:05d}.jpg"
            for phase in ("hash", "upload"):
                self.progress = {
                    "phase": phase,
                    "root": root,
                    "files_done": done,
                    "files_total": files,
                    "bytes_done": done * size,
                    "bytes_total": files * size,
                    "current": name,
                    "current_size": size,
                }
                self.server.publish("progress", self.progress)
                sent += 1
            if done % 50 == 0:
                self.server.publish(
                    "error",
                    {"root": root, "path": name, "kind": "local", "reason": "permission denied"},
                )
                sent += 1
            if done % 100 == 0:
                self.server.publish(
                    "activity",
                    {
                        "ts": time.time(),
                        "root": root,
                        "kind": "sync",
                        "recorded": 100,
                        "uploaded": 100,
                        "uploaded_bytes": 100 * size,
                        "deduplicated": 0,
                        "deleted": 0,
                        "held_deletes": 0,
                        "errors": 2,
                        "duration": 0.4,
                    },
                )
                sent += 1
                await asyncio.sleep(0)  # let the writers drain, as a real engine would
        self.progress = {**(self.progress or {}), "phase": "done"}
        self.server.publish("progress", self.progress)
        return {"sent": sent + 1, "seconds": time.monotonic() - started}

    # -- presets ----------------------------------------------------------------------------

    def make_busy(self, home: Path) -> None:
        """A realistic mid-sync picture for screenshots."""
        now = time.time()
        for name, files, extra in (
            ("Documents", 12_408, {}),
            ("Pictures", 48_112, {}),
            (
                "Projects",
                203_551,
                {
                    "degraded": "inotify watch limit reached (8,192 watches for "
                    "31,004 folders); rescanning every 10 min"
                },
            ),
            ("Music", 9_870, {"paused": True}),
        ):
            path = str(home / name)
            counts = {"synced": files - 3, "error": 3} if name == "Projects" else {"synced": files}
            self.roots[path] = _root(
                path,
                "supabase",
                counts=counts,
                ignore=["*.tmp", "~$*", ".DS_Store"],
                **extra,
            )
        self.roots[str(home / "Projects")]["ignore"] += ["node_modules/", ".venv/", "dist/"]
        self.roots[str(home / "Projects")]["problems"] = [
            {"path": "site/.env.local", "kind": "local", "reason": "permission denied"},
            {
                "path": "video/raw/take-04.mov",
                "kind": "quota",
                "reason": "larger than the bucket's 50 MB file limit",
            },
            {
                "path": "data/export.csv",
                "kind": "transient",
                "reason": "HTTP 503 from storage; retrying",
            },
        ]
        self.user = "ada@example.com"
        self.config["supabase"].update(
            url=SUPABASE_URL, anon_key="eyJhbGciOiJIUzI1NiJ9.demo-anon-key"
        )
        self.config["agent"].update(upload_limit_kbps=2048)
        self.secrets["exai_token"] = "demo"
        self.autostart = True
        self.health = {
            "local": _health(latency=0.003),
            "supabase": {**_health(latency=0.042), "user": self.user},
        }
        self.hub_label = str(home / ".local/share/hubsync/hub")
        # "active" and "queue" are additions the tray asks for (docs/tray.md); the tray
        # shows "current" alone when they are absent.
        self.progress = {
            "phase": "upload",
            "root": str(home / "Pictures"),
            "files_done": 1_873,
            "files_total": 2_410,
            "bytes_done": 3_481_000_000,
            "bytes_total": 5_120_000_000,
            "current": "2026/IMG_2041.jpg",
            "active": [
                {"path": f"{home}/{p}", "bytes_done": d, "bytes_total": t}
                for p, t, d in (
                    ("Pictures/2026/IMG_2041.jpg", 4_812_000, 3_106_000),
                    ("Projects/site/video/intro.mp4", 182_000_000, 61_400_000),
                    ("Documents/Taxes/2025-return.pdf", 1_240_000, 200_000),
                )
            ],
        }
        # Files waiting for a pass: counted in files, some of them named (the tray lists
        # those and says how many more there are).
        pictures = self.roots[str(home / "Pictures")]
        pictures["waiting"] = 534
        pictures["waiting_sample"] = [
            {"path": f"2026/IMG_{n}.jpg", "size": 3_900_000 + n * 917} for n in range(2042, 2050)
        ]
        self.queue = 534
        self.cache = {
            "entries": 18_342,
            "bytes": 412 * 1024**2,
            "limit": 1024**3,
            "hits": 9_120,
            "misses": 1_480,
            "hit_rate": 9_120 / 10_600,
        }
        self.counters = {
            "files_uploaded": 20_118,
            "bytes_uploaded": 41 * 1024**3,
            "dedup_hits": 4_211,
            "dedup_bytes_saved": 2_871 * 1024**2,
        }
        ids = {Path(p).name: r["id"] for p, r in self.roots.items()}
        for i, (kind, folder, rel, detail) in enumerate(
            (
                ("upload", "Pictures", "2026/IMG_2040.jpg", None),
                ("upload", "Documents", "Notes/meeting-2026-11-26.md", None),
                ("restore", "Documents", "Shared/budget.xlsx", "version 12"),
                ("delete", "Projects", "site/old-logo.svg", None),
                ("process", "Documents", "Reports/q3.pdf", "summary ready"),
                ("upload", "Projects", "site/index.html", None),
                ("upload", "Pictures", "2026/IMG_2039.jpg", None),
                ("delete", "Documents", "Drafts/old-plan.docx", None),
                ("upload", "Music", "playlist.m3u", None),
                ("upload", "Pictures", "2026/IMG_2038.jpg", None),
            )
        ):
            self.operations.append(
                {
                    "ts": now - 30 - i * 340,
                    "kind": kind,
                    "root_id": ids[folder],
                    "relpath": rel,
                    "sha256": "",
                    "bytes": 0,
                    "detail": detail,
                }
            )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopped.set)
        async with self.server:
            print("ready", flush=True)
            await self.stopped.wait()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--hub", type=Path, required=True)
    parser.add_argument("--busy", type=Path, help="preset a mid-sync picture under this home")
    parser.add_argument("--chunk-delay", type=float, default=0.02)
    parser.add_argument("--queue-limit", type=int, default=1000)
    parser.add_argument("--no-settings", action="store_true", help="serve no settings methods")
    args = parser.parse_args()
    args.hub.mkdir(parents=True, exist_ok=True)
    agent = DemoAgent(
        args.socket,
        args.hub,
        chunk_delay=args.chunk_delay,
        queue_limit=args.queue_limit,
        settings=not args.no_settings,
    )
    if args.busy:
        agent.make_busy(args.busy)
    asyncio.run(agent.run())


if __name__ == "__main__":
    main()
