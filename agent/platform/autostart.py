"""``hubsync autostart on|off|status``: start HubSync when the user logs in.

* Linux: an XDG autostart entry (``$XDG_CONFIG_HOME/autostart/hubsync.desktop``)
  that starts the tray, which starts the agent; on a headless machine (or on
  request) a systemd user unit ``hubsync-agent.service`` that runs the agent,
  enabled by the same symlink ``systemctl --user enable`` would make.
* macOS: a LaunchAgent plist in ``~/Library/LaunchAgents`` (loaded at next login).
* Windows: a ``hubsync.cmd`` in the user's Startup folder.

The file contents come from pure functions (``desktop_entry``, ``systemd_unit``,
``launch_agent_plist``, ``windows_startup_cmd``) and ``plan`` decides where
they go, so every platform is testable anywhere.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAUNCH_AGENT_LABEL = "io.hubsync.agent"
SYSTEMD_UNIT = "hubsync-agent.service"
DESKTOP_FILE = "hubsync.desktop"
WINDOWS_FILE = "hubsync.cmd"


@dataclass(frozen=True)
class AutostartFile:
    kind: str
    """``xdg``, ``systemd``, ``launchagent`` or ``startup``."""
    path: Path
    content: str
    link: Path | None = None
    """A symlink to ``path`` that enables it (systemd's ``default.target.wants``)."""


@dataclass(frozen=True)
class Commands:
    tray: list[str] = field(default_factory=list)
    agent: list[str] = field(default_factory=list)


def default_commands() -> Commands:
    """The installed scripts when present, else this interpreter running the modules."""
    tray = shutil.which("hubsync-tray")
    agent = shutil.which("hubsync")
    return Commands(
        tray=[tray] if tray else [sys.executable, "-m", "gui.app"],
        agent=[agent, "agent"] if agent else [sys.executable, "-m", "agent", "agent"],
    )


# -- file contents -------------------------------------------------------------


def _desktop_quote(arg: str) -> str:
    """Quoting rules of the Desktop Entry spec's ``Exec`` key."""
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg.replace("%", "%%")
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return '"' + escaped.replace("%", "%%") + '"'


def desktop_entry(command: Sequence[str]) -> str:
    exec_line = " ".join(_desktop_quote(a) for a in command)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=HubSync\n"
        "Comment=Keep folders mirrored to your hub\n"
        f"Exec={exec_line}\n"
        "Icon=hubsync\n"
        "Terminal=false\n"
        "Categories=Network;FileTransfer;\n"
        "X-GNOME-Autostart-enabled=true\n"
        "X-GNOME-Autostart-Delay=5\n"
    )


def _systemd_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\n\"'\\;$%"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return '"' + escaped.replace("%", "%%") + '"'


def systemd_unit(command: Sequence[str]) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in command)
    return (
        "[Unit]\n"
        "Description=HubSync agent (folder sync to the hub)\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=30\n"
        "Nice=5\n"
        "IOSchedulingClass=idle\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launch_agent_plist(command: Sequence[str], *, log_dir: Path) -> str:
    plist = {
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": str(log_dir / "launchd.out.log"),
        "StandardErrorPath": str(log_dir / "launchd.err.log"),
    }
    return plistlib.dumps(plist, sort_keys=False).decode("utf-8")


def _cmd_quote(arg: str) -> str:
    return '"' + arg.replace('"', '""') + '"' if any(c in arg for c in ' &()^<>|"%') else arg


def windows_startup_cmd(command: Sequence[str]) -> str:
    """A batch file that starts the tray without keeping a console window open."""
    program, *args = command
    line = " ".join(["start", '""', _cmd_quote(program), *(_cmd_quote(a) for a in args)])
    return "\r\n".join(
        ["@echo off", "rem Started at login by HubSync (hubsync autostart)", line, ""]
    )


# -- where they go -------------------------------------------------------------


def _xdg_config_home(env: Mapping[str, str], home: Path) -> Path:
    value = env.get("XDG_CONFIG_HOME", "")
    return Path(value) if value and Path(value).is_absolute() else home / ".config"


def is_headless(env: Mapping[str, str]) -> bool:
    return not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def plan(
    system: str,
    *,
    home: Path,
    env: Mapping[str, str],
    commands: Commands,
    log_dir: Path,
    headless: bool | None = None,
) -> list[AutostartFile]:
    """The files ``enable`` writes on ``system`` (``linux``, ``darwin``, ``win32``)."""
    if system.startswith("linux") or system.startswith("freebsd"):
        config = _xdg_config_home(env, home)
        files = [
            AutostartFile("xdg", config / "autostart" / DESKTOP_FILE, desktop_entry(commands.tray))
        ]
        if is_headless(env) if headless is None else headless:
            unit = config / "systemd" / "user" / SYSTEMD_UNIT
            files.append(
                AutostartFile(
                    "systemd",
                    unit,
                    systemd_unit(commands.agent),
                    link=unit.parent / "default.target.wants" / SYSTEMD_UNIT,
                )
            )
        return files
    if system == "darwin":
        path = home / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"
        return [
            AutostartFile("launchagent", path, launch_agent_plist(commands.tray, log_dir=log_dir))
        ]
    if system == "win32":
        appdata = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
        startup = appdata / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup"
        return [
            AutostartFile("startup", startup / WINDOWS_FILE, windows_startup_cmd(commands.tray))
        ]
    raise ValueError(f"autostart is not supported on {system}")


def all_locations(system: str, *, home: Path, env: Mapping[str, str]) -> list[AutostartFile]:
    """Every file autostart may have written (for ``disable`` and ``status``)."""
    return plan(
        system, home=home, env=env, commands=Commands(["x"], ["x"]), log_dir=home, headless=True
    )


@dataclass(frozen=True)
class Host:
    """The machine autostart acts on; tests give a temp home and environment."""

    system: str = sys.platform
    home: Path = field(default_factory=Path.home)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def enable(
    host: Host | None = None,
    *,
    log_dir: Path,
    commands: Commands | None = None,
    headless: bool | None = None,
) -> list[Path]:
    """Write the autostart files; returns their paths."""
    host = host or Host()
    written = []
    for item in plan(
        host.system,
        home=host.home,
        env=host.env,
        commands=commands or default_commands(),
        log_dir=log_dir,
        headless=headless,
    ):
        item.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = item.path.with_name(item.path.name + ".tmp")
        tmp.write_text(item.content, "utf-8", newline="")
        os.replace(tmp, item.path)
        written.append(item.path)
        if item.link is not None:
            item.link.parent.mkdir(parents=True, exist_ok=True)
            item.link.unlink(missing_ok=True)
            item.link.symlink_to(item.path)
            written.append(item.link)
    return written


def disable(host: Host | None = None) -> list[Path]:
    """Remove every autostart file HubSync may have written; returns those removed."""
    host = host or Host()
    removed = []
    for item in all_locations(host.system, home=host.home, env=host.env):
        for path in (item.link, item.path):
            if path is not None and (path.is_symlink() or path.exists()):
                path.unlink()
                removed.append(path)
    return removed


def status(host: Host | None = None) -> dict[str, str | None]:
    """``{kind: path or None}`` for each autostart mechanism of this platform."""
    host = host or Host()
    found: dict[str, str | None] = {}
    for item in all_locations(host.system, home=host.home, env=host.env):
        enabled = item.path.exists() and (item.link is None or item.link.is_symlink())
        found[item.kind] = str(item.path) if enabled else None
    return found
