"""The control API over a real Unix socket: framing, security, fan-out, flow control, leaks."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.control import protocol
from agent.control.client import (
    CONNECTION_EVENT,
    AgentLink,
    AgentUnavailable,
    ControlClient,
    call_sync,
)
from agent.control.peercred import is_same_user, peer_uid
from agent.control.protocol import ControlError, Event
from agent.control.server import ControlServer
from sync.errors import AuthError
from tests.fixtures.agent_infra_helpers import open_fds, wait_until

pytest_plugins = ["tests.fixtures.agent_infra"]


@pytest.fixture(autouse=True)
def _no_loop_errors(request: pytest.FixtureRequest) -> None:
    """Every async test here also fails on errors the event loop only logs."""
    if asyncio.iscoroutinefunction(request.function):
        request.getfixturevalue("loop_errors")


async def raw_connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    reader, writer = await asyncio.open_unix_connection(path, limit=4 * protocol.MAX_FRAME_BYTES)
    hello = json.loads(await reader.readline())
    return reader, writer, hello


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line, "connection closed"
    frame: dict[str, Any] = json.loads(line)
    return frame


async def test_socket_is_private_and_greets_with_version(
    control_server: ControlServer,
) -> None:
    path = control_server.socket_path
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with await ControlClient.connect(path) as client:
        assert client.hello["protocol"] == protocol.PROTOCOL_VERSION
        assert client.hello["agent"] == "test"
        assert "echo" in client.hello["methods"] and "subscribe" in client.hello["methods"]
        assert await client.call("echo", {"x": [1, "ü"]}) == {"x": [1, "ü"]}
    await control_server.close()
    assert not path.exists()


async def test_runtime_dir_is_tightened_and_stale_socket_replaced(short_tmp: Path) -> None:
    run = short_tmp / "run"
    run.mkdir(mode=0o755)
    run.chmod(0o755)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(run / "agent.sock"))
    stale.close()  # a socket file nobody listens on, as after a crash
    async with ControlServer(run / "agent.sock") as server:
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        with pytest.raises(FileExistsError, match="another process is serving"):
            await ControlServer(run / "agent.sock").start()
        async with await ControlClient.connect(server.socket_path) as client:
            assert client.hello["protocol"] == 1


async def test_errors_are_typed_and_do_not_leak_details(control_server: ControlServer) -> None:
    async def refuse(params: dict[str, Any]) -> None:
        raise ControlError("not_found", f"no root {params.get('root')!r}")

    async def expired(params: dict[str, Any]) -> None:
        raise AuthError("session expired; sign in again")

    async def crash(params: dict[str, Any]) -> None:
        raise RuntimeError("password=hunter2 in a bug")

    async def unencodable(params: dict[str, Any]) -> object:
        return {"s": {1, 2}}

    for name, fn in [
        ("refuse", refuse),
        ("expired", expired),
        ("crash", crash),
        ("bad", unencodable),
    ]:
        control_server.register(name, fn)
    with pytest.raises(ValueError, match="already registered"):
        control_server.register("echo", refuse)
    async with await ControlClient.connect(control_server.socket_path) as client:
        with pytest.raises(ControlError) as err:
            await client.call("refuse", {"root": "/x"})
        assert (err.value.code, err.value.message) == ("not_found", "no root '/x'")
        with pytest.raises(ControlError) as err:
            await client.call("expired")
        assert err.value.code == "auth"
        with pytest.raises(ControlError) as err:
            await client.call("crash")
        assert err.value.code == protocol.INTERNAL and "hunter2" not in err.value.message
        with pytest.raises(ControlError) as err:
            await client.call("bad")
        assert err.value.code == protocol.INTERNAL
        with pytest.raises(ControlError) as err:
            await client.call("nope")
        assert err.value.code == protocol.UNKNOWN_METHOD
        assert await client.call("echo", {"still": "alive"}) == {"still": "alive"}


async def test_ten_subscribers_get_the_same_events_in_order(
    control_server: ControlServer,
) -> None:
    clients = [await ControlClient.connect(control_server.socket_path) for _ in range(10)]
    streams = [await c.subscribe(["progress", "status"]) for c in clients]
    try:
        published = []
        for i in range(200):
            name = "progress" if i % 3 else "status"
            published.append((name, {"i": i}, control_server.publish(name, {"i": i})))
            control_server.publish("activity", {"ignored": i})  # not subscribed
            if i % 50 == 0:
                await asyncio.sleep(0)

        async def collect(stream: AsyncIterator[Event]) -> list[tuple[str, Any, int]]:
            got: list[tuple[str, Any, int]] = []
            while len(got) < len(published):
                ev = await anext(stream)
                got.append((ev.event, ev.data, ev.seq))
            return got

        results = await asyncio.wait_for(asyncio.gather(*(collect(s) for s in streams)), 10)
        assert all(r == published for r in results)
        seqs = [seq for _, _, seq in published]
        assert seqs == sorted(seqs)
    finally:
        for c in clients:
            await c.close()
    await wait_until(lambda: control_server.client_count == 0)


async def test_unencodable_event_is_dropped_not_fatal(
    control_server: ControlServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with await ControlClient.connect(control_server.socket_path) as client:
        events = await client.subscribe()
        control_server.publish("status", {"bad": {1, 2}})
        control_server.publish("status", {"huge": "x" * protocol.MAX_FRAME_BYTES})
        seq = control_server.publish("status", {"fine": True})
        ev = await asyncio.wait_for(anext(events), 5)
        assert (ev.data, ev.seq) == ({"fine": True}, seq)
    assert caplog.text.count("could not be encoded") == 2


async def test_client_that_stops_consuming_events_disconnects_itself(
    control_server: ControlServer,
) -> None:
    client = await ControlClient.connect(control_server.socket_path, event_buffer=5)
    events = await client.subscribe()
    for i in range(10):
        control_server.publish("progress", {"i": i})
    await wait_until(lambda: client.closed)
    await wait_until(lambda: control_server.client_count == 0)
    assert [ev.data["i"] async for ev in events] == [0, 1, 2, 3, 4]
    await client.close()


async def test_connect_disconnect_cycles_leak_nothing(control_server: ControlServer) -> None:
    started = asyncio.Event()
    cancelled = 0

    async def slow(params: dict[str, Any]) -> None:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    control_server.register("slow", slow)
    path = control_server.socket_path
    # Warm up lazily created machinery (the loop's self-pipe, executor...) before the baseline.
    async with await ControlClient.connect(path) as c:
        await c.call("echo")
    await wait_until(lambda: control_server.client_count == 0)
    gc.collect()  # earlier tests' garbage must not close its fds in the middle of the count
    fds_before = open_fds()
    tasks_before = len(asyncio.all_tasks())

    for i in range(100):
        kind = i % 4
        if kind == 0:  # clean: call, then close
            async with await ControlClient.connect(path) as client:
                assert await client.call("echo", {"i": i}) == {"i": i}
        elif kind == 1:  # abrupt close in the middle of a frame
            _, writer, _ = await raw_connect(path)
            writer.write(b'{"id": 1, "method": "ec')
            await writer.drain()
            writer.transport.abort()
        elif kind == 2:  # close while a call is pending in the agent
            started.clear()
            client = await ControlClient.connect(path)
            pending = asyncio.create_task(client.call("slow", timeout=30))
            await asyncio.wait_for(started.wait(), 5)
            await client.close()
            with pytest.raises(AgentUnavailable):
                await pending
        else:  # subscriber that just goes away
            client = await ControlClient.connect(path)
            events = await client.subscribe()
            control_server.publish("status", {"i": i})
            assert (await anext(events)).data == {"i": i}
            await client.close()

    await wait_until(lambda: control_server.client_count == 0)
    await wait_until(lambda: cancelled == 25)
    await wait_until(lambda: len(asyncio.all_tasks()) == tasks_before)
    gc.collect()
    assert open_fds() == fds_before
    async with await ControlClient.connect(path) as client:  # still serving
        assert await client.call("echo", {"ok": True}) == {"ok": True}


async def test_pending_call_times_out_and_connection_stays_usable(
    control_server: ControlServer,
) -> None:
    gate = asyncio.Event()

    async def wait_gate(params: dict[str, Any]) -> str:
        await gate.wait()
        return "late"

    control_server.register("gate", wait_gate)
    async with await ControlClient.connect(control_server.socket_path) as client:
        with pytest.raises(ControlError) as err:
            await client.call("gate", timeout=0.1)
        assert err.value.code == protocol.TIMEOUT
        gate.set()
        assert await client.call("echo", {"a": 1}) == {"a": 1}


async def test_malformed_frames_get_errors_and_the_connection_survives(
    control_server: ControlServer,
) -> None:
    reader, writer, _ = await raw_connect(control_server.socket_path)
    try:
        for bad in [
            b"not json\n",
            b"[1,2]\n",
            b'{"id": 1.5, "method": "echo"}\n',
            b'{"id": 2, "method": "echo", "params": [1]}\n',
            b"\xff\xfe\n",
            b'{"id": 3, "ok": true, "result": 1}\n',
        ]:
            writer.write(bad)
            frame = await read_frame(reader)
            assert frame["ok"] is False and frame["error"]["code"] == protocol.BAD_FRAME, bad
        writer.write(b'{"id": "x", "method": "echo", "params": {"k": 1}}\n')
        assert await read_frame(reader) == {"id": "x", "ok": True, "result": {"k": 1}}
    finally:
        writer.close()
        await writer.wait_closed()


async def test_oversized_frame_is_refused_and_the_connection_recovers(
    control_server: ControlServer,
) -> None:
    reader, writer, _ = await raw_connect(control_server.socket_path)
    try:
        huge = b'{"id": 1, "method": "echo", "params": {"x": "' + b"a" * (3 * 1024 * 1024) + b'"}}'
        writer.write(huge + b"\n" + b'{"id": 2, "method": "echo", "params": {"y": 2}}\n')
        await writer.drain()
        frame = await read_frame(reader)
        assert frame["ok"] is False and frame["error"]["code"] == protocol.FRAME_TOO_LARGE
        assert await read_frame(reader) == {"id": 2, "ok": True, "result": {"y": 2}}
    finally:
        writer.close()
        await writer.wait_closed()
    await wait_until(lambda: control_server.client_count == 0)
    async with await ControlClient.connect(control_server.socket_path) as client:
        big = "b" * (protocol.MAX_FRAME_BYTES // 2)
        assert await client.call("echo", {"x": big}) == {"x": big}


async def test_slow_subscriber_is_dropped_with_lagged_and_others_keep_up(
    short_tmp: Path, loop_errors: list[dict[str, Any]]
) -> None:
    server = ControlServer(short_tmp / "agent.sock", queue_limit=20, lagged_grace=0.5)
    async with server:
        fast = await ControlClient.connect(server.socket_path)
        stream = await fast.subscribe(["progress"])
        # Two slow ones subscribe, then read nothing (plain sockets: no reader buffering).
        # One reads its backlog later; the other never does.
        slow, stuck = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
        for s in (slow, stuck):
            s.connect(str(server.socket_path))
            s.sendall(b'{"id": 1, "method": "subscribe", "params": {"topics": []}}\n')
        await wait_until(lambda: sum(c.topics is not None for c in server._clients) == 3)
        payload = "p" * 4096
        total = 400
        received: list[int] = []
        for i in range(total):
            server.publish("progress", {"i": i, "pad": payload})  # never blocks
            await asyncio.sleep(0)
            while len(received) < i + 1:
                received.append((await asyncio.wait_for(anext(stream), 5)).data["i"])
        assert received == list(range(total))
        # What the slow client finally reads: the subscribe answer, some events, then lagged, EOF.
        slow.settimeout(5)

        def read_all() -> bytes:  # in a thread: the agent's loop must keep flushing meanwhile
            data = b""
            while chunk := slow.recv(1 << 16):
                data += chunk
            return data

        data = await asyncio.to_thread(read_all)
        slow.close()
        frames = [json.loads(line) for line in data.splitlines()][1:]  # after hello
        assert frames[0] == {"id": 1, "ok": True, "result": {"topics": [], "seq": 0}}
        assert frames[-1]["event"] == protocol.LAGGED_EVENT
        got = [f["data"]["i"] for f in frames[1:-1]]
        assert got == list(range(len(got))) and len(got) < total
        # the one that never reads is cut off after the grace period
        await wait_until(lambda: server.client_count == 1)  # both slow ones gone, fast one kept
        stuck.close()
        server.publish("progress", {"i": total})
        assert (await anext(stream)).data["i"] == total
        await asyncio.sleep(0.7)  # past the grace period of the one that did read
        await fast.close()


async def test_queued_bytes_are_bounded_too(short_tmp: Path) -> None:
    async with ControlServer(short_tmp / "agent.sock", queue_bytes=256 * 1024) as server:
        stuck = socket.socket(socket.AF_UNIX)
        stuck.connect(str(server.socket_path))
        stuck.sendall(b'{"id": 1, "method": "subscribe", "params": {}}\n')
        await wait_until(lambda: any(c.topics is not None for c in server._clients))
        big = "b" * 100_000
        for _ in range(100):  # 10 MB, far below 1000 frames but far above 256 KiB + buffers
            server.publish("status", {"big": big})
            await asyncio.sleep(0)
        (client,) = server._clients
        assert client.lagged and client.pending_bytes <= 256 * 1024
        stuck.close()
        await wait_until(lambda: server.client_count == 0)


async def test_connection_from_another_uid_is_refused(short_tmp: Path) -> None:
    """The peer-credential check itself, via the server: it only admits ``allowed_uid``."""
    async with ControlServer(short_tmp / "agent.sock", allowed_uid=os.getuid() + 1) as server:
        with pytest.raises(ControlError) as err:
            await ControlClient.connect(server.socket_path)
        assert err.value.code == protocol.FORBIDDEN
        await wait_until(lambda: not server._conn_tasks)
        assert server.client_count == 0


def test_peer_uid_of_a_socketpair_is_our_uid() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        assert peer_uid(a) == os.getuid()
        assert is_same_user(a, os.getuid())
        assert not is_same_user(a, os.getuid() + 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a peer as another uid")
async def test_real_other_user_is_refused_by_the_agent(control_server: ControlServer) -> None:
    """A child process running as ``nobody`` connects; the kernel's credentials refuse it."""
    path = control_server.socket_path
    # Open the door for this test only, so that the uid check is what stops the peer.
    path.parent.chmod(0o711)
    path.parent.parent.chmod(0o711)
    path.chmod(0o666)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no asyncio, just syscalls, then _exit
        code = 1
        try:
            os.close(rfd)
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(str(path))
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            os.write(wfd, data)
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    loop = asyncio.get_running_loop()
    _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    assert os.waitstatus_to_exitcode(status) == 0
    frames = [json.loads(line) for line in data.splitlines()]
    assert len(frames) == 1  # no hello, no methods: just the refusal
    assert frames[0]["ok"] is False and frames[0]["error"]["code"] == protocol.FORBIDDEN
    assert control_server.client_count == 0
    async with await ControlClient.connect(path) as client:  # the owner still gets in
        assert await client.call("echo", {"me": 1}) == {"me": 1}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a server as another uid")
async def test_client_refuses_a_socket_served_by_another_user(short_tmp: Path) -> None:
    """An impostor (here: ``nobody``) serving the socket never receives a request."""
    short_tmp.chmod(0o777)
    path = short_tmp / "agent.sock"
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a fake agent as nobody
        code = 1
        try:
            os.close(rfd)
            os.setgid(65534)
            os.setuid(65534)
            srv = socket.socket(socket.AF_UNIX)
            srv.bind(str(path))
            path.chmod(0o666)
            srv.listen(1)
            os.write(wfd, b"r")
            srv.settimeout(5)
            conn, _ = srv.accept()
            conn.settimeout(5)
            try:
                conn.sendall(b'{"event":"hello","data":{"protocol":1,"methods":[]},"seq":0}\n')
                got = conn.recv(1024)  # b"" when the client hangs up without a request
            except OSError:  # the client may hang up before the greeting is sent
                got = b""
            os.write(wfd, b"got:" + got)
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, os.read, rfd, 1) == b"r"
    with pytest.raises(ControlError) as err:
        await ControlClient.connect(path)
    assert err.value.code == protocol.FORBIDDEN
    _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
    with os.fdopen(rfd, "rb") as f:
        assert f.read() == b"got:"  # the impostor got nothing
    assert os.waitstatus_to_exitcode(status) == 0


async def test_close_disconnects_clients_and_flushes_queued_events(
    short_tmp: Path, loop_errors: list[dict[str, Any]]
) -> None:
    gc.collect()
    fds_before = open_fds()
    server = ControlServer(short_tmp / "agent.sock")
    started = asyncio.Event()

    async def slow_to_cancel(params: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.2)  # cleanup that outlasts the client

    server.register("slow", slow_to_cancel)
    await server.start()
    client = await ControlClient.connect(server.socket_path)
    stream = await client.subscribe()
    leaving = await ControlClient.connect(server.socket_path)
    await wait_until(lambda: server.client_count == 2)
    server_side = [c.writer.get_extra_info("socket") for c in server._clients]
    pending = asyncio.create_task(leaving.call("slow"))
    await started.wait()
    for i in range(5):
        server.publish("status", {"i": i})
    await leaving.close()  # the agent is still tearing this one down when it shuts down
    await wait_until(lambda: server.client_count == 1)
    await server.close()
    assert [s.fileno() for s in server_side] == [-1, -1]  # closed before close() returned
    assert server.client_count == 0 and not server.socket_path.exists()
    with pytest.raises(AgentUnavailable):
        await pending
    got = [ev.data["i"] async for ev in stream]
    assert got == [0, 1, 2, 3, 4]
    assert client.closed
    with pytest.raises(AgentUnavailable):
        await client.call("echo")
    await client.close()
    gc.collect()
    assert open_fds() == fds_before


async def test_agent_link_reconnects_after_agent_restart(short_tmp: Path) -> None:
    path = short_tmp / "agent.sock"
    link = AgentLink(path, topics=["status"], initial_backoff=0.02, max_backoff=0.1)
    events = link.events()
    seen: list[tuple[str, Any]] = []

    async def next_event() -> Event:
        ev = await asyncio.wait_for(anext(events), 5)
        seen.append(
            (ev.event, ev.data.get("connected") if ev.event == CONNECTION_EVENT else ev.data)
        )
        return ev

    pending = asyncio.create_task(next_event())  # no agent yet: it keeps retrying
    await asyncio.sleep(0.15)
    assert not pending.done()
    with pytest.raises(AgentUnavailable):
        await link.call("echo")
    server = ControlServer(path)
    server.register("echo", _echo)
    await server.start()
    assert (await pending).event == CONNECTION_EVENT
    assert await link.call("echo", {"a": 1}) == {"a": 1}
    server.publish("status", {"n": 1})
    await next_event()
    await server.close()
    await next_event()  # disconnected
    server = ControlServer(path)
    server.register("echo", _echo)
    await server.start()
    await next_event()  # connected again
    server.publish("status", {"n": 2})
    await next_event()
    assert seen == [
        (CONNECTION_EVENT, True),
        ("status", {"n": 1}),
        (CONNECTION_EVENT, False),
        (CONNECTION_EVENT, True),
        ("status", {"n": 2}),
    ]
    await events.aclose()
    assert not link.connected
    await wait_until(lambda: server.client_count == 0)
    await server.close()


async def _echo(params: dict[str, Any]) -> dict[str, Any]:
    return params


def test_call_sync_from_plain_code(short_tmp: Path) -> None:
    path = short_tmp / "agent.sock"
    with pytest.raises(AgentUnavailable, match="no agent is running"):
        call_sync("echo", socket_path=path, timeout=1)
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        async with ControlServer(path) as server:
            server.register("echo", _echo)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(5)
        t0 = time.monotonic()
        assert call_sync("echo", {"cli": True}, socket_path=path) == {"cli": True}
        assert time.monotonic() - t0 < 2
        with pytest.raises(ControlError):
            call_sync("missing", socket_path=path)
    finally:
        assert stop is not None
        loop_box[0].call_soon_threadsafe(stop.set)
        thread.join(5)


async def test_deeply_nested_and_huge_number_frames_answer_bad_frame(
    control_server: ControlServer,
) -> None:
    reader, writer, _ = await raw_connect(control_server.socket_path)
    try:
        for bad in [b"[" * 200_000 + b"\n", b'{"id": ' + b"9" * 5000 + b', "method": "echo"}\n']:
            writer.write(bad)
            frame = await read_frame(reader)
            assert frame["ok"] is False and frame["error"]["code"] == protocol.BAD_FRAME
        writer.write(b'{"id": "x", "method": "echo", "params": {"k": 1}}\n')
        assert await read_frame(reader) == {"id": "x", "ok": True, "result": {"k": 1}}
    finally:
        writer.close()
        await writer.wait_closed()
