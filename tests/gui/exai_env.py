"""A real agent (``hubsync agent`` on a local hub) talking to the EXAI protocol test server,
both in their own processes: what the EXAI dialog's tests and its screenshot run against."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from agent.control.client import AgentUnavailable, call_sync
from agent.platform.paths import Paths, resolve_paths
from tests.exai_server import ExaiTestServer

ROOT = Path(__file__).resolve().parents[2]
SERVER_LINE = re.compile(r"ws://127\.0\.0\.1:(\d+) \(health port (\d+)\)")


class ExaiServerProcess:
    """The EXAI test server in its own process (``python -m tests.gui.exai_env``): tools take
    ``delay`` seconds with progress meanwhile; the server gives up on a call (TIMEOUT) after
    ``call_timeout`` seconds."""

    def __init__(
        self,
        token: str,
        *,
        delay: float = 0.3,
        progress_interval: float = 0.1,
        call_timeout: float = 300.0,
    ) -> None:
        self.token = token
        self.args = [
            "--token",
            token,
            "--delay",
            str(delay),
            "--progress-interval",
            str(progress_interval),
            "--call-timeout",
            str(call_timeout),
        ]
        self.port = 0
        self.health_port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> ExaiServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.gui.exai_env", *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = SERVER_LINE.search(line)
        if found is None:
            self.stop()
            raise RuntimeError(f"the EXAI test server did not start: {line!r}")
        self.port, self.health_port = int(found.group(1)), int(found.group(2))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def stats(self) -> dict[str, Any]:
        """What the server received (``requests``, ``cancels``, ``pings``...)."""
        url = f"http://127.0.0.1:{self.health_port}/test/stats"
        stats: dict[str, Any] = httpx.get(url, timeout=10).json()
        return stats


class ExaiAgent:
    """``hubsync agent`` with ``HUBSYNC_HOME=home`` (local hub) and EXAI from the environment."""

    def __init__(self, home: Path, server: ExaiServerProcess, *, token: str | None = None) -> None:
        self.home = home
        self.paths: Paths = resolve_paths({"HUBSYNC_HOME": str(home)}).ensure()
        config = self.paths.config_dir / "config.toml"
        config.write_text(f"[exai]\nhealth_port = {server.health_port}\n")
        self.env = {
            **os.environ,
            "HUBSYNC_HOME": str(home),
            "HUBSYNC_ALLOW_FILE_SECRETS": "1",
            "XDG_CONFIG_HOME": str(home / "xdg"),
            "EXAI_WS_HOST": "127.0.0.1",
            "EXAI_WS_PORT": str(server.port),
            "EXAI_WS_TOKEN": server.token if token is None else token,
        }
        for name in ("SUPABASE_URL", "SUPABASE_ANON_KEY"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._pool = ThreadPoolExecutor(1)

    @property
    def results_dir(self) -> Path:
        return self.paths.results_dir

    def start(self) -> ExaiAgent:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "agent"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("status")
                return self
            except AgentUnavailable:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.1)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A call from a second client, in a thread (the test thread's loop belongs to Qt)."""
        future = self._pool.submit(call_sync, method, params, socket_path=self.paths.control_socket)
        return future.result(30)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.send_signal(signal.SIGKILL)
                    self.proc.wait(10)
            self.proc = None
        self._pool.shutdown()


async def _serve(args: argparse.Namespace) -> None:
    server = ExaiTestServer(
        token=args.token,
        port=0,
        health_port=0,
        tool_delay=args.delay,
        progress_interval=args.progress_interval,
        call_timeout=args.call_timeout,
    )
    async with server:
        print(f"EXAI test server on {server.url} (health port {server.health_port})", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="The EXAI test server on free ports.")
    parser.add_argument("--token", required=True)
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--progress-interval", type=float, default=0.1)
    parser.add_argument("--call-timeout", type=float, default=300.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
