"""The EXAI WebSocket client against the protocol test server (real sockets, no mocks)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from dataclasses import replace
from typing import Any

import pytest
from keyring.backend import KeyringBackend
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from agent.config import ConfigError, ExaiConfig
from agent.exai.client import ExaiClient
from agent.exai.connection import closed_error
from agent.exai.errors import (
    ExaiAuthError,
    ExaiOverCapacity,
    ExaiProtocolError,
    ExaiTimeout,
    ExaiToolError,
    ExaiUnavailable,
)
from agent.exai.health import check_health
from agent.exai.settings import ExaiSettings, read_token
from agent.exai.tools import parse_outputs
from tests.exai_server import ExaiTestServer

pytest_plugins = ["tests.fixtures.exai"]

ARGS = {"file_id": "user-files/local/ab/abc/notes.txt", "question": "Summarise"}


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- happy path -----------------------------------------------------------------------------


async def test_list_tools_gives_names_and_schemas(exai_client: ExaiClient) -> None:
    tools = {t.name: t for t in await exai_client.list_tools()}
    assert {"smart_file_query", "analyze_file", "slow_query"} <= set(tools)
    assert tools["smart_file_query"].required == ["file_path", "question"]
    assert "file_id" in tools["analyze_file"].properties


async def test_call_relays_progress_and_stream_then_returns_answer(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    exai_server.tool_delay = 0.1
    progress: list[str] = []
    chunks: list[str] = []
    result = await exai_client.call_tool(
        "analyze_file", ARGS, on_progress=progress.append, on_chunk=chunks.append
    )
    assert progress[0] == "started" and len(progress) >= 2  # then every 20 ms for 100 ms
    assert "".join(chunks) == result.content
    assert result.content.startswith("# Streamed answer")
    assert "Summarise" in result.content
    assert result.content_type == "markdown" and not result.structured
    assert result.metadata["model"] == "test-model"


async def test_structured_and_plain_answers(exai_client: ExaiClient) -> None:
    structured = await exai_client.call_tool("extract_json", {"file_id": "f", "prompt": "p"})
    assert structured.structured and structured.extension == "json"
    assert json.loads(structured.content)["entities"] == ["alpha", "beta"]
    plain = await exai_client.call_tool("plain_answer", {"file_id": "f", "question": "q"})
    assert plain.content == "Plain answer about f" and plain.extension == "md"


async def test_connection_is_reused_between_calls(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    for _ in range(3):
        await exai_client.call_tool("plain_answer", {"file_id": "f", "question": "q"})
    assert exai_server.total_connections == 1
    assert exai_client.open_connections == 1


# -- errors ---------------------------------------------------------------------------------


async def test_wrong_token_is_a_clear_auth_error_and_not_retried(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    secret = "wrong-secret-token-xyz"
    settings = replace(exai_settings, token=secret)
    async with ExaiClient(settings) as client:
        with pytest.raises(ExaiAuthError) as info:
            await client.call_tool("plain_answer", {"file_id": "f", "question": "q"})
    assert "EXAI rejected the token" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(settings)
    assert exai_server.rejected_hellos == 1  # an auth failure is never retried
    assert await exai_server.wait_idle() == 0


async def test_the_token_never_reaches_the_logs(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    exai_server.token = "s3cr3t-tk"  # short enough to survive websockets' frame-dump trimming
    async with ExaiClient(replace(exai_settings, token="s3cr3t-tk")) as client:
        await client.call_tool("plain_answer", ARGS)
    async with ExaiClient(replace(exai_settings, token="wr0ng-tk")) as client:
        with pytest.raises(ExaiAuthError):
            await client.list_tools()
    assert "s3cr3t-tk" not in caplog.text and "wr0ng-tk" not in caplog.text


async def test_server_down_is_unavailable_after_bounded_retries(
    exai_settings: ExaiSettings,
) -> None:
    settings = replace(exai_settings, port=_free_port())
    started = time.monotonic()
    async with ExaiClient(settings) as client:
        with pytest.raises(ExaiUnavailable) as info:
            await client.list_tools()
        assert client.open_connections == 0
    assert "cannot reach EXAI" in str(info.value)
    assert "after 3 attempts" in str(info.value)
    assert time.monotonic() - started < 2


async def test_server_closing_mid_call(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    progress: list[str] = []
    with pytest.raises(ExaiUnavailable) as info:
        await exai_client.call_tool("closing_query", ARGS, on_progress=progress.append)
    assert "closed the connection during closing_query" in str(info.value)
    assert "1011" in str(info.value)
    assert progress == ["started"]
    assert exai_client.open_connections == 0
    # the client recovers with a fresh connection
    await exai_client.call_tool("plain_answer", ARGS)
    assert exai_server.total_connections == 2


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ("failing_query", "EXAI tool failing_query reported an error: model refused"),
        ("broken_query", "EXAI tool broken_query failed: provider exploded (INTERNAL_ERROR)"),
        ("bare_error_query", "EXAI tool bare_error_query failed: bare failure (INTERNAL_ERROR)"),
        ("op_error_query", "EXAI tool op_error_query failed: op error failure (INTERNAL_ERROR)"),
    ],
)
async def test_every_error_shape_is_a_tool_error_and_keeps_the_connection(
    exai_server: ExaiTestServer, exai_client: ExaiClient, tool: str, message: str
) -> None:
    with pytest.raises(ExaiToolError) as info:
        await exai_client.call_tool(tool, ARGS)
    assert str(info.value).startswith(message)
    assert exai_client.open_connections == 1  # the server answered: the connection is clean
    await exai_client.call_tool("plain_answer", ARGS)
    assert exai_server.total_connections == 1


async def test_unknown_tool_and_bad_arguments(exai_client: ExaiClient) -> None:
    with pytest.raises(ExaiToolError) as info:
        await exai_client.call_tool("no_such_tool", {})
    assert info.value.code == "TOOL_NOT_FOUND"
    with pytest.raises(ExaiToolError) as info:
        await exai_client.call_tool("analyze_file", {"file_id": "f"})
    assert info.value.code == "VALIDATION_ERROR"
    assert "question" in str(info.value)


async def test_tool_outliving_the_client_timeout(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    started = time.monotonic()
    with pytest.raises(ExaiTimeout) as info:
        await exai_client.call_tool("slow_query", {**ARGS, "seconds": 30}, time_limit=0.3)
    assert time.monotonic() - started < 2
    assert str(info.value) == "EXAI did not answer slow_query within 0.3 s"
    assert exai_client.open_connections == 0  # a late answer must not reach the next call
    assert await exai_server.wait_idle() == 0


async def test_time_queued_for_a_connection_does_not_count(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    exai_server.tool_delay = 0.2
    async with ExaiClient(replace(exai_settings, max_connections=1)) as client:
        calls = [
            client.call_tool("plain_answer", {"file_id": f"f{i}", "question": "q"}, time_limit=0.5)
            for i in range(4)
        ]
        answers = await asyncio.gather(*calls)  # the last one waited 0.6 s for the connection
    assert [a.content for a in answers] == [f"Plain answer about f{i}" for i in range(4)]
    assert exai_server.peak_connections == 1


async def test_server_side_timeout(exai_server: ExaiTestServer, exai_client: ExaiClient) -> None:
    exai_server.call_timeout = 0.2
    with pytest.raises(ExaiTimeout) as info:
        await exai_client.call_tool("slow_query", {**ARGS, "seconds": 5})
    assert info.value.code == "TIMEOUT"
    assert "timed out on the server" in str(info.value)


async def test_over_capacity_is_retried_after_the_servers_delay(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    exai_server.tool_delay = 0.15
    client = ExaiClient(replace(exai_settings, over_capacity_attempts=100))
    running = asyncio.Event()
    first = asyncio.create_task(
        client.call_tool("analyze_file", ARGS, on_progress=lambda _m: running.set())
    )
    await asyncio.wait_for(running.wait(), 2)
    second = await client.call_tool("analyze_file", ARGS)
    await client.aclose()
    assert (await first).content == second.content
    assert len(exai_server.calls) == 2  # the duplicate was refused, then served


async def test_over_capacity_gives_up_after_bounded_attempts(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    settings = replace(exai_settings, over_capacity_attempts=2)
    async with ExaiClient(settings) as client:
        running = asyncio.Event()
        slow = asyncio.create_task(
            client.call_tool(
                "slow_query", {**ARGS, "seconds": 30}, on_progress=lambda _m: running.set()
            )
        )
        await asyncio.wait_for(running.wait(), 2)
        with pytest.raises(ExaiOverCapacity) as info:
            await client.call_tool("slow_query", {**ARGS, "seconds": 30})
        assert "gave up after 2 attempts" in str(info.value)
        assert info.value.retry_after == pytest.approx(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
    assert await exai_server.wait_idle() == 0


async def test_too_many_connections_1008_is_reported(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    exai_server.max_connections_per_ip = 1
    running = asyncio.Event()
    busy = asyncio.create_task(
        exai_client.call_tool(
            "slow_query", {**ARGS, "seconds": 30}, on_progress=lambda _m: running.set()
        )
    )
    await asyncio.wait_for(running.wait(), 2)
    with pytest.raises(ExaiUnavailable) as info:
        await exai_client.call_tool("plain_answer", ARGS)
    assert "too many connections (1008" in str(info.value)
    busy.cancel()
    await asyncio.gather(busy, return_exceptions=True)


def test_close_codes_have_clear_messages() -> None:
    def err(code: int) -> Exception:
        return closed_error(ConnectionClosed(Close(code, "x"), None), "during hello")

    assert isinstance(err(4003), ExaiAuthError)
    assert "no hello in time (4002)" in str(err(4002))
    assert isinstance(err(4000), ExaiProtocolError) and "4000" in str(err(4000))
    assert "does not speak this protocol (4001" in str(err(4001))
    assert isinstance(err(1008), ExaiUnavailable)
    assert isinstance(err(1006), ExaiUnavailable)


# -- cancellation, pool, cleanup ------------------------------------------------------------


async def test_cancel_closes_the_connection_and_leaves_nothing(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    started = asyncio.Event()
    call = asyncio.create_task(
        exai_client.call_tool(
            "slow_query", {**ARGS, "seconds": 30}, on_progress=lambda _m: started.set()
        )
    )
    await asyncio.wait_for(started.wait(), 2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert exai_client.open_connections == 0
    assert await exai_server.wait_idle() == 0  # the server saw the close
    assert _others() == set()
    # the server was told first, for that very call
    assert exai_server.cancels == [
        rid for rid, name in exai_server.requests if name == "slow_query"
    ]


async def test_a_call_out_of_time_is_cancelled_on_the_server_too(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    with pytest.raises(ExaiTimeout):
        await exai_client.call_tool("slow_query", {**ARGS, "seconds": 30}, time_limit=0.2)
    assert exai_server.cancels == [exai_server.requests[-1][0]]
    assert await exai_server.wait_idle() == 0


async def test_hello_carries_the_jwt_a_server_requires(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    exai_server.jwt = "header.payload.signature"
    async with ExaiClient(exai_settings) as client:
        with pytest.raises(ExaiAuthError) as missing:
            await client.list_tools()
    assert str(missing.value).startswith("this EXAI server needs a JWT: none is set;")
    wrong = replace(exai_settings, jwt="header.other.signature")
    async with ExaiClient(wrong) as client:
        with pytest.raises(ExaiAuthError) as refused:
            await client.list_tools()
    assert "needs a JWT: it refused the JWT HubSync sent" in str(refused.value)
    assert "header.other.signature" not in str(refused.value) + repr(wrong)
    assert exai_server.rejected_hellos == 2  # auth failures are not retried
    async with ExaiClient(replace(exai_settings, jwt="header.payload.signature")) as client:
        assert await client.list_tools()
    assert await exai_server.wait_idle() == 0


def test_4003_close_reasons_get_the_same_messages_as_hello_ack() -> None:
    jwt = closed_error(ConnectionClosed(Close(4003, "jwt_required"), None), "during hello")
    assert str(jwt).startswith("this EXAI server needs a JWT:")
    token = closed_error(ConnectionClosed(Close(4003, "unauthorized"), None), "during hello")
    assert str(token).startswith("EXAI rejected the token (unauthorized)")


async def test_idle_pooled_connections_ping_and_a_silent_one_is_replaced(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    settings = replace(exai_settings, keepalive_interval=0.05, pong_timeout=0.2)
    async with ExaiClient(settings) as client:
        await client.list_tools()
        async with asyncio.timeout(5):
            while exai_server.pings < 3:  # pong after pong, the same connection stays pooled
                await asyncio.sleep(0.02)
        assert exai_server.total_connections == 1 and client.open_connections == 1
        await client.list_tools()
        assert exai_server.total_connections == 1

        exai_server.answer_pings = False  # a server that stopped answering
        pings = exai_server.pings
        async with asyncio.timeout(5):
            while client.open_connections:
                await asyncio.sleep(0.02)
        assert exai_server.pings == pings + 1  # one unanswered ping closed it
        exai_server.answer_pings = True
        await client.list_tools()  # a fresh connection, transparently
        assert exai_server.total_connections == 2
    assert await exai_server.wait_idle() == 0
    assert _others() == set()


async def test_ten_concurrent_calls_are_bounded_and_release_everything(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    exai_server.tool_delay = 0.1
    client = ExaiClient(exai_settings)
    results = await asyncio.gather(
        *(
            client.call_tool("analyze_file", {"file_id": f"f{i}", "question": "q"})
            for i in range(10)
        )
    )
    assert [f"`f{i}`" in r.content for i in range(10) for r in results[i : i + 1]] == [True] * 10
    assert exai_server.peak_connections <= exai_settings.max_connections
    await client.aclose()
    assert client.open_connections == 0
    assert await exai_server.wait_idle() == 0
    assert _others() == set()


async def test_dead_pooled_connection_is_replaced_transparently(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    await exai_client.call_tool("plain_answer", ARGS)
    await exai_server.drop_all()
    assert await exai_server.wait_idle() == 0
    result = await exai_client.call_tool("plain_answer", ARGS)
    assert result.content.startswith("Plain answer")
    assert exai_server.total_connections == 2


async def test_server_restart_mid_call_is_retried_on_a_new_connection(
    exai_server: ExaiTestServer, exai_client: ExaiClient
) -> None:
    exai_server.tool_delay = 0.2
    running = asyncio.Event()
    call = asyncio.create_task(
        exai_client.call_tool("analyze_file", ARGS, on_progress=lambda _m: running.set())
    )
    await asyncio.wait_for(running.wait(), 2)
    await exai_server.drop_all(1012, "service restart")
    result = await call
    assert "Summarise" in result.content
    assert exai_server.total_connections == 2 and len(exai_server.calls) == 2


async def test_answer_over_the_size_limit_is_a_clear_error(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    async with ExaiClient(replace(exai_settings, max_message_bytes=64 * 1024)) as client:
        with pytest.raises(ExaiProtocolError) as info:
            await client.call_tool("huge_answer", {**ARGS, "size": 100_000})
        assert "over the size limit (1009)" in str(info.value)
        assert client.open_connections == 0
        small = await client.call_tool("huge_answer", {**ARGS, "size": 1000})
        assert small.content == "x" * 1000


async def test_failing_progress_callback_does_not_break_the_call(
    exai_client: ExaiClient,
) -> None:
    def explode(_msg: str) -> None:
        raise RuntimeError("subscriber went away")

    result = await exai_client.call_tool("analyze_file", ARGS, on_progress=explode)
    assert result.content


# -- health, settings, parsing --------------------------------------------------------------


async def test_health_ok_auth_and_down(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    ok = await check_health(exai_settings)
    assert ok.state == "ok" and ok.round_trip_ms is not None
    assert ok.health is not None and ok.health["status"] == "healthy"
    bad = await check_health(replace(exai_settings, token="nope"))
    assert bad.state == "auth" and bad.error and "rejected the token" in bad.error
    down = await check_health(replace(exai_settings, port=_free_port(), health_port=None))
    assert down.state == "down" and down.error and "cannot reach EXAI" in down.error
    assert _others() == set()


class _MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


def test_env_overrides_config_and_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring

    ring = _MemoryKeyring()
    ring.set_password("hubsync", "exai-token", "from-keyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    try:
        config = ExaiConfig(host="exai.lan", port=3010)
        settings = ExaiSettings.from_config(config, env={})
        assert (settings.host, settings.port, settings.token) == ("exai.lan", 3010, "from-keyring")
        assert read_token({}) == ("from-keyring", "keyring")
        env = {"EXAI_WS_HOST": "10.0.0.2", "EXAI_WS_PORT": "8079", "EXAI_WS_TOKEN": "from-env"}
        settings = ExaiSettings.from_config(config, env=env)
        assert settings.url == "ws://10.0.0.2:8079"
        assert settings.token == "from-env" and "from-env" not in repr(settings)
        with pytest.raises(ConfigError):
            ExaiSettings.from_config(config, env={"EXAI_WS_PORT": "http"})
    finally:
        keyring.set_keyring(previous)


def test_parse_outputs_shapes() -> None:
    envelope = json.dumps({"status": "success", "content": "hi", "content_type": "markdown"})
    assert parse_outputs("t", [{"type": "text", "text": envelope}]).content == "hi"
    as_json = json.dumps({"status": "success", "content": '{"a": 1}', "content_type": "json"})
    parsed = parse_outputs("t", [{"type": "text", "text": as_json}])
    assert parsed.structured and json.loads(parsed.content) == {"a": 1}
    assert parse_outputs("t", [], streamed="streamed only").content == "streamed only"
    assert parse_outputs("t", [{"type": "text", "text": "{not json"}]).content == "{not json"
    with pytest.raises(ExaiToolError):
        parse_outputs("t", [{"type": "text", "text": json.dumps({"status": "error"})}])


# -- the test server itself speaks the protocol ---------------------------------------------


async def test_server_closes_4002_without_hello(exai_server: ExaiTestServer) -> None:
    async with connect(exai_server.url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4002


async def test_server_closes_4000_on_bad_json_and_4003_on_wrong_token(
    exai_server: ExaiTestServer,
) -> None:
    async with connect(exai_server.url) as ws:
        await ws.send("{nope")
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4000
    async with connect(exai_server.url) as ws:
        await ws.send(json.dumps({"op": "hello", "session_id": "abc", "token": "bad"}))
        ack = json.loads(await ws.recv())
        assert ack == {"op": "hello_ack", "ok": False, "error": "unauthorized"}
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4003


async def test_server_answers_unknown_op_with_op_error(
    exai_server: ExaiTestServer, exai_settings: ExaiSettings
) -> None:
    async with connect(exai_server.url) as ws:
        hello = {"op": "hello", "session_id": "abc", "token": exai_settings.token}
        await ws.send(json.dumps(hello))
        assert json.loads(await ws.recv())["ok"] is True
        await ws.send(json.dumps({"op": "frobnicate"}))
        reply = json.loads(await ws.recv())
    assert reply["op"] == "error" and reply["error"]["code"] == "UNKNOWN_OP"
