"""Data-safety defects a user or an attacker can reach through the real CLI (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.test_cli import hubsync


def hubsync_bytes(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Like ``hubsync``, reading output that may hold undecodable bytes."""
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=env,
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=60,
    )


def _sync(home: Path) -> None:
    done = hubsync(home, "sync", "--once")
    assert done.returncode == 0, done.stderr


def test_restore_at_the_time_history_shows_restores_that_version(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    note = docs / "note.md"
    note.write_text("one")
    assert hubsync(home, "add", str(docs)).returncode == 0
    _sync(home)
    time.sleep(1.1)  # the versions fall in different printed seconds
    note.write_text("two, longer")
    _sync(home)
    shown = json.loads(hubsync(home, "history", str(note), "--json").stdout)
    for row in shown:
        out = tmp_path / f"at-v{row['version']}"
        done = hubsync(
            home, "restore", str(note), "--at", row["recorded_at"], "--to", str(out), "--json"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["version"] == row["version"]


def test_restore_refuses_to_write_through_a_symlinked_folder(tmp_path: Path) -> None:
    home, docs, outside = tmp_path / "home", tmp_path / "docs", tmp_path / "outside"
    (docs / "sub").mkdir(parents=True)
    (docs / "gone").mkdir()
    (docs / "sub" / "s.txt").write_text("secret-ish")
    (docs / "gone" / "g.txt").write_text("gone file")
    (outside / "subdir").mkdir(parents=True)
    (outside / "gonedir").mkdir()
    assert hubsync(home, "add", str(docs)).returncode == 0
    _sync(home)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside / "subdir")
    via_to = hubsync(home, "restore", str(docs / "sub" / "s.txt"), "--to", str(dest))
    assert via_to.returncode == 1 and "traverses a symbolic link" in via_to.stderr
    assert "Traceback" not in via_to.stderr
    for child in (docs / "gone").iterdir():
        child.unlink()
    (docs / "gone").rmdir()
    _sync(home)
    (docs / "gone").symlink_to(outside / "gonedir")
    in_root = hubsync(home, "restore", str(docs / "gone"))
    assert in_root.returncode == 1 and "traverses a symbolic link" in in_root.stderr
    assert "Traceback" not in in_root.stderr
    assert list(outside.rglob("*.txt")) == []
    fine = hubsync(home, "restore", str(docs / "sub" / "s.txt"), "--to", str(tmp_path / "ok"))
    assert fine.returncode == 0 and (tmp_path / "ok" / "sub" / "s.txt").read_text() == "secret-ish"


def test_names_that_are_not_utf8_are_reported_never_a_traceback(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    bad = Path(os.fsdecode(bytes(docs) + b"/bad\xff\xfeutf8.txt"))
    bad.write_text("x")
    (docs / "ok.txt").write_text("y")
    assert hubsync(home, "add", str(docs)).returncode == 0
    synced = hubsync_bytes(home, "sync", "--once")
    assert synced.returncode == 0 and "not valid UTF-8" in synced.stdout + synced.stderr
    bad_dir = Path(os.fsdecode(bytes(tmp_path) + b"/dir\xff"))
    bad_dir.mkdir()
    for args in [
        ["restore", str(bad)],
        ["restore", str(bad), "--json"],
        ["history", str(bad)],
        ["add", str(bad_dir)],
    ]:
        done = hubsync_bytes(home, *args)
        assert done.returncode == 1, args
        assert "Traceback" not in done.stderr and "not valid UTF-8" in done.stderr, done.stderr


def test_bad_config_values_are_refused_in_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    for text, named in [
        ("[sync]\nworkers = -3\n", "[sync] workers"),
        ('[hub]\ndefault = "ftp"\n', "[hub] default"),
        ("[agent]\ndebounce_seconds = -1\n", "[agent] debounce_seconds"),
        ('[agent]\ndebounce_seconds = "soon"\n', "[agent] debounce_seconds"),
        ("hub = 3\n", "[hub]"),
    ]:
        config.write_text(text)
        for args in (["list"], ["agent"], ["run", "--no-tray", str(tmp_path / "new")]):
            done = hubsync(tmp_path, *args)
            assert done.returncode == 1 and named in done.stderr, (text, args, done.stderr)
            assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    config.write_bytes(b"\xff\x00 garbage [[[")
    for args in (["list"], ["agent"], ["run", "--no-tray"]):
        done = hubsync(tmp_path, *args)
        assert done.returncode == 1 and "config.toml" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_run_refuses_bad_paths_and_a_damaged_journal_in_one_line(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "HubSync"
    docs.mkdir()
    (tmp_path / "file").write_text("x")
    assert hubsync(home, "add", str(docs)).returncode == 0
    for path, said in [
        (tmp_path / "file", "is not a folder"),
        (Path("/proc/nope"), "cannot make the folder"),
        (docs / "newsub", "overlaps"),
    ]:
        done = hubsync(home, "run", "--no-tray", str(path))
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (docs / "newsub").exists()
    journal = home / "data" / "journal.sqlite3"
    journal.write_bytes(b"garbage" * 3000)
    for args in (["agent"], ["run", "--no-tray"]):
        done = hubsync(home, *args)
        assert done.returncode == 1 and "is damaged" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_no_python_warning_without_xdg_runtime_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "HUBSYNC_"))}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_sign_in_messages_keep_their_brackets_and_logs_prints_json(tmp_path: Path) -> None:
    for args in (["login", "--password-stdin"], ["logout"], ["whoami"], ["whoami", "--json"]):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env={**env, "HUBSYNC_HOME": str(tmp_path)},
            input="\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and "[supabase] url" in done.stderr, (args, done.stderr)
    log = tmp_path / "logs" / "hubsync.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("first [line]\nsecond line\n")
    shown = hubsync(tmp_path, "logs", "--json", "-n", "5")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"log": str(log), "lines": ["first [line]", "second line"]}
