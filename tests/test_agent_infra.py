"""The agent's infrastructure: lock, logs, health, metrics, autostart, diagnostics, CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import plistlib
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli.agent_files import doctor_bundle, register
from agent.control.client import ControlClient
from agent.control.server import ControlServer
from agent.daemon.health import HealthMonitor, HealthState, HealthStatus
from agent.daemon.metrics import (
    BYTES_UPLOADED,
    DEDUP_BYTES_SAVED,
    FILES_UPLOADED,
    LATENCY_P50,
    LATENCY_P95,
    QUEUE_LENGTH,
    Metrics,
    MetricsStore,
)
from agent.platform import autostart
from agent.platform.lock import AgentLock, AlreadyRunning, lock_held, read_holder
from agent.platform.logs import follow, redact, setup_logging, tail
from agent.platform.paths import Paths, resolve_paths
from sync.errors import AuthError, TransientError
from sync.transfer import RetryPolicy, with_retries
from tests.fixtures.agent_infra_helpers import wait_until

pytest_plugins = ["tests.fixtures.agent_infra"]


@pytest.fixture(autouse=True)
def _no_loop_errors(request: pytest.FixtureRequest) -> None:
    """Every async test here also fails on errors the event loop only logs."""
    if asyncio.iscoroutinefunction(request.function):
        request.getfixturevalue("loop_errors")


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwicm9sZSI6ImF1dGhlbnRpY2F0ZWQifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
REFRESH = "v1.MhRq3XyZ-refresh-9QpL"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return resolve_paths({"HUBSYNC_HOME": str(tmp_path / "home")}).ensure()


@pytest.fixture
def root_logging() -> object:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield root
    for h in list(root.handlers):
        if h not in saved[0]:
            root.removeHandler(h)
            h.close()
    root.setLevel(saved[1])


# -- single-instance lock ----------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from agent.platform.lock import AgentLock
lock = AgentLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_second_agent_is_refused_with_the_holders_pid(paths: Paths) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(paths.agent_lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert read_holder(paths.agent_lock) == holder.pid
        with pytest.raises(AlreadyRunning, match=rf"another agent is running \(pid {holder.pid}\)"):
            AgentLock(paths.agent_lock).acquire()
        holder.send_signal(signal.SIGKILL)  # the kernel releases a dead holder's lock
        holder.wait(10)
        with AgentLock(paths.agent_lock) as lock:
            assert lock.held and read_holder(paths.agent_lock) == os.getpid()
            with pytest.raises(AlreadyRunning, match=str(os.getpid())):
                AgentLock(paths.agent_lock).acquire()  # also within one process
        assert read_holder(paths.agent_lock) is None  # released: no stale pid left
        again = AgentLock(paths.agent_lock)
        again.acquire()
        again.release()
        assert stat.S_IMODE(paths.agent_lock.stat().st_mode) == 0o600
    finally:
        holder.kill()
        holder.wait(10)


# -- logs --------------------------------------------------------------------------


def test_a_look_at_the_agent_lock_never_keeps_an_agent_from_starting(paths: Paths) -> None:
    """What a CLI command does to learn whether an agent runs (starting ones included)."""
    assert not lock_held(paths.agent_lock)  # no file yet
    with AgentLock(paths.agent_lock):
        assert lock_held(paths.agent_lock)
    assert not lock_held(paths.agent_lock)
    with AgentLock(paths.agent_lock) as lock:  # the look let go at once
        assert lock.held


def test_log_file_never_contains_secrets(paths: Paths, root_logging: object) -> None:
    setup_logging(paths)
    log = logging.getLogger("hubsync.test")
    log.info("signed in, access token %s", JWT)
    log.warning("request failed: Authorization: Bearer %s", "opaque-bearer-value")
    log.info("body %s", json.dumps({"refresh_token": REFRESH, "email": "a@b.c"}))
    log.info("GET /storage/v1/object?apikey=%s&download=1", JWT)
    logging.getLogger("httpx").info("connect postgres://hub:pg-pass-42@db.local:5432/postgres")
    try:
        raise RuntimeError("login failed for password=hunter2")
    except RuntimeError:
        log.exception("sign-in error")
    for h in logging.getLogger().handlers:
        h.flush()
    text = paths.log_file.read_text("utf-8")
    for secret in (JWT, JWT.split(".")[1], "opaque-bearer-value", REFRESH, "pg-pass-42", "hunter2"):
        assert secret not in text
    assert "Bearer [REDACTED]" in text and "[REDACTED]-JWT" in text
    assert '"refresh_token": "[REDACTED]"' in text and "a@b.c" in text
    assert "download=1" in text and "RuntimeError" in text and "sign-in error" in text
    assert stat.S_IMODE(paths.log_file.stat().st_mode) == 0o600


def test_each_retry_wait_is_one_readable_log_line(paths: Paths, root_logging: object) -> None:
    setup_logging(paths)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError("the hub answered 503")
        return "ok"

    policy = RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.02, wait_jitter=0)
    assert asyncio.run(with_retries(flaky, policy)) == "ok"
    for h in logging.getLogger().handlers:
        h.flush()
    lines = [ln for ln in paths.log_file.read_text("utf-8").splitlines() if "503" in ln]
    assert len(lines) == 2 and "retry 1 in" in lines[0] and "retry 2 in" in lines[1]
    assert "retry_scheduled" not in paths.log_file.read_text("utf-8")


def test_redact_leaves_ordinary_text_alone() -> None:
    plain = "synced 12 files (3 dedup hits) in /home/me/notes; max_tokens=5 author=ann"
    assert redact(plain) == plain
    assert redact("HUBSYNC_EXAI_TOKEN=abc123") == "HUBSYNC_EXAI_TOKEN=[REDACTED]"
    assert redact("key sb_secret_AbC123xyz") == "key [REDACTED]-KEY"


def test_log_rotates_and_tail_spans_the_rotation(paths: Paths, root_logging: object) -> None:
    handler = setup_logging(paths, max_bytes=4000, backups=2)
    log = logging.getLogger("hubsync.test")
    for i in range(300):
        log.info("line %04d", i)
    handler.flush()
    assert Path(str(paths.log_file) + ".1").exists()
    last = tail(paths.log_file, 80)
    assert [int(line.rsplit(" ", 1)[1]) for line in last] == list(range(220, 300))
    assert tail(paths.log_file, 0) == []
    assert tail(paths.log_dir / "missing.log", 5) == []


def test_follow_sees_new_lines_across_rotation(tmp_path: Path) -> None:
    log_file = tmp_path / "a.log"
    log_file.write_text("old line\n")

    def writer() -> None:
        time.sleep(0.2)
        with open(log_file, "a") as f:
            f.write("first\nsecond\n")
        time.sleep(0.2)
        os.replace(log_file, tmp_path / "a.log.1")
        log_file.write_text("after rotation\n")

    t = threading.Thread(target=writer)
    t.start()
    got = list(follow(log_file, poll=0.02, stop_after=1.0))
    t.join()
    assert got == ["first", "second", "after rotation"]


def test_watchdogs_shutdown_race_is_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stopping a busy watcher made watchdog log an ERROR on most agent shutdowns."""
    import agent.daemon.watcher  # noqa: F401 - installs the filter

    inotify_log = logging.getLogger("watchdog.observers.inotify")
    with caplog.at_level(logging.WARNING):
        inotify_log.error("InotifyEmitter.queue_events() called when the thread is inactive")
        inotify_log.warning("Inotify queue overflowed; filesystem events were lost")
    assert [r.getMessage() for r in caplog.records] == [
        "Inotify queue overflowed; filesystem events were lost"
    ]


# -- health --------------------------------------------------------------------------


class Remote:
    """A probe whose answers the test sets."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.latency = 0.01
        self.calls: list[float] = []

    async def probe(self) -> float:
        self.calls.append(time.monotonic())
        if self.mode == "down":
            raise TransientError("connection refused")
        if self.mode == "auth":
            raise AuthError("session expired; sign in again")
        if self.mode == "hang":
            await asyncio.sleep(10)
        return self.latency


async def test_health_rules() -> None:
    remote = Remote()
    changes: list[HealthState] = []
    mon = HealthMonitor(
        remote.probe,
        interval=30,
        degraded_latency=0.5,
        offline_after=2,
        window=3,
        probe_timeout=0.1,
        on_change=lambda s: changes.append(s.state),
    )
    assert mon.status.state is HealthState.UNKNOWN
    s = await mon.check()
    assert (s.state, s.latency, s.consecutive_failures) == (HealthState.ONLINE, 0.01, 0)
    assert s.last_check is not None and abs(s.last_check - time.time()) < 5
    remote.latency = 0.9
    assert (await mon.check()).reason == "slow hub (0.9 s)"
    remote.latency = 0.01
    assert (await mon.check()).state is HealthState.ONLINE
    remote.mode = "down"  # one failure: degraded; two in a row: offline
    s = await mon.check()
    assert (s.state, s.consecutive_failures, s.reason) == (
        HealthState.DEGRADED,
        1,
        "connection refused",
    )
    assert mon.next_delay() == 2.0
    s = await mon.check()
    assert (s.state, s.consecutive_failures) == (HealthState.OFFLINE, 2)
    assert mon.next_delay() == 4.0
    remote.mode = "ok"
    assert (await mon.check()).state is HealthState.ONLINE  # a recovery starts afresh
    remote.mode = "down"
    await mon.check()
    remote.mode = "ok"
    s = await mon.check()  # one failure among the last three: intermittent
    assert (s.state, s.reason) == (HealthState.DEGRADED, "intermittent failures")
    assert (await mon.check()).state is HealthState.DEGRADED
    assert (await mon.check()).state is HealthState.ONLINE  # the failure left the window
    remote.mode = "hang"
    s = await mon.check()
    assert (s.state, s.reason) == (HealthState.DEGRADED, "no answer within 0.1 s")
    remote.mode = "auth"
    s = await mon.check()
    assert (s.state, s.reason) == (HealthState.SIGNIN_NEEDED, "session expired; sign in again")
    assert mon.next_delay() == 30  # no point hammering a refused session
    assert s.to_dict()["state"] == "signin_needed"
    remote.mode = "ok"
    assert (await mon.check()).state is HealthState.ONLINE
    assert changes == [
        HealthState.ONLINE,
        HealthState.DEGRADED,
        HealthState.ONLINE,
        HealthState.DEGRADED,
        HealthState.OFFLINE,
        HealthState.ONLINE,
        HealthState.DEGRADED,
        HealthState.ONLINE,
        HealthState.DEGRADED,
        HealthState.SIGNIN_NEEDED,
        HealthState.ONLINE,
    ]


async def test_a_failing_listener_does_not_stop_health_checks() -> None:
    remote = Remote()

    def broken(status: HealthStatus) -> None:
        raise RuntimeError("listener bug")

    mon = HealthMonitor(remote.probe, interval=30, on_change=broken)
    assert (await mon.check()).state is HealthState.ONLINE
    remote.mode = "down"
    assert (await mon.check()).state is HealthState.DEGRADED


async def test_health_notices_outage_and_return_quickly_without_busy_looping() -> None:
    remote = Remote()
    seen: list[HealthStatus] = []
    mon = HealthMonitor(
        remote.probe, interval=0.6, fast_retry=0.05, offline_after=2, on_change=seen.append
    )
    mon.start()
    try:
        await wait_until(lambda: mon.status.state is HealthState.ONLINE)
        remote.mode = "down"
        t0 = time.monotonic()
        await wait_until(lambda: mon.status.state is HealthState.OFFLINE)
        # the next regular probe (<= interval) fails, then a fast retry confirms
        assert time.monotonic() - t0 < 1.1  # not two full intervals (1.2 s)
        # while offline: probes back off (0.05, 0.1, 0.2, 0.4, then every 0.6 s), CPU stays idle
        cpu0 = time.process_time()
        calls0 = len(remote.calls)
        await asyncio.sleep(2.0)
        cpu = time.process_time() - cpu0
        probes = len(remote.calls) - calls0
        assert cpu < 0.2, f"{cpu:.3f} s CPU over a 2 s wait"
        assert 2 <= probes <= 8, probes
        remote.mode = "ok"
        t0 = time.monotonic()
        await wait_until(lambda: mon.status.state is HealthState.ONLINE)
        assert time.monotonic() - t0 < 1.0  # at most one interval (0.6 s) and a bit
        remote.mode = "down"
        mon.poke()  # the engine saw a network error: probe now, not in 0.6 s
        t0 = time.monotonic()
        await wait_until(lambda: mon.status.consecutive_failures >= 1)
        assert time.monotonic() - t0 < 0.4
    finally:
        await mon.stop()
    assert [s.state for s in seen][:3] == [
        HealthState.ONLINE,
        HealthState.DEGRADED,
        HealthState.OFFLINE,
    ]


async def test_a_poke_right_before_stop_does_not_keep_the_monitor_running() -> None:
    """The last pass of an agent that is stopping can poke its monitor just before
    the monitor is stopped; on Python 3.11 ``wait_for`` then swallowed the cancel
    and the monitor probed on for ever, hanging the agent's shutdown (seen in CI)."""
    remote = Remote()
    mon = HealthMonitor(remote.probe, interval=30)
    task = mon.start()
    await wait_until(lambda: mon.status.state is HealthState.ONLINE)
    await asyncio.sleep(0.01)  # the monitor now waits for its next turn
    mon.poke()
    await asyncio.wait_for(mon.stop(), 2)
    assert task.done()


async def test_idle_agent_parts_use_no_cpu(short_tmp: Path) -> None:
    """Server with a subscribed client plus a health monitor, idle for 2 s."""
    remote = Remote()
    async with ControlServer(short_tmp / "agent.sock") as server:
        mon = HealthMonitor(remote.probe, interval=0.5)
        mon.start()
        client = await ControlClient.connect(server.socket_path)
        await client.subscribe(["health"])
        try:
            await asyncio.sleep(0.1)
            cpu0 = time.process_time()
            await asyncio.sleep(2.0)
            cpu = time.process_time() - cpu0
        finally:
            await client.close()
            await mon.stop()
    assert cpu < 0.2, f"{cpu:.3f} s CPU while idle"


async def test_a_hung_hub_drive_stalls_neither_the_loop_nor_other_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Looks at a hub on a hung share time out; while one hangs, no other piles up
    behind it, and the loop's shared thread pool is never used."""
    import agent.daemon.hub_keeper as hub_keeper

    monkeypatch.setattr(hub_keeper, "LOOK_DEADLINE", 0.2)
    keeper = hub_keeper.LocalHubKeeper(None, None, None, asyncio.Lock())  # type: ignore[arg-type]
    share_back = threading.Event()
    calls: list[str] = []

    def hung_stat() -> bool:
        calls.append(threading.current_thread().name)
        return share_back.wait(30)

    try:
        started = time.monotonic()
        assert await keeper._look(hung_stat, hung=True) is True
        assert await keeper._look(hung_stat, hung=True) is True  # still hung: not asked again
        assert time.monotonic() - started < 1.0
        assert len(calls) == 1 and calls[0].startswith("hubsync-hubwatch")
        share_back.set()
        await wait_until(lambda: keeper._last_look is not None and keeper._last_look.done())
        assert await keeper._look(lambda: False, hung=True) is False  # answers again
    finally:
        share_back.set()
        await keeper.aclose()


# -- metrics ---------------------------------------------------------------------------


def test_metrics_snapshot_and_percentiles() -> None:
    m = Metrics()
    m.file_uploaded(1000)
    m.file_uploaded(500)
    m.dedup_hit(2048)
    m.error("transient")
    m.error("transient")
    m.error("auth")
    m.set_queue_length(7)
    for i in range(1, 101):
        m.observe_latency(i / 100)  # 0.01 .. 1.00 s
    snap = m.snapshot()
    assert snap["counters"][FILES_UPLOADED] == 2 and snap["counters"][BYTES_UPLOADED] == 1500
    assert snap["counters"]["files_downloaded"] == 0
    assert snap["counters"][DEDUP_BYTES_SAVED] == 2048
    assert snap["errors"] == {"transient": 2, "auth": 1}
    assert snap["gauges"][QUEUE_LENGTH] == 7
    lat = snap["latency"]
    assert lat["count"] == 100
    assert lat["p50"] == pytest.approx(0.505) and lat["p95"] == pytest.approx(0.9505)
    assert sum(lat["buckets"].values()) == 100 and lat["buckets"]["0.1"] == 10
    json.dumps(snap)  # what the control API sends


def test_metrics_persist_deltas_into_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(journal)
    conn.execute("CREATE TABLE files (path TEXT)")
    clock = iter(range(1000, 2000)).__next__
    store = MetricsStore(conn, clock=lambda: float(clock()))
    m = Metrics()
    m.file_uploaded(100)
    m.observe_latency(0.4)
    m.observe_latency(0.8)
    # the engine has a batch open: metrics join it and are committed with it
    conn.execute("INSERT INTO files VALUES ('a')")
    assert store.flush(m) == 5  # files, bytes, p50, p95, latency count
    assert conn.in_transaction
    conn.commit()
    assert store.flush(m) == 0  # nothing changed: an idle agent writes nothing
    m.file_uploaded(50)
    m.set_queue_length(3)
    assert store.flush(m) == 3  # not inside a transaction: committed at once
    assert not conn.in_transaction
    conn.close()

    # a new agent run: counters restart from zero, totals keep adding up
    store2 = MetricsStore(journal)
    m2 = Metrics()
    m2.file_uploaded(25)
    store2.flush(m2)
    totals = store2.totals([FILES_UPLOADED, BYTES_UPLOADED])
    assert totals == {FILES_UPLOADED: 3.0, BYTES_UPLOADED: 175.0}
    assert store2.series(LATENCY_P50) == [(1000.0, pytest.approx(0.6))]
    assert store2.series(LATENCY_P95)[0][1] == pytest.approx(0.78)
    assert store2.series(QUEUE_LENGTH) == [(1002.0, 3.0)]
    assert store2.prune(older_than=1001.0) == 5
    assert store2.totals([FILES_UPLOADED]) == {FILES_UPLOADED: 2.0}


# -- autostart -------------------------------------------------------------------------

CMDS = autostart.Commands(
    tray=["/opt/Hub Sync/bin/hubsync-tray"], agent=["/usr/bin/hubsync", "agent", "--quiet"]
)


def test_autostart_contents_for_each_platform(tmp_path: Path) -> None:
    home = tmp_path / "home"
    linux = autostart.plan("linux", home=home, env={"DISPLAY": ":0"}, commands=CMDS, log_dir=home)
    assert [f.kind for f in linux] == ["xdg"]
    entry = linux[0]
    assert entry.path == home / ".config" / "autostart" / "hubsync.desktop"
    assert 'Exec="/opt/Hub Sync/bin/hubsync-tray"\n' in entry.content
    assert entry.content.startswith("[Desktop Entry]\nType=Application\n")

    headless = autostart.plan(
        "linux",
        home=home,
        env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")},
        commands=CMDS,
        log_dir=home,
    )
    unit = headless[1]
    assert unit.path == tmp_path / "xdg" / "systemd" / "user" / "hubsync-agent.service"
    assert unit.link == unit.path.parent / "default.target.wants" / "hubsync-agent.service"
    assert "ExecStart=/usr/bin/hubsync agent --quiet\n" in unit.content
    assert "WantedBy=default.target" in unit.content and "Restart=on-failure" in unit.content

    mac = autostart.plan("darwin", home=home, env={}, commands=CMDS, log_dir=home / "logs")
    assert mac[0].path == home / "Library" / "LaunchAgents" / "io.hubsync.agent.plist"
    plist = plistlib.loads(mac[0].content.encode())
    assert plist["Label"] == "io.hubsync.agent"
    assert plist["ProgramArguments"] == ["/opt/Hub Sync/bin/hubsync-tray"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == str(home / "logs" / "launchd.err.log")

    win_cmds = autostart.Commands(tray=[r"C:\Program Files\HubSync\hubsync-tray.exe"], agent=[])
    win = autostart.plan(
        "win32",
        home=home,
        env={"APPDATA": r"C:\Users\me\AppData\Roaming"},
        commands=win_cmds,
        log_dir=home,
    )
    assert win[0].path.name == "hubsync.cmd"
    assert (
        win[0].path.parent
        == Path(r"C:\Users\me\AppData\Roaming")
        / "Microsoft"
        / "Windows"
        / "Start Menu"
        / "Programs"
        / "Startup"
    )
    assert win[0].content.split("\r\n") == [
        "@echo off",
        "rem Started at login by HubSync (hubsync autostart)",
        r'start "" "C:\Program Files\HubSync\hubsync-tray.exe"',
        "",
    ]
    with pytest.raises(ValueError, match="not supported"):
        autostart.plan("sunos5", home=home, env={}, commands=CMDS, log_dir=home)


def test_exec_quoting_follows_the_specs() -> None:
    assert autostart.desktop_entry(["/x/y", "100%", 'a"b$c']).splitlines()[4] == (
        'Exec=/x/y 100%% "a\\"b\\$c"'
    )
    assert 'ExecStart=/x/y "100%%" "a\\"b$$c"\n' in autostart.systemd_unit(
        ["/x/y", "100%", 'a"b$c']
    )


def test_autostart_on_off_on_linux_in_a_temp_home(tmp_path: Path) -> None:
    host = autostart.Host(
        "linux", tmp_path / "home", {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DISPLAY": ":1"}
    )
    assert autostart.status(host) == {"xdg": None, "systemd": None}
    written = autostart.enable(host, log_dir=tmp_path, commands=CMDS)
    desktop = tmp_path / "xdg" / "autostart" / "hubsync.desktop"
    assert written == [desktop]
    assert "hubsync-tray" in desktop.read_text()
    assert autostart.status(host) == {"xdg": str(desktop), "systemd": None}
    written = autostart.enable(host, log_dir=tmp_path, commands=CMDS, headless=True)  # idempotent
    unit = tmp_path / "xdg" / "systemd" / "user" / "hubsync-agent.service"
    wants = unit.parent / "default.target.wants" / "hubsync-agent.service"
    assert written == [desktop, unit, wants]
    assert wants.is_symlink() and wants.resolve() == unit
    assert autostart.status(host)["systemd"] == str(unit)
    assert sorted(autostart.disable(host)) == sorted([desktop, unit, wants])
    assert not desktop.exists() and not unit.exists() and not wants.is_symlink()
    assert autostart.disable(host) == []
    assert not (tmp_path / "home").exists()  # XDG_CONFIG_HOME was respected


# -- diagnostics ------------------------------------------------------------------------


def test_doctor_bundle_has_facts_and_no_secrets(
    paths: Paths, root_logging: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSYNC_SERVICE_KEY", "very-secret-env-value")
    monkeypatch.setenv("HUBSYNC_PROFILE", "work")
    paths.config_file.write_text('[supabase]\nurl = "https://abc.supabase.co"\n')
    setup_logging(paths)
    logging.getLogger("hubsync.test").info("token refresh ok: refresh_token=%s %s", REFRESH, JWT)
    # a log line written by something else, before redaction existed
    with open(paths.log_file, "a") as f:
        f.write(f"legacy Authorization: Bearer {JWT}\n")
    conn = sqlite3.connect(paths.journal)
    conn.execute("CREATE TABLE files (path TEXT)")
    conn.executemany("INSERT INTO files VALUES (?)", [("a",), ("b",)])
    conn.commit()
    conn.close()
    out = doctor_bundle(paths, paths.data_dir)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        blob = "\n".join(zf.read(n).decode() for n in names)
        journal = zf.read("journal.txt").decode()
        versions = json.loads(zf.read("versions.json"))
        platform_info = json.loads(zf.read("platform.json"))
    assert names == {"config.toml", "log-tail.txt", "journal.txt", "versions.json", "platform.json"}
    for secret in (JWT, REFRESH, "very-secret-env-value"):
        assert secret not in blob
    assert "integrity_check: ok" in journal and "table files: 2 rows" in journal
    assert "https://abc.supabase.co" in blob
    assert versions["python"] == sys.version.split()[0] and versions["typer"]
    assert platform_info["env"].get("HUBSYNC_PROFILE") == "work"
    assert "token refresh ok" in blob


def test_doctor_bundle_without_a_journal(paths: Paths, tmp_path: Path) -> None:
    out = doctor_bundle(paths, tmp_path / "out" / "diag.zip")
    with zipfile.ZipFile(out) as zf:
        assert zf.read("journal.txt").decode().startswith("no journal at")


# -- CLI ----------------------------------------------------------------------------------


def test_cli_logs_and_autostart(tmp_path: Path, root_logging: object) -> None:
    app = typer.Typer()

    @app.command()
    def version() -> None:  # a second command, so that Typer keeps subcommands
        pass

    register(app)
    env = {
        "HUBSYNC_HOME": str(tmp_path / "hs"),
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "DISPLAY": "",
        "WAYLAND_DISPLAY": "",
    }
    runner = CliRunner()
    result = runner.invoke(app, ["logs"], env=env)
    assert result.exit_code == 1 and "no log yet" in result.output
    paths = resolve_paths({"HUBSYNC_HOME": env["HUBSYNC_HOME"]}).ensure()
    paths.log_file.write_text("".join(f"entry {i}\n" for i in range(10)))
    result = runner.invoke(app, ["logs", "-n", "3"], env=env)
    assert result.exit_code == 0 and result.output.splitlines() == ["entry 7", "entry 8", "entry 9"]

    result = runner.invoke(app, ["autostart", "on"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "xdg" / "autostart" / "hubsync.desktop").exists()
    assert (tmp_path / "xdg" / "systemd" / "user" / "hubsync-agent.service").exists()  # headless
    result = runner.invoke(app, ["autostart", "status", "--json"], env=env)
    assert json.loads(result.output)["systemd"].endswith("hubsync-agent.service")
    result = runner.invoke(app, ["autostart", "off"], env=env)
    assert result.exit_code == 0 and result.output.count("removed") == 3
    result = runner.invoke(app, ["autostart", "status"], env=env)
    assert result.output.splitlines() == ["xdg: off", "systemd: off"]
