"""Two devices (two HUBSYNC_HOMEs) on one local hub: each sees the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.supabase import SupabaseUser
from tests.supabase_server import SupabaseTestServer
from tests.test_supabase_sync import cli_env

pytest_plugins = ["tests.fixtures.supabase"]


def hubsync(home: Path, *args: str, name: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    env.pop("HUBSYNC_DEVICE_NAME", None)
    if name is not None:
        env["HUBSYNC_DEVICE_NAME"] = name
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _home(tmp_path: Path, label: str, hub: Path, config_name: str = "") -> Path:
    home = tmp_path / label
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    text = f'[hub]\nlocal_path = "{hub}"\n'
    if config_name:
        text += f'[device]\nname = "{config_name}"\n'
    config.write_text(text)
    return home


def test_devices_lists_the_other_device_with_its_folders(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    a, b = _home(tmp_path, "a", hub, config_name="laptop"), _home(tmp_path, "b", hub)
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "one.txt").write_text("one")
    (docs / "sub" / "two.md").write_text("two, longer")
    assert hubsync(a, "add", str(docs)).returncode == 0
    assert hubsync(a, "sync", "--once").returncode == 0
    (docs / "one.txt").unlink()
    assert hubsync(a, "sync", "--once").returncode == 0  # a deleted file is not counted
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.bin").write_bytes(b"x" * 10)
    assert hubsync(b, "add", str(other)).returncode == 0
    assert hubsync(b, "sync", "--once", name="desk").returncode == 0

    listed = hubsync(b, "devices", "--json", name="desk")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"laptop", "desk"}
    laptop = rows["laptop"]
    assert not laptop["this_device"] and rows["desk"]["this_device"]
    assert laptop["hub"] == "local" and laptop["last_seen"]
    assert [(f["path"], f["files"], f["bytes"]) for f in laptop["folders"]] == [
        (str(docs.resolve()), 1, len("two, longer"))
    ]
    assert (laptop["files"], laptop["bytes"]) == (1, len("two, longer"))
    assert rows["desk"]["folders"][0]["bytes"] == 10

    table = hubsync(a, "devices")
    assert table.returncode == 0 and "laptop (this device)" in table.stdout
    assert "desk" in table.stdout


def test_devices_without_a_reachable_hub_is_one_line(tmp_path: Path) -> None:
    home = _home(tmp_path, "a", tmp_path / "gone" / "hub")
    result = hubsync(home, "devices")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no hub can be reached" in result.stderr


def test_devices_on_the_supabase_hub(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    def cli(home: str, name: str, *args: str, stdin: str | None = None) -> str:
        env = {**cli_env(tmp_path, supabase_server), "HUBSYNC_HOME": str(tmp_path / home)}
        env["HUBSYNC_DEVICE_NAME"] = name
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha")
    (docs / "b.txt").write_text("beta!")
    login = ("login", "--email", supabase_user.email, "--password-stdin")
    for home, name in (("a", "laptop"), ("b", "desk")):
        cli(home, name, *login, stdin=supabase_user.password + "\n")
    cli("a", "laptop", "add", str(docs), "--hub", "supabase")
    cli("a", "laptop", "sync", "--once")

    rows = [r for r in json.loads(cli("b", "desk", "devices", "--json")) if r["hub"] == "supabase"]
    assert [(r["name"], r["this_device"], r["files"], r["bytes"]) for r in rows] == [
        ("laptop", False, 2, 10)
    ]
    assert rows[0]["folders"][0]["path"] == str(docs.resolve())
