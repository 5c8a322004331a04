"""``hubsync install-desktop``: the menu entry and icons under XDG_DATA_HOME, and back out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import desktop as desktop_cli
from agent.platform import desktop
from agent.platform.autostart import _desktop_quote

ROOT = Path(__file__).resolve().parent.parent


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A group, as in agent/cli/main.py, so the command keeps its name."""

    desktop_cli.register(app)
    return app


def _run(data_home: Path, *args: str) -> str:
    result = CliRunner().invoke(
        _cli(), ["install-desktop", *args], env={"XDG_DATA_HOME": str(data_home)}
    )
    assert result.exit_code == 0, result.output
    return result.output


def _entry_keys(text: str) -> dict[str, str]:
    lines = text.splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line)


def test_committed_desktop_file_is_the_generated_entry() -> None:
    committed = (ROOT / "packaging" / "linux" / "hubsync.desktop").read_text("utf-8")
    assert committed == desktop.desktop_entry(["hubsync-tray"])


@pytest.mark.skipif(
    shutil.which("desktop-file-validate") is None,
    reason="desktop-file-validate (desktop-file-utils) is not installed",
)
def test_entry_with_an_awkward_path_passes_desktop_file_validate(tmp_path: Path) -> None:
    entry = tmp_path / "hubsync.desktop"
    entry.write_text(desktop.desktop_entry(["/opt/Hub Sync $1/hubsync-tray"]), "utf-8")
    run = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    keys = _entry_keys(entry.read_text("utf-8"))
    assert keys["Exec"] == '"/opt/Hub Sync \\$1/hubsync-tray"'
    assert keys["TryExec"] == "/opt/Hub Sync $1/hubsync-tray"


def test_install_writes_entry_and_icons_and_uninstall_removes_only_them(tmp_path: Path) -> None:
    apps = tmp_path / "applications"
    apps.mkdir()
    (apps / "other.desktop").write_text("[Desktop Entry]\nName=Other\n", "utf-8")
    other_icon = tmp_path / "icons" / "hicolor" / "48x48" / "apps" / "other.png"
    other_icon.parent.mkdir(parents=True)
    other_icon.write_bytes(b"png")

    out = _run(tmp_path)
    assert "Installed" in out
    keys = _entry_keys((apps / "hubsync.desktop").read_text("utf-8"))
    command = desktop.tray_command()
    assert keys["Exec"] == " ".join(_desktop_quote(a) for a in command)
    assert keys["Icon"] == "hubsync"
    svg = tmp_path / "icons" / "hicolor" / "scalable" / "apps" / "hubsync.svg"
    shipped = resources.files("resources") / "icons" / desktop.APP_ICON_SVG
    assert svg.read_bytes() == shipped.read_bytes()
    assert svg.stat().st_mode & 0o777 == 0o644

    _run(tmp_path)  # again: same files, no error, no temp files left behind
    assert sorted(p.name for p in apps.iterdir()) == ["hubsync.desktop", "other.desktop"]

    assert "Removed" in _run(tmp_path, "--uninstall")
    assert not (apps / "hubsync.desktop").exists()
    assert not svg.exists()
    assert (apps / "other.desktop").exists()
    assert other_icon.read_bytes() == b"png"
    assert "Nothing was installed" in _run(tmp_path, "--uninstall")


def test_install_refuses_without_pyside6(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(desktop_cli, "find_spec", lambda name: None)
    result = CliRunner().invoke(_cli(), ["install-desktop"], env={"XDG_DATA_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "hubsync[gui]" in result.output
    assert list(tmp_path.iterdir()) == []


def test_uninstall_removes_every_rendered_size(tmp_path: Path) -> None:
    files = desktop.DesktopFiles(tmp_path)
    for size in ("16x16", "256x256"):
        png = files.hicolor / size / "apps" / "hubsync.png"
        png.parent.mkdir(parents=True)
        png.write_bytes(b"png")
    removed = desktop.uninstall(files)
    assert sorted(p.parent.parent.name for p in removed) == ["16x16", "256x256"]


def test_frozen_bundle_starts_its_sibling_tray(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "hubsync"))
    assert desktop.tray_command() == [str(tmp_path / "hubsync-tray")]


def test_data_home_follows_xdg_and_ignores_relative_values(tmp_path: Path) -> None:
    assert desktop.data_home({"XDG_DATA_HOME": str(tmp_path), "HOME": "/h"}) == tmp_path
    expected = Path("/h/.local/share")
    assert desktop.data_home({"XDG_DATA_HOME": "rel/dir", "HOME": "/h"}) == expected
    assert desktop.data_home({"HOME": "/h"}) == expected
