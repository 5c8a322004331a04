"""The agent end to end: live watching, coalescing, control API, offline, degraded roots."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from agent.control.client import ControlClient
from agent.control.protocol import ControlError
from sync.journal import stat_snapshot
from tests.fixtures.agent import FAST, LiveAgent, live_agent, start_agent_process
from tests.fixtures.engine import assert_hub_mirrors, blob_files, sha_of


def _root_id(agent: LiveAgent) -> str:
    (rt,) = agent.service.runtimes.values()
    return rt.root.id


def _uploads(agent: LiveAgent) -> int:
    return int(agent.service.metrics.snapshot()["counters"]["files_uploaded"])


async def test_saved_file_reaches_the_hub_and_latency_is_measured(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        (docs / "note.txt").write_text("hello hub")
        hub = agent.ctx.config.local_hub_path(agent.paths)
        await agent.wait_for(
            lambda: agent.ctx.journal.count_states(_root_id(agent)).get("synced") == 1
        )
        assert_hub_mirrors(hub, _root_id(agent), docs)
        # The pass is accounted for after its journal commit: wait for that too.
        await agent.wait_for(lambda: agent.service.metrics.snapshot()["latency"]["count"] >= 1)
        latency = agent.service.metrics.snapshot()["latency"]
        assert latency["count"] == 1 and latency["p50"] < 10


async def test_editor_atomic_save_uploads_only_the_final_content(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    (docs / "essay.md").write_text("draft 1")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        before = _uploads(agent)
        for n in range(2, 6):  # an editor saving repeatedly: temp file, then rename over
            tmp = docs / f".essay.md.swp{n}"
            tmp.write_text(f"draft {n}")
            os.replace(tmp, docs / "essay.md")
            await asyncio.sleep(0.02)
        await agent.idle()
        hub = agent.ctx.config.local_hub_path(agent.paths)
        assert_hub_mirrors(hub, _root_id(agent), docs)
        assert _uploads(agent) - before == 1  # coalesced: only "draft 5" was uploaded
        versions = agent.ctx.journal.versions(_root_id(agent), "essay.md")
        assert [v.sha256 for v in versions][-1] == sha_of(docs / "essay.md")
        assert len(versions) == 2


def _git(cwd: Path, *args: str) -> None:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"


@pytest.mark.timeout(240)
async def test_git_checkout_of_5000_files_is_coalesced(short_home: Path) -> None:
    repo = short_home / "repo"
    repo.mkdir()
    (repo / ".hubignore").write_text(".git/\n")
    _git(repo, "init", "-q", "-b", "main")
    for i in range(5000):
        d = repo / f"pkg{i % 50}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i}.py").write_text(f"VALUE = {i}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "one")
    _git(repo, "checkout", "-q", "-b", "feature")
    for i in range(5000):
        (repo / f"pkg{i % 50}" / f"mod{i}.py").write_text(f"VALUE = {i} * 2\n")
    _git(repo, "commit", "-q", "-am", "two")
    _git(repo, "checkout", "-q", "main")
    async with live_agent(short_home, [repo]) as agent:
        await agent.idle(timeout=120)
        passes_before, uploads_before = agent.service.passes, _uploads(agent)
        _git(repo, "checkout", "-q", "feature")  # rewrites all 5,000 files
        await agent.idle(timeout=120)
        hub = agent.ctx.config.local_hub_path(agent.paths)
        files = {
            p.relative_to(repo).as_posix(): p
            for p in repo.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(repo).parts
        }
        assert_hub_mirrors(hub, _root_id(agent), repo, files)
        assert _uploads(agent) - uploads_before == 5000
        assert agent.service.passes - passes_before <= 10, (
            "events must be coalesced into a few passes"
        )


@pytest.mark.timeout(240)
async def test_rm_rf_of_5000_files_is_held_then_confirmed(short_home: Path) -> None:
    docs = short_home / "docs"
    for i in range(5000):
        d = docs / "big" / f"d{i % 40}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(str(i))
    (docs / "keep.txt").write_text("keep")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle(timeout=120)
        rid = _root_id(agent)
        blobs = blob_files(agent.ctx.config.local_hub_path(agent.paths))
        passes_before = agent.service.passes
        shutil.rmtree(docs / "big")
        await agent.idle(timeout=60)
        assert agent.ctx.journal.count_states(rid).get("held") == 5000  # an accident? held.
        assert agent.service.passes - passes_before <= 5
        await agent.ctx.engine.sync_root(agent.service.runtimes[rid].root, confirm_deletes=True)
        assert agent.ctx.journal.count_states(rid) == {"synced": 1, "deleted": 5000}
        assert blob_files(agent.ctx.config.local_hub_path(agent.paths)) == blobs  # blobs kept
        assert_hub_mirrors(agent.ctx.config.local_hub_path(agent.paths), rid, docs)


async def test_held_deletions_can_be_undone_or_applied_from_the_tray(short_home: Path) -> None:
    """What the tray's buttons call: bring the files back, or delete them in the hub."""
    docs = short_home / "docs"
    (docs / "big").mkdir(parents=True)
    for i in range(20):
        (docs / "big" / f"f{i:02}.txt").write_text(f"file {i}")
    (docs / "keep.txt").write_text("keep")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        rid = _root_id(agent)
        client = await agent.client()
        try:
            shutil.rmtree(docs / "big")
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(rid).get("held") == 20, timeout=30
            )
            root = (await client.call("status"))["roots"][0]
            assert root["counts"]["held"] == 20
            assert root["held"] == [f"big/f{i:02}.txt" for i in range(10)]  # a sample
            assert await client.call("bring_back_held", {"root": str(docs)}) == {"restoring": 20}
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(rid) == {"synced": 21}, timeout=30
            )
            assert (docs / "big" / "f07.txt").read_text() == "file 7"
            shutil.rmtree(docs / "big")
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(rid).get("held") == 20, timeout=30
            )
            with pytest.raises(ControlError, match="20 deletions are held now, not 19"):
                await client.call("apply_held", {"root": str(docs), "expected": 19})
            async with agent.service.pass_lock:  # a pass under way: the answer waits for it
                assert await client.call("apply_held", {"root": str(docs), "expected": 20}) == {
                    "applying": 20
                }
                assert (await client.call("status"))["roots"][0]["answering"] is True
                with pytest.raises(ControlError, match="still under way"):
                    await client.call("bring_back_held", {"root": str(docs)})
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(rid) == {"synced": 1, "deleted": 20},
                timeout=30,
            )
            assert_hub_mirrors(agent.ctx.config.local_hub_path(agent.paths), rid, docs)
            with pytest.raises(ControlError, match="a mirrored folder is needed"):
                await client.call("apply_held", {})
            shutil.rmtree(docs / "big", ignore_errors=True)
            for i in range(12):
                (docs / f"n{i}.txt").write_text(str(i))
            await agent.idle()
            for i in range(12):
                (docs / f"n{i}.txt").unlink()
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(rid).get("held") == 12, timeout=30
            )
            docs.rename(short_home / "unplugged")  # the drive is gone: nothing is rebuilt
            await agent.wait_for(lambda: agent.service.runtimes[rid].missing, timeout=20)
            with pytest.raises(ControlError, match="is not there"):
                await client.call("bring_back_held", {"root": str(docs)})
            assert not docs.exists()
        finally:
            await client.close()


async def test_an_idle_agent_keeps_a_current_stat_snapshot_for_after_a_crash(
    short_home: Path,
) -> None:
    """Written at close only, a snapshot is lost to a crash or power cut: the next start
    then pays a slow first rescan. An idle agent writes it as it goes."""
    docs = short_home / "docs"
    docs.mkdir()
    for i in range(50):
        (docs / f"f{i}.txt").write_text(str(i))
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        journal = agent.ctx.journal
        snapshot = journal.path.with_name(journal.path.name + ".stat")

        def current() -> bool:
            return stat_snapshot.read(snapshot, journal._files_generation()) is not None

        await agent.wait_for(current, timeout=10)
        (docs / "new.txt").write_text("new")
        await agent.wait_for(lambda: journal.count_states(_root_id(agent)).get("synced") == 51)
        await agent.wait_for(current, timeout=10)  # refreshed after the change


async def test_many_subscribers_and_churning_clients_leak_nothing(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        me = psutil.Process()
        fds_before, tasks_before = me.num_fds(), len(asyncio.all_tasks())
        for n in range(100):
            client = await agent.client()
            if n % 3 == 0:
                await client.call("status")
            await client.close()
        subscribers = [await agent.client() for _ in range(10)]
        streams = [await c.subscribe(["activity"]) for c in subscribers]
        nexts = [asyncio.ensure_future(anext(s)) for s in streams]
        await asyncio.sleep(0.1)
        (docs / "after-churn.txt").write_text("still syncing")
        events = await asyncio.wait_for(asyncio.gather(*nexts), 20)
        assert all(e.data == events[0].data and e.seq == events[0].seq for e in events)
        assert events[0].data["recorded"] == 1
        for s in streams:
            await s.aclose()
        for c in subscribers:
            await c.close()
        await agent.wait_for(lambda: agent.service.server.client_count == 0)
        await asyncio.sleep(0.1)
        assert me.num_fds() <= fds_before
        assert len(asyncio.all_tasks()) <= tasks_before


async def test_offline_hub_queues_work_and_drains_when_back(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    (short_home / "config").mkdir()
    (short_home / "config" / "config.toml").write_text(
        "[agent]\nhealth_interval_seconds = 1.0\ndebounce_seconds = 0.3\n"
    )
    subprocess.run(
        [*_cli(), "add", str(docs)],
        env={**os.environ, "HUBSYNC_HOME": str(short_home)},
        check=True,
        capture_output=True,
    )
    agent = start_agent_process(short_home)
    hub = short_home / "data" / "hub"
    aside = short_home / "hub-unplugged"
    try:
        client = await ControlClient.connect(short_home / "run" / "agent.sock", timeout=5)
        async with client:
            hub.rename(aside)  # the NAS goes away
            deadline = time.monotonic() + 20
            while (await client.call("status"))["state"] != "offline":
                assert time.monotonic() < deadline, "agent never noticed the hub was gone"
                await asyncio.sleep(0.2)
            for i in range(20):
                (docs / f"offline{i}.txt").write_text(f"written while offline {i}")
            proc = psutil.Process(agent.proc.pid)
            await asyncio.sleep(1.0)  # let the watcher deliver; then measure the idle wait
            cpu_before = sum(proc.cpu_times()[:2])
            await asyncio.sleep(5.0)
            cpu = (sum(proc.cpu_times()[:2]) - cpu_before) / 5.0
            status = await client.call("status")
            assert status["state"] == "offline"
            assert status["roots"][0]["counts"].get("synced", 0) == 0
            print(f"agent CPU while offline: {cpu * 100:.2f}% of a core")
            assert cpu < 0.02
            aside.rename(hub)  # back
            deadline = time.monotonic() + 30
            while (await client.call("status"))["roots"][0]["counts"].get("synced", 0) < 20:
                assert time.monotonic() < deadline, "queue did not drain"
                await asyncio.sleep(0.2)
    finally:
        agent.stop()
    import sqlite3

    root_id = (
        sqlite3.connect(short_home / "data" / "journal.sqlite3")
        .execute("SELECT id FROM roots")
        .fetchone()[0]
    )
    assert_hub_mirrors(hub, root_id, docs)


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "agent"]


class _NoWatchesLeft:
    """An observer that fails like inotify does when fs.inotify.max_user_watches is reached."""

    def schedule(self, handler: object, path: str, *, recursive: bool) -> object:
        return None

    def start(self) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def stop(self) -> None:
        return None

    def join(self, timeout: float | None = None) -> None:
        return None


async def test_watch_limit_degrades_root_and_periodic_scans_keep_it_synced(
    short_home: Path,
) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs], observer_factory=_NoWatchesLeft) as agent:
        client = await agent.client()
        async with client:
            status = await client.call("status")
            root = status["roots"][0]
            assert root["degraded"] and "watch limit" in root["degraded"]
            assert not root["watching"]
            (docs / "found-by-scan.txt").write_text("no events, still synced")
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(_root_id(agent)).get("synced") == 1,
                timeout=10,
            )
        assert agent.ctx.journal.roots()[0].degraded == root["degraded"]
        assert FAST.degraded_scan_interval < 1


async def test_missing_root_pauses_and_resumes_when_back(short_home: Path) -> None:
    docs = short_home / "drive"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        rid = _root_id(agent)
        aside = short_home / "unplugged"
        docs.rename(aside)
        await agent.wait_for(lambda: agent.service.runtimes[rid].missing, timeout=10)
        assert agent.ctx.journal.count_states(rid) == {"synced": 1}  # nothing deleted
        aside.rename(docs)
        (docs / "b.txt").write_text("b")
        await agent.wait_for(
            lambda: agent.ctx.journal.count_states(rid).get("synced") == 2, timeout=20
        )


async def test_an_unplugged_hub_drive_is_waited_for_and_used_again_when_back(
    short_home: Path,
) -> None:
    drive = short_home / "usb"
    drive.mkdir()
    (short_home / "config").mkdir()
    (short_home / "config" / "config.toml").write_text(f'[hub]\nlocal_path = "{drive}/hub"\n')
    docs = short_home / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        rid = _root_id(agent)
        drive.rename(short_home / "unplugged")
        await agent.wait_for(lambda: "local" in agent.ctx.unavailable, timeout=20)
        assert (
            "went away (was its drive unplugged?)" in agent.service.status()["unavailable"]["local"]
        )
        assert agent.service.status()["state"] == "offline"
        (docs / "b.txt").write_text("written while the drive was away")
        await asyncio.sleep(1.0)
        assert not drive.exists()  # no new, empty hub was made where the drive was
        assert agent.ctx.journal.count_states(rid).get("synced") == 1
        # Back, but its database is unreadable (half copied): reported, the agent runs on.
        (drive / "hub").mkdir(parents=True)
        (drive / "hub" / "hub.sqlite3").write_bytes(b"not a database" * 100)
        await agent.wait_for(
            lambda: "cannot be opened" in agent.ctx.unavailable.get("local", ""), timeout=20
        )
        assert not agent.task.done()
        shutil.rmtree(drive)
        # Plugged back in: mounted afresh, so the files are not those the agent had open.
        shutil.copytree(short_home / "unplugged", drive)
        await agent.wait_for(
            lambda: agent.ctx.journal.count_states(rid).get("synced") == 2, timeout=30
        )
        assert_hub_mirrors(drive / "hub", rid, docs)


async def test_exai_health_is_shown_beside_the_hubs(
    short_home: Path, exai_server: object, exai_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.exai.settings import ExaiSettings

    assert isinstance(exai_settings, ExaiSettings)
    monkeypatch.setenv("EXAI_WS_HOST", exai_settings.host)
    monkeypatch.setenv("EXAI_WS_PORT", str(exai_settings.port))
    monkeypatch.setenv("EXAI_WS_TOKEN", exai_settings.token)
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.wait_for(
            lambda: (agent.service.status()["exai"] or {}).get("state") == "online", timeout=10
        )
        assert agent.service.status()["state"] == "idle"
    monkeypatch.setenv("EXAI_WS_TOKEN", "wrong-token")
    async with live_agent(short_home, [docs]) as agent:
        await agent.wait_for(
            lambda: (agent.service.status()["exai"] or {}).get("state") == "signin_needed",
            timeout=10,
        )
        status = agent.service.status()
        assert "token" in status["exai"]["reason"]
        assert status["state"] == "idle"  # EXAI trouble never holds back syncing


async def test_progress_events_show_active_transfers(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        agent.ctx.engine.upload_limit.set_rate(4 * 1024 * 1024)  # slow enough to watch
        client = await agent.client()
        async with client:
            events = await client.subscribe(["progress"])
            (docs / "video.mp4").write_bytes(os.urandom(6 * 1024 * 1024))
            seen = None
            async with asyncio.timeout(20):
                async for event in events:
                    active = event.data.get("active") or []
                    if active and 0 < active[0]["bytes_done"] < active[0]["bytes_total"]:
                        seen = active[0]
                        break
        assert seen is not None and seen["path"] == "video.mp4"
        assert seen["bytes_total"] == 6 * 1024 * 1024


def _synced(home: Path, relpath: str) -> str | None:
    """The sha256 the journal has for a synced ``relpath`` (read-only, beside the agent)."""
    db = sqlite3.connect(f"file:{home / 'data' / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT sha256 FROM files WHERE relpath=? AND state='synced'", (relpath,)
        ).fetchone()
    except sqlite3.OperationalError:
        return None  # not created yet
    finally:
        db.close()
    return None if row is None else str(row[0])


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_edit_made_while_the_agent_was_stopped_is_synced_after_restart(
    short_home: Path,
) -> None:
    """The agent leaves a snapshot of its stat index when it stops; the next start reads
    it for its first rescan, which must still see what changed in between."""
    docs = short_home / "docs"
    docs.mkdir()
    for i in range(50):
        (docs / f"f{i:02}.txt").write_text(f"version one of {i}")
    env = {**os.environ, "HUBSYNC_HOME": str(short_home)}
    subprocess.run([sys.executable, "-m", "agent", "add", str(docs)], env=env, check=True)
    agent = start_agent_process(short_home)
    try:
        _wait(lambda: all(_synced(short_home, f"f{i:02}.txt") for i in range(50)))
    finally:
        agent.stop()
    assert (short_home / "data" / "journal.sqlite3.stat").exists()
    (docs / "f07.txt").write_text("edited while the agent was stopped, and longer")
    agent = start_agent_process(short_home)
    try:
        _wait(lambda: _synced(short_home, "f07.txt") == sha_of(docs / "f07.txt"))
    finally:
        agent.stop()


async def test_a_path_with_a_nul_is_bad_params_not_internal(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        client = await agent.client()
        try:
            for method in ("history", "restore"):
                with pytest.raises(ControlError) as err:
                    await client.call(method, {"path": f"{docs}/a\0b"})
                assert err.value.code == "bad_params", method
            with pytest.raises(ControlError) as err:
                await client.call("restore", {"path": f"{docs}/a", "at": "yesterday"})
            assert err.value.code == "bad_params"
        finally:
            await client.close()
