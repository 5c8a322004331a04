"""Smoke test of the PyInstaller desktop bundle (``packaging/build.sh`` builds it).

Runs only when ``HUBSYNC_TEST_BUNDLE`` names a built bundle folder (``dist/hubsync``),
because building takes a minute or more:

    packaging/build.sh
    HUBSYNC_TEST_BUNDLE=dist/hubsync .venv/bin/python -m pytest tests/test_bundle.py

Every program runs from a copy of the bundle in a temp folder, with a clean environment
(no PYTHONPATH, no virtualenv on PATH, only /usr/bin:/bin) and a working directory
outside the source tree, so a pass proves the bundle needs neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = os.environ.get("HUBSYNC_TEST_BUNDLE", "")

pytestmark = pytest.mark.skipif(
    not BUNDLE,
    reason="bundle smoke test: set HUBSYNC_TEST_BUNDLE=dist/hubsync after packaging/build.sh",
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the built bundle, away from the source tree and the build venv."""
    source = Path(BUNDLE).resolve()
    for program in ("hubsync", "hubsync-tray"):
        assert (source / program).is_file(), f"{source} is not a bundle: no {program}"
    copy = tmp_path_factory.mktemp("bundle") / "hubsync"
    shutil.copytree(source, copy, symlinks=True)
    return copy


class Sandbox:
    """A user account in a temp folder: HUBSYNC_HOME, XDG dirs, a folder to mirror."""

    def __init__(self, base: Path, bundle: Path) -> None:
        self.bundle = bundle
        self.home = base / "hubsync-home"
        self.cwd = base / "cwd"
        self.files = base / "files"
        for folder in (self.cwd, self.files, base / "home"):
            folder.mkdir()
        assert not self.cwd.is_relative_to(ROOT)
        self.env = {
            "HOME": str(base / "home"),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HUBSYNC_HOME": str(self.home),
            "XDG_DATA_HOME": str(base / "home" / "share"),
            "XDG_CONFIG_HOME": str(base / "home" / "config"),
            "XDG_CACHE_HOME": str(base / "home" / "cache"),
            "QT_QPA_PLATFORM": "offscreen",
        }

    @property
    def hub(self) -> Path:
        return self.home / "data" / "hub"

    def run(
        self, program: str, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bundle / program), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, program: str, *args: str) -> str:
        done = self.run(program, *args)
        assert done.returncode == 0, f"{program} {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, program: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(self.bundle / program), *args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def hub_copy(self, data: bytes) -> Path | None:
        """The hub's object holding ``data`` (keys are ``uid/sha[:2]/sha/name``)."""
        sha = hashlib.sha256(data).hexdigest()
        for obj in (self.hub / "user-files").glob(f"*/{sha[:2]}/{sha}/*"):
            if obj.read_bytes() == data:
                return obj
        return None

    def agent_pid(self) -> int | None:
        """The running agent's pid, from its lock file, if that process is alive."""
        try:
            pid = int((self.home / "run" / "agent.lock").read_text("ascii").strip())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None


@pytest.fixture
def sandbox(tmp_path: Path, bundle: Path) -> Sandbox:
    return Sandbox(tmp_path, bundle)


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _stop(pid: int) -> None:
    """SIGTERM a process that may not be our child; SIGKILL it if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def stop_agent(sandbox: Sandbox) -> Iterator[None]:
    """Whatever a test started, no agent outlives it."""
    yield
    pid = sandbox.agent_pid()
    if pid is not None:
        _stop(pid)


def test_version_is_the_one_in_pyproject(sandbox: Sandbox) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert sandbox.ok("hubsync", "--version").strip() == f"hubsync {project['version']}"


def test_sync_once_puts_the_files_in_a_local_hub(sandbox: Sandbox) -> None:
    contents = {
        "notes.txt": b"hello from the bundle\n",
        "sub/deeper/data.bin": os.urandom(300_000),
        "Ünïcode näme.md": "# grüße\n".encode(),
    }
    for rel, data in contents.items():
        path = sandbox.files / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    sandbox.ok("hubsync", "add", str(sandbox.files), "--hub", "local")
    (report,) = json.loads(sandbox.ok("hubsync", "sync", "--once", "--json"))
    assert report["complete"] is True
    assert report["uploaded"] == len(contents)
    assert report["errors"] == {}
    for rel, data in contents.items():
        assert sandbox.hub_copy(data) is not None, f"{rel} is not in the hub"

    (again,) = json.loads(sandbox.ok("hubsync", "sync", "--once", "--json"))
    assert (again["unchanged"], again["uploaded"]) == (len(contents), 0)


def test_supabase_schema_prints_the_shipped_migrations(sandbox: Sandbox) -> None:
    sql = sandbox.ok("hubsync", "supabase", "schema")
    migrations = sorted((ROOT / "resources" / "supabase" / "migrations").glob("*.sql"))
    assert migrations
    for migration in migrations:
        assert f"-- ==== {migration.name} ====" in sql
        assert migration.read_text("utf-8").strip() in sql


def test_doctor_finds_nothing_wrong(sandbox: Sandbox) -> None:
    checks = json.loads(sandbox.ok("hubsync", "doctor", "--json"))
    assert [c for c in checks if not c["ok"]] == []


def test_tray_self_test_opens_and_closes_its_windows(sandbox: Sandbox) -> None:
    out = sandbox.ok("hubsync-tray", "--self-test")
    assert "self-test ok" in out
    assert sandbox.agent_pid() is None  # the self-test never starts an agent


@pytest.fixture
def x_display() -> Iterator[str]:
    """A private Xvfb server; its display name (``:N``, picked by Xvfb itself)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt: xvfb), so the xcb platform cannot be tried")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            number = pipe.readline().strip().decode()
        assert number.isdigit(), "Xvfb did not report a display"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tray_self_test_on_x11(sandbox: Sandbox, x_display: str) -> None:
    sandbox.env |= {"QT_QPA_PLATFORM": "xcb", "DISPLAY": x_display}
    assert "self-test ok" in sandbox.ok("hubsync-tray", "--self-test")


@pytest.mark.usefixtures("stop_agent")
def test_agent_watches_a_folder_and_syncs_a_new_file(sandbox: Sandbox) -> None:
    sandbox.ok("hubsync", "add", str(sandbox.files), "--hub", "local")
    agent = sandbox.start("hubsync", "agent")
    try:
        socket = sandbox.home / "run" / "agent.sock"
        _wait_for("the agent's control socket", socket.exists)
        data = b"saved while the agent runs\n"
        (sandbox.files / "live.txt").write_bytes(data)
        _wait_for("live.txt in the hub", lambda: sandbox.hub_copy(data) is not None)
        assert "Agent: running" in sandbox.ok("hubsync", "status")
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0


@pytest.mark.usefixtures("stop_agent")
def test_tray_starts_this_bundles_agent_without_it_on_path(sandbox: Sandbox) -> None:
    tray = sandbox.start("hubsync-tray")
    try:
        _wait_for("an agent started by the tray", lambda: sandbox.agent_pid() is not None)
        pid = sandbox.agent_pid()
        assert Path(os.readlink(f"/proc/{pid}/exe")) == sandbox.bundle / "hubsync"
        assert tray.poll() is None, "the tray exited"
    finally:
        tray.terminate()
        tray.wait(timeout=20)


def test_install_desktop_points_the_menu_at_this_bundle(sandbox: Sandbox) -> None:
    sandbox.ok("hubsync", "install-desktop")
    share = Path(sandbox.env["XDG_DATA_HOME"])
    entry = (share / "applications" / "hubsync.desktop").read_text("utf-8")
    assert f"Exec={sandbox.bundle / 'hubsync-tray'}\n" in entry
    hicolor = share / "icons" / "hicolor"
    for size in (16, 32, 48, 64, 128, 256, 512):
        png = hicolor / f"{size}x{size}" / "apps" / "hubsync.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (hicolor / "scalable" / "apps" / "hubsync.svg").is_file()

    sandbox.ok("hubsync", "install-desktop", "--uninstall")
    assert not (share / "applications" / "hubsync.desktop").exists()
    assert list(hicolor.glob("*/apps/hubsync.*")) == []


def test_autostart_starts_this_bundles_programs(sandbox: Sandbox) -> None:
    sandbox.ok("hubsync", "autostart", "on", "--headless")
    config = Path(sandbox.env["XDG_CONFIG_HOME"])
    entry = (config / "autostart" / "hubsync.desktop").read_text("utf-8")
    assert f"Exec={sandbox.bundle / 'hubsync-tray'}\n" in entry
    unit = (config / "systemd" / "user" / "hubsync-agent.service").read_text("utf-8")
    assert f"ExecStart={sandbox.bundle / 'hubsync'} agent\n" in unit
    sandbox.ok("hubsync", "autostart", "off")
    assert not (config / "autostart" / "hubsync.desktop").exists()
