"""The hubsync command line as a user runs it: real processes, exit codes, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from agent.platform.lock import AgentLock
from tests.fixtures.agent import start_agent_process


def hubsync(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_version_and_usage_errors(tmp_path: Path) -> None:
    version = hubsync(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("hubsync ")
    missing = hubsync(tmp_path, "add", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_roots = hubsync(tmp_path, "sync", "--once")
    assert no_roots.returncode == 1 and "hubsync add" in no_roots.stderr
    no_once = hubsync(tmp_path, "sync")
    assert no_once.returncode == 1 and "--once" in no_once.stderr
    bad_config = tmp_path / "config" / "config.toml"
    bad_config.parent.mkdir(parents=True, exist_ok=True)
    bad_config.write_text("[sync]\nturbo = true\n")
    broken = hubsync(tmp_path, "list")
    assert broken.returncode == 1 and "unknown setting" in broken.stderr


def test_add_sync_list_history_restore_with_json(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.md"
    note.write_text("one")
    assert hubsync(home, "add", str(docs)).returncode == 0
    assert hubsync(home, "sync", "--once").returncode == 0
    between = datetime.now().astimezone()
    time.sleep(0.05)
    note.write_text("two, longer")
    assert hubsync(home, "sync", "--once").returncode == 0
    listed = json.loads(hubsync(home, "list", "--json").stdout)
    assert listed == [
        {
            "path": str(docs.resolve()),
            "hub": "local",
            "paused": False,
            "degraded": None,
            "files": 1,
            "synced": 1,
            "errors": 0,
        }
    ]
    versions = json.loads(hubsync(home, "history", str(note), "--json").stdout)
    assert [v["version"] for v in versions] == [1, 2]
    at = (between + timedelta(milliseconds=10)).isoformat()
    restored = json.loads(hubsync(home, "restore", str(note), "--at", at, "--json").stdout)
    assert restored[0]["version"] == 1 and restored[0]["kept_both"]
    assert Path(restored[0]["written_to"]).read_text() == "one"
    assert note.read_text() == "two, longer"
    out = tmp_path / "elsewhere"
    copy = hubsync(home, "restore", str(note), "--version", "2", "--to", str(out))
    assert copy.returncode == 0 and (out / "note.md").read_text() == "two, longer"
    bad = hubsync(home, "restore", str(note), "--version", "7")
    assert bad.returncode == 1 and "no version 7" in bad.stderr
    outside = hubsync(home, "history", str(tmp_path / "x.txt"))
    assert outside.returncode == 1 and "not inside a mirrored folder" in outside.stderr
    doctor = json.loads(hubsync(home, "doctor", "--json").stdout)
    assert all(c["ok"] for c in doctor)


def test_status_shows_the_running_agent_and_doctor_flags_a_missing_folder(tmp_path: Path) -> None:
    home, docs = Path(tmp_path / "h"), tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    assert hubsync(home, "add", str(docs)).returncode == 0
    offline = json.loads(hubsync(home, "status", "--json").stdout)
    assert offline["agent"] == "not running"
    agent = start_agent_process(home)
    try:
        deadline = time.monotonic() + 20
        while True:
            live = json.loads(hubsync(home, "status", "--json").stdout)
            if live["roots"][0]["counts"].get("synced") == 1:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert live["agent"].startswith("running") and live["health"]["local"]["state"] == "online"
        text = hubsync(home, "status").stdout
        assert "Agent: running" in text
        doctor = hubsync(home, "doctor").stdout
        assert "ok   agent: running (" in doctor and "), 1 folder watched" in doctor
        second = hubsync(home, "agent")
        assert second.returncode == 1 and "another agent is running" in second.stderr
    finally:
        agent.stop()
    docs.rename(tmp_path / "moved")
    doctor = hubsync(home, "doctor")
    assert doctor.returncode == 1 and "is missing" in doctor.stdout
    assert "ok   agent: not running; changes sync only on" in doctor.stdout


def test_exai_token_goes_to_the_keyring_store_not_the_config(tmp_path: Path) -> None:
    """Without a desktop keyring, the documented opt-in file store (0600) is used."""
    env = {
        **os.environ,
        "HUBSYNC_HOME": str(tmp_path),
        "HUBSYNC_ALLOW_FILE_SECRETS": "1",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    env.pop("EXAI_WS_TOKEN", None)
    cli = [sys.executable, "-m", "agent", "exai", "token", "--stdin"]
    stored = subprocess.run(cli, input="tok-123\n", env=env, capture_output=True, text=True)
    assert stored.returncode == 0, stored.stderr
    probe = (
        "from agent.exai.settings import read_token; import json; print(json.dumps(read_token()))"
    )
    read = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert json.loads(read.stdout) == ["tok-123", "keyring"]
    assert (
        not (tmp_path / "config" / "config.toml").exists()
        or "tok-123" not in (tmp_path / "config" / "config.toml").read_text()
    )
    forget = subprocess.run([*cli[:-1], "--forget"], env=env, capture_output=True, text=True)
    assert forget.returncode == 0
    read = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert json.loads(read.stdout) == ["", ""]


def test_add_and_remove_go_through_a_running_agent(tmp_path: Path) -> None:
    home = Path(tmp_path / "h")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert hubsync(home, "add", str(first)).returncode == 0
    agent = start_agent_process(home)
    try:
        added = hubsync(home, "add", str(second), "--json")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["path"] == str(second.resolve())
        (second / "new.txt").write_text("watched without a restart")
        deadline = time.monotonic() + 20
        while True:
            live = json.loads(hubsync(home, "status", "--json").stdout)
            counts = {r["path"]: r["counts"] for r in live["roots"]}
            if counts.get(str(second.resolve()), {}).get("synced") == 1:
                break
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)
        (second / "inner").mkdir()
        overlap = hubsync(home, "add", str(second / "inner"))
        assert overlap.returncode == 1 and "overlaps" in overlap.stderr
        removed = hubsync(home, "remove", str(second))
        assert removed.returncode == 0
        live = json.loads(hubsync(home, "status", "--json").stdout)
        assert [r["path"] for r in live["roots"]] == [str(first.resolve())]
    finally:
        agent.stop()


def test_odd_names_bad_targets_and_a_damaged_journal_get_messages_not_tracebacks(
    tmp_path: Path,
) -> None:
    home, docs = tmp_path / "home", tmp_path / "Projects [old]"
    (docs / "odd[" / "]name").mkdir(parents=True)
    (docs / "odd[" / "]name" / "[draft] plan.md").write_text("plan")
    (docs / "d").mkdir()
    for name in ("x.txt", "y.txt"):
        (docs / "d" / name).write_text(name)
    added = hubsync(home, "add", str(docs))
    assert added.returncode == 0 and "Projects [old]" in added.stdout
    synced = hubsync(home, "sync", "--once")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "Projects [old]" in synced.stdout and "Traceback" not in synced.stderr
    listed = hubsync(home, "list")
    assert listed.returncode == 0 and "[old]" in listed.stdout  # (the table wraps the path)
    plan = docs / "odd[" / "]name" / "[draft] plan.md"
    assert (
        hubsync(home, "history", str(docs / "d" / ".." / "odd[" / "]name" / plan.name)).returncode
        == 0
    )
    # Restoring into a file, or a folder with --version: clear errors.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    into_file = hubsync(home, "restore", str(plan), "--to", str(blocker))
    assert into_file.returncode == 1 and "cannot write" in into_file.stderr
    assert "Traceback" not in into_file.stderr
    for name in ("x.txt", "y.txt"):
        (docs / "d" / name).unlink()
    (docs / "d").rmdir()
    assert hubsync(home, "sync", "--once", "--confirm-deletes").returncode == 0
    versioned = hubsync(home, "restore", str(docs / "d"), "--version", "1")
    assert versioned.returncode == 1 and "--version picks a version of one file" in versioned.stderr
    restored = hubsync(home, "restore", str(docs), "--json")  # the mirrored folder itself
    assert restored.returncode == 0, restored.stderr
    assert sorted(r["path"] for r in json.loads(restored.stdout)) == ["d/x.txt", "d/y.txt"]
    assert (docs / "d" / "y.txt").read_text() == "y.txt"
    # A damaged journal: doctor says so, other commands too, without a traceback.
    journal = home / "data" / "journal.sqlite3"
    for extra in ("-wal", "-shm", ".stat"):
        (home / "data" / f"journal.sqlite3{extra}").unlink(missing_ok=True)
    journal.write_bytes(os.urandom(8192))
    doctor = hubsync(home, "doctor")
    assert doctor.returncode == 1 and "FAIL journal" in doctor.stdout
    listing = hubsync(home, "list")
    assert listing.returncode == 1 and "is damaged" in listing.stderr
    assert "Traceback" not in doctor.stderr + listing.stderr


def test_a_hub_drive_that_is_not_plugged_in_is_reported_not_replaced(tmp_path: Path) -> None:
    home, docs, drive = tmp_path / "home", tmp_path / "docs", tmp_path / "usb"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    drive.mkdir()
    (home / "config").mkdir(parents=True)
    config = home / "config" / "config.toml"
    config.write_text(f'[hub]\nlocal_path = "{drive}/hub"\n')
    assert hubsync(home, "add", str(docs)).returncode == 0
    assert hubsync(home, "sync", "--once").returncode == 0
    drive.rename(tmp_path / "unplugged")
    done = hubsync(home, "sync", "--once")
    assert done.returncode == 2
    assert f"the local hub {drive}/hub is missing (is its drive plugged in?)" in done.stdout
    assert "0 files" not in done.stdout  # nothing was looked at: no counts
    assert not drive.exists()
    status = hubsync(home, "status").stdout
    assert "waiting for the hub: the local hub" in status and "is missing" in status
    # A new hub folder chosen on purpose is filled, and the user is told.
    config.write_text(f'[hub]\nlocal_path = "{tmp_path}/new-hub"\n')
    done = hubsync(home, "sync", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 file will be uploaded to it" in done.stderr
    assert "1 uploaded" in done.stdout


def test_a_hub_setting_changed_under_a_running_agent_is_switched_by_the_agent_only(
    tmp_path: Path,
) -> None:
    """A CLI command beside the agent must not move the journal to another hub while the
    agent keeps uploading to the old one (its 'synced' would then be wrong)."""
    home, docs = tmp_path / "h", tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    (home / "config").mkdir(parents=True)
    config = home / "config" / "config.toml"
    config.write_text(f'[hub]\nlocal_path = "{tmp_path}/hub-a"\n')
    assert hubsync(home, "add", str(docs)).returncode == 0
    assert hubsync(home, "sync", "--once").returncode == 0
    agent = start_agent_process(home)
    try:
        config.write_text(f'[hub]\nlocal_path = "{tmp_path}/hub-b"\n')
        listing = hubsync(home, "list")
        assert listing.returncode == 0, listing.stderr
        done = hubsync(home, "sync", "--once")  # the agent's pass, to the hub it uses
        assert done.returncode == 0, done.stdout + done.stderr
        assert not (tmp_path / "hub-b").exists()
    finally:
        agent.stop()
    starting = AgentLock(home / "run" / "agent.lock")  # an agent starting: not listening yet
    with starting:
        done = hubsync(home, "sync", "--once")
        assert "keeps using that one until it is restarted" in done.stdout
    # No agent now (its lock file may name a pid some other live process has since
    # taken): this command switches.
    (home / "run" / "agent.lock").write_text(f"{os.getpid()}\n")
    done = hubsync(home, "sync", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 file will be uploaded to it" in done.stderr
