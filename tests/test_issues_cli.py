"""``hubsync issues`` as a user runs it (a real process), through a running agent's
control API, and ``issues diagnose`` against the EXAI test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.control.issues_api import diagnose, pick_tool
from agent.exai.client import ExaiClient
from agent.exai.settings import ExaiSettings
from sync.journal import Failure
from tests.exai_server import ExaiTestServer
from tests.fixtures.agent import live_agent
from tests.fixtures.exai import EXAI_TEST_TOKEN


def hubsync(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _troublesome_folder(docs: Path) -> None:
    docs.mkdir()
    (docs / "ok.txt").write_text("fine")
    os.symlink(docs / "ok.txt", docs / "link.txt")
    os.mkfifo(docs / "pipe")
    with open(os.fsencode(docs) + b"/caf\xe9.txt", "wb") as f:
        f.write(b"latin-1 name")
    (docs / "setup.exe").write_bytes(b"MZ\x90\x00")
    (docs / ".hubignore").write_text("*.log\n")
    (docs / "debug.log").write_text("x")


def _by_path(issues: list[dict[str, object]]) -> dict[str, tuple[object, object, object]]:
    return {str(i["path"]): (i["category"], i["kind"], i["reason"]) for i in issues}


def test_issues_json_lists_every_skipped_item_with_its_reason(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[upload]\ndeny_extensions = ["exe"]\n')
    _troublesome_folder(docs)
    assert hubsync(home, "add", str(docs)).returncode == 0
    synced = hubsync(home, "sync", "--once")
    assert synced.returncode == 0, synced.stderr
    listed = hubsync(home, "issues", "--json", "--ignored")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    found = _by_path(data["issues"])
    assert found["link.txt"] == (
        "skipped",
        "symlink",
        "skipped: symbolic link (links are not followed)",
    )
    assert found["pipe"] == ("skipped", "special", "skipped: a FIFO (named pipe)")
    assert found["caf\\xe9.txt"] == ("skipped", "invalid_name", "name is not valid UTF-8")
    assert found["setup.exe"] == (
        "skipped",
        "type_not_allowed",
        "skipped: .exe files are denied for this folder",
    )
    assert found["debug.log"] == ("ignored", "rule", "ignored by '*.log' in .hubignore")
    assert "ok.txt" not in found
    assert data["counts"] == {"skipped": 4, "ignored": 1}
    text = hubsync(home, "issues")
    assert text.returncode == 0 and "symbolic link" in text.stdout
    bad = tmp_path / "bad"
    (bad / "config").mkdir(parents=True)
    (bad / "config" / "config.toml").write_text('[upload]\ndeny_types = ["Images"]\n')
    refused = hubsync(bad, "issues")
    assert refused.returncode == 1 and "is not a content type" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_issues_through_the_agent_with_retry_ignore_and_resolve(short_home: Path) -> None:
    docs = short_home / "docs"
    _troublesome_folder(docs)
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        client = await agent.client()
        try:
            data = await client.call("issues", {})
            found = _by_path(data["issues"])
            assert found["link.txt"][1] == "symlink" and found["pipe"][1] == "special"
            journal = agent.ctx.journal
            root = journal.roots()[0]
            with journal.transaction():
                journal.mark_error(root.id, "ok.txt", "transient", "HTTP 503", 3600, time.time())
                journal.record_failures(
                    root.id, [Failure("ok.txt", "transient", "HTTP 503", "upload")], time.time()
                )
            data = await client.call("issues", {})
            (error,) = [i for i in data["issues"] if i["category"] == "error"]
            assert error["attempts"] == 1 and error["next_retry"] > time.time()
            (group,) = data["groups"]
            assert (group["count"], group["state"]) == (1, "open")
            assert (await client.call("issues.retry", {"group": group["id"]}))["retrying"] == 1
            await agent.idle()
            await agent.wait_for(lambda: journal.error_group(group["id"]).state == "resolved")
            ignored = await client.call("issues.ignore", {"path": str(docs / "link.txt")})
            assert ignored["rule"] == "/link.txt"
            await agent.idle()
            await agent.wait_for(
                lambda: "link.txt" not in {r for _, r, *_ in journal.skipped(root.id)}
            )
            assert (await client.call("issues.resolve", {"group": group["id"]}))["resolved"]
            assert journal.error_group(group["id"]).state == "resolved_by_user"  # type: ignore[union-attr]
        finally:
            await client.close()


SECRETS = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA",
    "sb_secret_Zm9vYmFyYmF6cXV4cXV1eA",
    "hunter2-correct-horse",
    "pw-in-a-url-42",
    "refresh-tok-998877",
    EXAI_TEST_TOKEN,
)


def _write_log(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "2026-12-03 07:00:00 WARNING hubsync.engine: upload failed: HTTP 503",
        f"2026-12-03 07:00:01 DEBUG httpx: Authorization: Bearer {SECRETS[0]}",
        f"2026-12-03 07:00:02 DEBUG hubsync.supabase: apikey={SECRETS[1]}",
        f"2026-12-03 07:00:03 INFO hubsync.auth: signing in, password={SECRETS[2]}",
        f"2026-12-03 07:00:04 INFO hubsync.db: postgres://alice:{SECRETS[3]}@db.example/hub",
        f'2026-12-03 07:00:05 DEBUG hubsync.auth: {{"refresh_token": "{SECRETS[4]}"}}',
        f"2026-12-03 07:00:06 DEBUG hubsync.exai: connecting with {SECRETS[5]}",
    ]
    log_file.write_text("\n".join(lines) + "\n")


async def test_diagnose_answers_and_no_secret_reaches_exai(
    short_home: Path,
    exai_server: ExaiTestServer,
    exai_settings: ExaiSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAI_WS_HOST", exai_settings.host)
    monkeypatch.setenv("EXAI_WS_PORT", str(exai_settings.port))
    monkeypatch.setenv("EXAI_WS_TOKEN", exai_settings.token)
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        _write_log(agent.paths.log_file)
        journal = agent.ctx.journal
        root = journal.roots()[0]
        with journal.transaction():
            journal.mark_seen(root.id, [("a.txt", 1, 1, 1)])
            journal.record_failures(
                root.id,
                [Failure("a.txt", "transient", "HTTP 503 from the hub", "upload")],
                time.time(),
            )
        (group,) = journal.error_groups()
        client = await agent.client()
        try:
            answer = await client.call("issues.diagnose", {"group": group.id}, timeout=40)
        finally:
            await client.close()
        stored = journal.error_group(group.id)
    assert answer["timed_out"] is False and answer["tool"] == "chat"
    assert "Recommended fixes" in answer["diagnosis"]
    assert stored is not None and stored.diagnosis == answer["diagnosis"]
    (_tool, args), *_ = [c for c in exai_server.calls if c[0] == "chat"]
    sent = json.dumps(args)
    assert group.fingerprint in sent and "HTTP 503 from the hub" in sent
    assert "upload failed: HTTP 503" in sent  # the log lines went, redacted
    for secret in SECRETS:
        assert secret not in sent, secret


async def test_diagnose_says_when_exai_takes_longer_than_its_bound(
    tmp_path: Path, exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    from sync.journal import Journal

    journal = Journal(tmp_path / "j.sqlite3")
    root = journal.add_root(tmp_path, "local")
    journal.record_failures(root.id, [Failure("a", "local", "nope", "read")], 1.0)
    (group,) = journal.error_groups()
    exai_server.tool_delay = 5.0
    async with ExaiClient(exai_settings) as client:
        tool, argument = pick_tool(await client.list_tools())
        assert (tool.name, argument) == ("chat", "prompt")
        answer = await diagnose(
            client, journal, group, log_file=tmp_path / "none.log", hub_kind="local", time_limit=0.5
        )
    assert answer["timed_out"] is True and "within 0.5 s" in answer["message"]
    assert journal.error_group(group.id).diagnosis is None  # type: ignore[union-attr]
    journal.close()


def test_diagnose_from_the_cli_without_an_agent(tmp_path: Path) -> None:
    from agent.platform.paths import resolve_paths
    from sync.journal import Journal
    from tests.fixtures.exai import threaded_exai_server

    home = tmp_path / "home"
    env_home = {"HUBSYNC_HOME": str(home)}
    paths = resolve_paths(env_home).ensure()
    _write_log(paths.log_file)
    journal = Journal(paths.journal)
    root = journal.add_root(tmp_path, "local")
    journal.record_failures(
        root.id, [Failure("a.txt", "quota", "a.txt: over quota", "upload")], 1.0
    )
    journal.close()
    with threaded_exai_server(token=EXAI_TEST_TOKEN) as server:
        env = {
            **os.environ,
            **env_home,
            "EXAI_WS_HOST": server.host,
            "EXAI_WS_PORT": str(server.port),
            "EXAI_WS_TOKEN": EXAI_TEST_TOKEN,
        }
        done = subprocess.run(
            [sys.executable, "-m", "agent", "issues", "diagnose", "1", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        missing = subprocess.run(
            [sys.executable, "-m", "agent", "issues", "diagnose", "7"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        calls = list(server.calls)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["tool"] == "chat" and "Recommended fixes" in answer["diagnosis"]
    assert missing.returncode == 1 and "no error group 7" in missing.stderr
    sent = json.dumps([args for name, args in calls if name == "chat"])
    assert "a.txt: over quota" in sent
    for secret in SECRETS:
        assert secret not in sent, secret
    reopened = Journal(paths.journal)
    assert reopened.error_group(1).diagnosis == answer["diagnosis"]  # type: ignore[union-attr]
    reopened.close()


async def test_every_devices_groups_are_visible_from_another_device(tmp_path: Path) -> None:
    """Device A's groups reach the shared hub; `hubsync issues --all-devices` on device B
    (another home, the same hub folder) shows them."""
    from sync.engine import SyncEngine
    from sync.journal import Journal
    from tests.fixtures.engine import FAST_RETRY
    from tests.test_issues import FailingHub

    hub_dir, docs = tmp_path / "hub", tmp_path / "docs"
    docs.mkdir()
    for n in range(3):
        (docs / f"q{n}.txt").write_text(f"q{n}")
    journal = Journal(tmp_path / "a" / "journal.sqlite3")
    hub = FailingHub(hub_dir)
    engine = SyncEngine(journal, {"local": hub}, retry=FAST_RETRY)
    try:
        await engine.sync_root(journal.add_root(docs, "local"))
        device_a = journal.device_id
    finally:
        engine.close()
        await hub.close()
        journal.close()
    home_b = tmp_path / "b"
    (home_b / "config").mkdir(parents=True)
    (home_b / "config" / "config.toml").write_text(f'[hub]\nlocal_path = "{hub_dir}"\n')
    listed = hubsync(home_b, "issues", "--all-devices", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["issues"] == []  # device B itself has none
    (row,) = data["hub_groups"]["local"]
    assert (row["device_id"], row["kind"], row["occurrences"], row["state"]) == (
        device_a,
        "quota",
        3,
        "open",
    )
    text = hubsync(home_b, "issues", "--all-devices")
    assert text.returncode == 0 and device_a[:8] in text.stdout
