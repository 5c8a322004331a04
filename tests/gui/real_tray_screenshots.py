"""Screenshots under a real tray host: Xvfb + openbox + trayer (a light and a dark panel),
the demo agent on a temporary home, and ``hubsync-tray`` as its own process. Not part of
the suite (it drives X with xdotool and shoots with ImageMagick's ``import``):

    .venv/bin/python -m tests.gui.real_tray_screenshots --out docs/screenshots

Writes tray-light-panel.png, tray-dark-panel.png, tray-menu.png, first-run.png,
status-actions.png and status-activity-menu.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.platform.paths import resolve_paths

ROOT = Path(__file__).resolve().parents[2]
DISPLAY = ":87"
SCREEN = (1024, 640)
PANELS = {"light": "0xe8eaed", "dark": "0x202124"}


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def wait_for(cmd: list[str], timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().splitlines()[0]
        time.sleep(0.2)
    raise TimeoutError(" ".join(cmd))


class Desktop:
    """The X server, window manager, panel and the processes started on them."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb"}
        self.env["HUBSYNC_HOME"] = str(home)
        self.env["HOME"] = str(home)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *cmd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def xdo(self, *args: str) -> str:
        return subprocess.run(
            ["xdotool", *args], env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def shoot(self, out: Path, name: str, crop: str | None = None) -> None:
        path = out / f"{name}.png"
        cmd = ["import", "-window", "root"]
        if crop:
            cmd += ["-crop", crop, "+repage"]
        subprocess.run([*cmd, str(path)], env=self.env, check=True)
        print(f"{path}  {path.stat().st_size // 1024} KB")

    def shoot_window(self, out: Path, name: str, title: str) -> None:
        wid = wait_for(["xdotool", "search", "--onlyvisible", "--name", title], 15)
        time.sleep(1.0)
        path = out / f"{name}.png"
        subprocess.run(["import", "-window", wid, "-frame", str(path)], env=self.env, check=True)
        print(f"{path}  {path.stat().st_size // 1024} KB")

    @staticmethod
    def tray_icon_centre() -> tuple[int, int]:
        """trayer sits at the top right, 28 px high, as wide as its one icon."""
        return SCREEN[0] - 14, 14

    def click_in(self, wid: str, x: int, y: int, button: int) -> None:
        """Click at (x, y) from the top left of window ``wid``."""
        self.xdo("mousemove", "--sync", "--window", wid, str(x), str(y))
        time.sleep(0.3)
        self.xdo("click", str(button))

    def click(self, x: int, y: int, button: int) -> None:
        self.xdo("mousemove", "--sync", str(x), str(y))
        time.sleep(0.3)
        self.xdo("click", str(button))


@contextmanager
def desktop(home: Path) -> Iterator[Desktop]:
    d = Desktop(home)
    d.start(
        "xvfb", "Xvfb", DISPLAY, "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"
    )
    time.sleep(1.5)
    try:
        d.start("openbox", "openbox")
        time.sleep(1.0)
        yield d
    finally:
        for name in reversed(list(d.procs)):
            d.stop(name)


def panel(d: Desktop, tint: str) -> None:
    d.stop("trayer")
    d.start(
        "trayer",
        "trayer",
        "--edge",
        "top",
        "--align",
        "right",
        "--widthtype",
        "request",
        "--height",
        "28",
        "--tint",
        tint,
        "--transparent",
        "true",
        "--alpha",
        "0",
        "--SetDockType",
        "true",
    )
    time.sleep(1.5)


def agent(d: Desktop, home: Path, busy: bool) -> None:
    d.stop("tray")
    d.stop("agent")
    paths = resolve_paths(d.env).ensure()
    paths.control_socket.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tests.gui.demo_agent", "--socket", str(paths.control_socket)]
    cmd += ["--hub", str(home / "hub")]
    if busy:
        cmd += ["--busy", "/home/ada"]
    d.start("agent", *cmd)
    deadline = time.monotonic() + 15
    while not paths.control_socket.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo agent did not start")
        time.sleep(0.2)
    time.sleep(0.5)


def tray(d: Desktop) -> None:
    d.stop("tray")
    d.start("tray", str(ROOT / ".venv" / "bin" / "hubsync-tray"), "--no-start-agent")
    time.sleep(4.0)  # embedded, connected, panel sampled (1.5 s after showing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["DISPLAY"] = DISPLAY  # for every xdotool call below
    for tool in ("Xvfb", "openbox", "trayer", "xdotool", "import"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="hs-shots-") as tmp, desktop(Path(tmp)) as d:
        home = Path(tmp)
        strip = f"48x28+{SCREEN[0] - 48}+0"
        agent(d, home, busy=True)
        for name, tint in PANELS.items():
            panel(d, tint)
            tray(d)
            d.shoot(out, f"tray-{name}-panel", strip)
        x, y = d.tray_icon_centre()
        d.click(x, y, 3)
        time.sleep(1.5)
        d.shoot(out, "tray-menu", f"{SCREEN[0] // 2}x{SCREEN[1]}+{SCREEN[0] // 2}+0")
        d.xdo("key", "Escape")
        d.click(x, y, 1)
        d.shoot_window(out, "status-actions", "HubSync")
        wid = wait_for(["xdotool", "search", "--onlyvisible", "--name", "HubSync"])
        d.click_in(wid, 123, 109, 1)  # the Activity tab
        time.sleep(0.8)
        d.click_in(wid, 200, 168, 3)  # its first row
        time.sleep(1.0)
        d.shoot(out, "status-activity-menu", f"{SCREEN[0]}x{SCREEN[1]}+0+0")
        d.xdo("key", "Escape")
        agent(d, home, busy=False)
        tray(d)
        d.click(x, y, 1)
        d.shoot_window(out, "first-run", "HubSync")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
