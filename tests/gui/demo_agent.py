"""A stand-in agent for the tray tests and screenshots, served by the real control server.

It answers every method the tray uses with payloads of the exact shapes the real agent
must return (see the tray section of docs/control-api.md and the report), uploads
dropped files for real into a local hub folder, and offers two test-only methods:
``emit`` (publish an event and fold it into the model) and ``flood`` (push N progress
events as fast as the server takes them).

Run: ``python -m tests.gui.demo_agent --socket PATH --hub DIR [--busy]``; prints
``ready`` once it listens and exits on ``shutdown`` or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import stat
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.control.protocol import BAD_PARAMS, ControlError
from agent.control.server import ControlServer

PASSWORD = "correct horse battery staple"
CHUNK = 64 * 1024


class DemoAgent:
    def __init__(
        self, socket_path: Path, hub: Path, *, chunk_delay: float = 0.02, queue_limit: int = 1000
    ) -> None:
        self.server = ControlServer(socket_path, queue_limit=queue_limit, server_info={"agent": "demo"})
        self.hub = hub
        self.chunk_delay = chunk_delay
        self.stopped = asyncio.Event()
        self.paused = False
        self.user: str | None = None
        self.config: dict[str, Any] = asdict(Config())
        self.autostart = False
        self.secrets: dict[str, str] = {}
        self.roots: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.activity: list[dict[str, Any]] = []
        self.health: dict[str, Any] = {
            "state": "online", "checked_at": time.time(), "latency_ms": 3.2,
            "remote": str(hub), "user": None, "message": None,
        }
        self.progress: dict[str, Any] = {}
        self.last_sync = time.time() - 120
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        for name in ("status", "pause", "resume", "add_root", "remove_root", "set_ignore",
                     "upload_paths", "activity", "metrics", "retry", "config_get", "config_set",
                     "set_secret", "sign_in", "sign_out", "shutdown", "emit", "flood"):
            self.server.register(name, getattr(self, f"m_{name}"))

    # -- model -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        busy = bool(self.progress.get("active"))
        return {
            "state": "paused" if self.paused else ("syncing" if busy else "idle"),
            "paused": self.paused,
            "last_sync": self.last_sync,
            "hub": self.hub_info(),
            "roots": list(self.roots.values()),
            "errors": list(self.errors.values()),
            "features": [],
            "health": self.health,
            "progress": self.progress,
        }

    def hub_info(self) -> dict[str, Any]:
        url = self.config["supabase"]["url"]
        if url and self.user:
            return {"kind": "supabase", "location": url, "user": self.user}
        return {"kind": "local", "location": str(self.hub), "user": None}

    def publish_status(self) -> None:
        self.server.publish("status", self.status())

    def add_activity(self, kind: str, path: str, detail: str | None = None) -> None:
        item = {"time": time.time(), "kind": kind, "path": path, "root": None, "detail": detail}
        self.activity.insert(0, item)
        self.server.publish("activity", item)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- methods -------------------------------------------------------------------------------

    async def m_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.status()

    async def m_pause(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_paused(params, True)

    async def m_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_paused(params, False)

    def _set_paused(self, params: dict[str, Any], paused: bool) -> dict[str, Any]:
        root = params.get("root")
        if root:
            entry = self._root(root)
            entry["state"] = "paused" if paused else "ok"
            entry["reason"] = "paused by you" if paused else None
        else:
            self.paused = paused
        self.publish_status()
        return self.status()

    def _root(self, path: Any) -> dict[str, Any]:
        if path not in self.roots:
            raise ControlError(BAD_PARAMS, f"{path} is not a synced folder")
        return self.roots[path]

    async def m_add_root(self, params: dict[str, Any]) -> dict[str, Any]:
        path = str(params.get("path") or "")
        if not Path(path).is_dir():
            raise ControlError(BAD_PARAMS, f"{path} is not a folder")
        entry = {"path": path, "state": "ok", "reason": None, "files": 0,
                 "ignore": list(params.get("ignore") or [])}
        self.roots[path] = entry
        self.publish_status()
        return entry

    async def m_remove_root(self, params: dict[str, Any]) -> dict[str, Any]:
        self._root(params.get("path"))
        del self.roots[params["path"]]
        self.publish_status()
        return {}

    async def m_set_ignore(self, params: dict[str, Any]) -> dict[str, Any]:
        entry = self._root(params.get("path"))
        entry["ignore"] = [str(p) for p in params.get("patterns") or []]
        self.publish_status()
        return entry

    async def m_upload_paths(self, params: dict[str, Any]) -> dict[str, Any]:
        upload_id = f"u{next(self._ids)}"
        accepted, rejected = [], []
        for raw in params.get("paths") or []:
            path = Path(str(raw))
            try:
                st = path.stat()
            except OSError as exc:
                rejected.append({"path": str(path), "reason": f"cannot be read: {exc.strerror}"})
                continue
            if stat.S_ISDIR(st.st_mode):
                files = [p for p in sorted(path.rglob("*")) if p.is_file()]
                total = sum(p.stat().st_size for p in files)
                accepted.append({"path": str(path), "kind": "dir", "bytes_total": total,
                                 "files_total": len(files)})
            elif stat.S_ISREG(st.st_mode):
                files, total = [path], st.st_size
                accepted.append({"path": str(path), "kind": "file", "bytes_total": total,
                                 "files_total": 1})
            else:
                rejected.append({"path": str(path), "reason": "not a regular file"})
                continue
            self.spawn(self._upload(upload_id, path, files, total))
        return {"upload_id": upload_id, "accepted": accepted, "rejected": rejected}

    async def _upload(self, upload_id: str, top: Path, files: list[Path], total: int) -> None:
        base = {"kind": "upload", "upload_id": upload_id, "path": str(top),
                "bytes_total": total, "files_total": len(files), "link": None, "error": None}
        link = self.hub / "uploads" / upload_id / top.name
        done = 0
        try:
            for index, source in enumerate(files):
                dest = link if source == top else link / source.relative_to(top)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(source, "rb") as src, open(dest, "wb") as out:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        self.server.publish("progress", {**base, "state": "uploading",
                                                         "bytes_done": done, "files_done": index})
                        await asyncio.sleep(self.chunk_delay)
        except OSError as exc:
            self.server.publish("progress", {**base, "state": "error", "bytes_done": done,
                                             "files_done": 0, "error": exc.strerror or str(exc)})
            return
        self.server.publish("progress", {**base, "state": "done", "bytes_done": total,
                                         "files_done": len(files), "link": str(link)})
        self.add_activity("uploaded", str(top), "one-off upload")

    async def m_activity(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"items": self.activity[: int(params.get("limit") or 50)]}

    async def m_metrics(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(self.config["cache"]["size_limit_bytes"])
        return {
            "cache": {"size_bytes": 412 * 1024 * 1024, "limit_bytes": limit, "entries": 18_342,
                      "hits": 9_120, "misses": 1_480, "hit_rate": 9_120 / 10_600},
            "dedup": {"saved_bytes": 2_871 * 1024 * 1024, "saved_files": 4_211},
        }

    async def m_retry(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("ids") or list(self.errors)
        retried = 0
        for key in ids:
            if self.errors.pop(str(key), None) is not None:
                retried += 1
                self.server.publish("error", {"id": str(key), "resolved": True})
        return {"retried": retried}

    def config_result(self) -> dict[str, Any]:
        return {"config": self.config, "autostart": self.autostart,
                "secrets": {"exai_token": "exai_token" in self.secrets},
                "account": {"signed_in": self.user is not None, "user": self.user}}

    async def m_config_get(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.config_result()

    async def m_config_set(self, params: dict[str, Any]) -> dict[str, Any]:
        changes = params.get("config") or {}
        for section, values in changes.items():
            known = self.config.get(section)
            if not isinstance(known, dict) or not isinstance(values, dict) or set(values) - set(known):
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
            raise ControlError("not_configured", "set the Supabase URL and anon key first")
        if params.get("password") != PASSWORD:
            raise ControlError("auth", "Invalid login credentials")
        self.user = str(params.get("email"))
        self.health = {**self.health, "user": self.user, "state": "online"}
        self.server.publish("health", self.health)
        return {"signed_in": True, "user": self.user}

    async def m_sign_out(self, params: dict[str, Any]) -> dict[str, Any]:
        self.user = None
        self.health = {**self.health, "user": None}
        self.server.publish("health", self.health)
        return {"signed_in": False, "user": None}

    async def m_shutdown(self, params: dict[str, Any]) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, self.stopped.set)
        return {"stopping": True}

    async def m_emit(self, params: dict[str, Any]) -> dict[str, Any]:
        """Test-only: publish an event and keep the model consistent with it."""
        event, data = str(params.get("event")), params.get("data")
        if not isinstance(data, dict):
            raise ControlError(BAD_PARAMS, "data must be an object")
        if event == "error":
            if data.get("resolved"):
                self.errors.pop(str(data.get("id")), None)
            else:
                self.errors[str(data.get("id"))] = data
        elif event == "health":
            self.health = data
        elif event == "progress" and data.get("kind") != "upload":
            self.progress = data
        elif event == "activity":
            self.activity.insert(0, data)
        elif event == "status":
            self.paused = bool(data.get("paused", self.paused))
            data = self.status()
        return {"seq": self.server.publish(event, data)}

    async def m_flood(self, params: dict[str, Any]) -> dict[str, Any]:
        """Test-only: progress of ``files`` files, one event per finished file, unthrottled."""
        files = int(params.get("files") or 10_000)
        size = 48_000
        started = time.monotonic()
        for done in range(1, files + 1):
            name = f"photos/2026/IMG_{done:05d}.jpg"
            self.progress = {
                "kind": "sync", "files_done": done, "files_total": files,
                "bytes_done": done * size, "bytes_total": files * size,
                "speed_bps": 12_000_000.0, "eta_seconds": (files - done) * 0.004,
                "active": [{"path": name, "root": "/home/ada/Pictures", "direction": "up",
                            "bytes_done": size // 2, "bytes_total": size}],
                "queued": files - done,
                "queue": [{"path": f"photos/2026/IMG_{n:05d}.jpg", "size": size}
                          for n in range(done + 1, min(done + 6, files + 1))],
            }
            self.server.publish("progress", self.progress)
            self.server.publish("activity", {"time": time.time(), "kind": "uploaded",
                                             "path": name, "root": "/home/ada/Pictures",
                                             "detail": None})
            if done % 50 == 0:
                await asyncio.sleep(0)  # let the writers drain, as a real engine would
        return {"sent": files * 2, "seconds": time.monotonic() - started}

    # -- presets ----------------------------------------------------------------------------

    def make_busy(self, home: Path) -> None:
        """A realistic mid-sync picture for screenshots."""
        now = time.time()
        for name, state, reason, files in (
            ("Documents", "ok", None, 12_408), ("Pictures", "ok", None, 48_112),
            ("Projects", "degraded", "inotify watch limit reached; rescanning every 10 min", 203_551),
            ("Music", "paused", "paused by you", 9_870),
        ):
            path = str(home / name)
            self.roots[path] = {"path": path, "state": state, "reason": reason, "files": files,
                                "ignore": ["*.tmp", "~$*", ".DS_Store"] + (["node_modules/", ".venv/"]
                                                                          if name == "Projects" else [])}
        self.user = "ada@example.com"
        self.health = {"state": "online", "checked_at": now - 12, "latency_ms": 42.0,
                       "remote": "https://abcd1234.supabase.co", "user": self.user, "message": None}
        files = [("Pictures/2026/IMG_2041.jpg", 4_812_000, 3_106_000),
                 ("Projects/site/video/intro.mp4", 182_000_000, 61_400_000),
                 ("Documents/Taxes/2025-return.pdf", 1_240_000, 200_000)]
        self.progress = {
            "kind": "sync", "files_done": 1_873, "files_total": 2_410,
            "bytes_done": 3_481_000_000, "bytes_total": 5_120_000_000,
            "speed_bps": 11_800_000.0, "eta_seconds": 139.0,
            "active": [{"path": f"{home}/{p}", "root": str(home / p.split('/')[0]), "direction": "up",
                        "bytes_done": d, "bytes_total": t} for p, t, d in files],
            "queued": 534,
            "queue": [{"path": f"{home}/Pictures/2026/IMG_{n}.jpg", "size": 3_900_000 + n * 917}
                      for n in range(2042, 2050)],
        }
        for i, (kind, path, detail) in enumerate((
            ("uploaded", "Pictures/2026/IMG_2040.jpg", None),
            ("uploaded", "Documents/Notes/meeting-2026-11-26.md", None),
            ("downloaded", "Documents/Shared/budget.xlsx", "changed on laptop-ada"),
            ("deleted", "Projects/site/old-logo.svg", None),
            ("processed", "Documents/Reports/q3.pdf", "summary ready"),
            ("renamed", "Pictures/2026/holiday.jpg", "from IMG_1999.jpg"),
            ("error", "Projects/site/.env.local", "permission denied"),
            ("uploaded", "Projects/site/index.html", None),
            ("conflict", "Documents/Shared/plan.docx", "kept both copies"),
            ("uploaded", "Music/playlist.m3u", None),
        )):
            self.activity.append({"time": now - 30 - i * 340, "kind": kind,
                                  "path": f"{home}/{path}", "root": None, "detail": detail})
        self.errors = {
            "e1": {"id": "e1", "path": f"{home}/Projects/site/.env.local", "kind": "local",
                   "reason": "permission denied", "attempts": 3, "next_retry": None},
            "e2": {"id": "e2", "path": f"{home}/Pictures/raw/DSC_0042.NEF", "kind": "quota",
                   "reason": "larger than the bucket's 50 MB file limit", "attempts": 1,
                   "next_retry": None},
            "e3": {"id": "e3", "path": f"{home}/Documents/big-archive.zip", "kind": "transient",
                   "reason": "HTTP 503 from storage; retrying", "attempts": 2,
                   "next_retry": now + 95},
        }
        self.config["supabase"].update(url="https://abcd1234.supabase.co",
                                       anon_key="eyJhbGciOiJIUzI1NiJ9.demo-anon-key")
        self.config["agent"].update(upload_limit_kbps=2048)
        self.secrets["exai_token"] = "demo"
        self.autostart = True

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
    args = parser.parse_args()
    args.hub.mkdir(parents=True, exist_ok=True)
    agent = DemoAgent(args.socket, args.hub, chunk_delay=args.chunk_delay, queue_limit=args.queue_limit)
    if args.busy:
        agent.make_busy(args.busy)
    asyncio.run(agent.run())


if __name__ == "__main__":
    main()
