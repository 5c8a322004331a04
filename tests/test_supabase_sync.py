"""Whole syncs to the Supabase hub: the CLI end to end, faults, token expiry, revocation.

The real engine drives the real Supabase remote (supabase-py, tuspy) over HTTP
against tests/supabase_server; assertions look at what the server stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sync.engine import SyncEngine
from sync.journal import Journal, JournalResumeStore
from sync.remotes.base import BUCKET_FILES
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import SupabaseSettings
from tests.fixtures.engine import FAST_RETRY
from tests.fixtures.supabase import SupabaseUser
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in
from tests.supabase_server import SupabaseTestServer

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]


def _manifest(server: SupabaseTestServer, uid: str) -> dict[str, dict[str, object]]:
    """rel_path → newest manifest row of that user."""
    latest: dict[str, dict[str, object]] = {}
    for row in server.rest.snapshot("hubsync_manifest"):
        if row["user_id"] != uid:
            continue
        rel = str(row["rel_path"])
        if rel not in latest or int(row["version"]) > int(latest[rel]["version"]):  # type: ignore[call-overload]
            latest[rel] = row
    return latest


def assert_hub_mirrors(server: SupabaseTestServer, uid: str, folder: Path) -> None:
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    latest = {k: v for k, v in _manifest(server, uid).items() if not v["deleted"]}
    assert set(latest) == set(files)
    for rel, path in files.items():
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        row = latest[rel]
        assert row["sha256"] == sha, rel
        stored = server.storage.get(BUCKET_FILES, str(row["storage_key"]))
        assert stored is not None and hashlib.sha256(bytes(stored.data)).hexdigest() == sha


def cli_env(tmp_path: Path, server: SupabaseTestServer) -> dict[str, str]:
    """Separate processes must share the session: the documented no-keyring file store."""
    return {
        **os.environ,
        "HUBSYNC_HOME": str(tmp_path / "home"),
        "SUPABASE_URL": server.url,
        "SUPABASE_ANON_KEY": server.anon_key,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "HUBSYNC_ALLOW_FILE_SECRETS": "1",
    }


def test_cli_login_add_sync_mirrors_a_folder(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    """Separate processes, so the session must persist: the documented no-keyring file store."""
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    names = [
        "plain.txt",
        "with space.md",
        "résumé.pdf",
        "emoji 🎉.txt",
        "hash#1.txt",
        "100%.txt",
        "what?.txt",
        "back\\slash.txt",
        "sub/copy.txt",
    ]
    for i, name in enumerate(names):
        (docs / name).write_text(f"content {i % 8}")  # plain.txt and sub/copy.txt are equal
    env = cli_env(tmp_path, supabase_server)
    cli = [sys.executable, "-m", "agent"]
    login = subprocess.run(
        [*cli, "login", "--email", supabase_user.email, "--password-stdin"],
        input=supabase_user.password + "\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert login.returncode == 0, login.stdout + login.stderr
    assert supabase_user.password not in login.stdout + login.stderr
    add = subprocess.run([*cli, "add", str(docs)], env=env, capture_output=True, text=True)
    assert add.returncode == 0 and "supabase hub" in add.stdout, add.stdout + add.stderr
    run = subprocess.run(
        [*cli, "sync", "--once", "--json"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)[0]
    assert report["recorded"] == len(names) and report["uploaded"] == len(names) - 1
    assert_hub_mirrors(supabase_server, supabase_user.uid, docs)
    uploads = [
        e
        for e in supabase_server.log.entries("POST", "/storage/v1/object/user-files")
        if e.status == 200
    ]
    assert len(uploads) == len(names) - 1  # equal content went up once
    metadata = supabase_server.rest.snapshot("file_metadata")
    assert {str(m["filename"]) for m in metadata} >= {"résumé.pdf", "emoji 🎉.txt"}
    assert all(
        m["bucket_id"] == "user-files" and m["user_id"] == supabase_user.uid for m in metadata
    )
    ops = supabase_server.rest.snapshot("file_operations")
    assert ops and all(o["operation_type"] == "upload" for o in ops)
    secrets = tmp_path / "home" / "config" / "secrets.json"
    assert secrets.stat().st_mode & 0o077 == 0
    assert supabase_user.password not in secrets.read_text()


def test_signing_in_as_another_user_uploads_every_file_to_their_space(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    supabase_user_b: SupabaseUser,
) -> None:
    """The journal's 'synced' describes the first user's space, not the second's."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt"):
        (docs / name).write_text(f"content of {name}")
    env = cli_env(tmp_path, supabase_server)

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def login(user: SupabaseUser) -> None:
        cli("login", "--email", user.email, "--password-stdin", stdin=user.password + "\n")

    login(supabase_user)
    cli("add", str(docs))
    cli("sync", "--once")
    assert_hub_mirrors(supabase_server, supabase_user.uid, docs)
    cli("logout")
    login(supabase_user_b)
    done = cli("sync", "--once", "--json")
    assert "another project or user" in done.stderr
    assert "2 files will be uploaded" in done.stderr
    assert json.loads(done.stdout)[0]["recorded"] == 2
    assert_hub_mirrors(supabase_server, supabase_user_b.uid, docs)
    again = cli("sync", "--once")
    assert "will be uploaded" not in again.stderr


@pytest.fixture
async def supabase_rig(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
) -> object:
    journal = Journal(tmp_path / "journal.sqlite3")
    settings = SupabaseSettings(
        url=supabase_server.url, anon_key=supabase_server.anon_key, requests_per_second=0
    )
    session = await sign_in(settings, supabase_user, memory_keyring)
    remote = SupabaseRemote(session, resume_store=JournalResumeStore(journal))
    engine = SyncEngine(journal, {"supabase": remote}, retry=FAST_RETRY, workers=8)
    yield journal, remote, engine
    engine.close()
    await remote.close()
    journal.close()


async def test_a_fifth_of_requests_failing_still_delivers_400_files_intact(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    supabase_rig: tuple[Journal, SupabaseRemote, SyncEngine],
) -> None:
    journal, remote, engine = supabase_rig
    docs = tmp_path / "docs"
    for i in range(400):
        (docs / f"d{i % 20}").mkdir(parents=True, exist_ok=True)
        (docs / f"d{i % 20}" / f"f{i}.bin").write_bytes(os.urandom(200) + str(i).encode())
    faults = supabase_server.faults
    faults.fail(rate=0.08, status=502)
    faults.drop(rate=0.05)
    faults.drop(rate=0.04, after_handling=True)
    faults.throttle(rate=0.03, retry_after=0)
    root = journal.add_root(docs, "supabase")
    report = await engine.sync_root(root)
    for _ in range(3):  # what still failed after its retries is retried by the next pass
        if report.complete:
            break
        report = await engine.sync_root(root, retry_errors=True)
    assert report.complete, list(report.errors.items())[:5]
    assert faults.injected > 50  # about 0.2 of 400+ requests
    faults.clear()
    assert_hub_mirrors(supabase_server, supabase_user.uid, docs)
    pool = remote.session.http._transport._pool  # type: ignore[attr-defined]
    await remote.close()
    assert pool.connections == []
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_token_expiring_mid_sync_is_refreshed_without_an_error(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    supabase_rig: tuple[Journal, SupabaseRemote, SyncEngine],
) -> None:
    journal, _, engine = supabase_rig
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"f{i}.txt").write_text(f"first {i}")
    root = journal.add_root(docs, "supabase")
    assert (await engine.sync_root(root)).complete
    supabase_server.auth.expire_access_tokens()  # every token issued so far is now expired
    for i in range(60):
        (docs / f"f{i}.txt").write_text(f"second {i}")
    report = await engine.sync_root(root)
    assert report.complete and report.recorded == 60, report.errors
    assert_hub_mirrors(supabase_server, supabase_user.uid, docs)


async def test_revoked_session_pauses_with_sign_in_again_and_loses_nothing(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_rig: tuple[Journal, SupabaseRemote, SyncEngine],
) -> None:
    journal, _, engine = supabase_rig
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "before.txt").write_text("before")
    root = journal.add_root(docs, "supabase")
    assert (await engine.sync_root(root)).complete
    supabase_server.auth.revoke_refresh_tokens(supabase_user.uid)
    supabase_server.auth.expire_access_tokens()
    (docs / "during.txt").write_text("written while signed out")
    report = await engine.sync_root(root)
    assert report.auth_needed and not report.complete
    assert "sign in" in report.failure.reason.lower()
    assert journal.count_states(root.id).get("synced") == 1  # nothing marked done that is not
    settings = SupabaseSettings(
        url=supabase_server.url, anon_key=supabase_server.anon_key, requests_per_second=0
    )
    session = await sign_in(settings, supabase_user, memory_keyring)  # the user signs in again
    fresh = SupabaseRemote(session, resume_store=JournalResumeStore(journal))
    engine2 = SyncEngine(journal, {"supabase": fresh}, retry=FAST_RETRY)
    try:
        report = await engine2.sync_root(root)
        assert report.complete
        assert_hub_mirrors(supabase_server, supabase_user.uid, docs)
    finally:
        engine2.close()
        await fresh.close()


def test_service_role_mode_syncs_for_a_fixed_user_only_when_asked(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "server.log").write_text("from a headless box")
    env = cli_env(tmp_path, supabase_server)
    env["SUPABASE_SERVICE_ROLE_KEY"] = supabase_server.service_key
    cli = [sys.executable, "-m", "agent"]
    add = subprocess.run(
        [*cli, "add", str(docs), "--hub", "supabase"], env=env, capture_output=True, text=True
    )
    assert add.returncode == 0 and "hubsync login" in add.stderr, add.stderr
    plain = subprocess.run([*cli, "sync", "--once"], env=env, capture_output=True, text=True)
    assert plain.returncode == 2  # not signed in, no service role asked for: nothing synced
    assert supabase_server.rest.snapshot("hubsync_manifest") == []
    half = subprocess.run(
        [*cli, "sync", "--once", "--service-role"], env=env, capture_output=True, text=True
    )
    assert half.returncode == 1 and "--user-id" in half.stderr
    run = subprocess.run(
        [*cli, "sync", "--once", "--service-role", "--user-id", supabase_user.uid],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "service" in run.stderr.lower()  # the loud warning
    assert supabase_server.service_key not in run.stdout + run.stderr
    assert_hub_mirrors(supabase_server, supabase_user.uid, docs)


def test_credentials_in_the_supabase_url_are_never_stored_or_shown(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    env = cli_env(tmp_path, supabase_server)
    env["SUPABASE_URL"] = supabase_server.url.replace("://", "://hubuser:pa55w0rd-in-url@", 1)
    cli = [sys.executable, "-m", "agent"]
    said = ""
    for args, stdin in [
        (["login", "--email", supabase_user.email, "--password-stdin"], supabase_user.password),
        (["whoami"], ""),
        (["add", str(docs)], ""),
        (["sync", "--once"], ""),
        (["status", "--json"], ""),
        (["doctor"], ""),
    ]:
        done = subprocess.run(
            [*cli, *args], input=stdin + "\n", env=env, capture_output=True, text=True
        )
        said += done.stdout + done.stderr
    who = subprocess.run([*cli, "whoami", "--json"], env=env, capture_output=True, text=True)
    assert who.returncode == 0, who.stderr
    shown = json.loads(who.stdout)
    assert shown["user_id"] == supabase_user.uid and shown["hub"] == supabase_server.url
    assert "hubuser" in env["SUPABASE_URL"] and "pa55w0rd-in-url" not in said
    assert "Signed in" in said
    journal = tmp_path / "home" / "data" / "journal.sqlite3"
    with sqlite3.connect(journal) as db:
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'hub.supabase.%'"))
    assert set(meta) == {"hub.supabase.id", "hub.supabase.path"}
    assert not any("pa55w0rd" in v or "hubuser" in v for v in meta.values()), meta
    stored = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert not any(b"pa55w0rd-in-url" in p.read_bytes() for p in stored)


async def test_a_row_the_schema_rejects_fails_the_sync_with_postgres_words(
    tmp_path: Path,
    supabase_server: SupabaseTestServer,
    supabase_rig: tuple[Journal, SupabaseRemote, SyncEngine],
) -> None:
    """The hub's rows go through the real tables: a CHECK the schema has is enforced."""
    journal, _, engine = supabase_rig
    supabase_server.rest.execute(
        "alter table public.hubsync_manifest add constraint no_rejected_names"
        " check (rel_path not like '%rejected%')"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rejected.txt").write_text("refused by the schema")
    root = journal.add_root(docs, "supabase")
    report = await engine.sync_root(root)
    assert not report.complete
    assert "rejected.txt" in report.errors, report.errors
    assert "no_rejected_names" in str(report.errors["rejected.txt"])
    assert supabase_server.rest.snapshot("hubsync_manifest") == []
