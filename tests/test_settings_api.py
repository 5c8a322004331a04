"""The tray's settings methods against a live agent: config, secrets, ignore rules, sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.control.protocol import ControlError
from agent.exai.settings import TOKEN_SECRET
from tests.fixtures.agent import live_agent
from tests.fixtures.supabase import SupabaseUser
from tests.fixtures.supabase_remote import MemoryKeyring
from tests.supabase_server import SupabaseTestServer

pytest_plugins = ["tests.fixtures.supabase_remote"]


async def test_config_round_trip_applies_limits_and_refuses_unknown_keys(
    short_home: Path, memory_keyring: MemoryKeyring
) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        client = await agent.client()
        async with client:
            before = await client.call("config_get")
            assert before["config"]["agent"]["upload_limit_kbps"] == 0
            after = await client.call(
                "config_set",
                {"config": {"agent": {"upload_limit_kbps": 512}, "cache": {"ttl_seconds": 60}}},
            )
            assert after["config"]["agent"]["upload_limit_kbps"] == 512
            assert load_config(agent.paths).agent.upload_limit_kbps == 512  # saved
            assert agent.ctx.engine.upload_limit.rate == 512 * 1024  # and applied live
            with pytest.raises(ControlError, match="unknown setting"):
                await client.call("config_set", {"config": {"agent": {"turbo": True}}})
            with pytest.raises(ControlError, match="must be a int"):
                await client.call(
                    "config_set", {"config": {"agent": {"upload_limit_kbps": "fast"}}}
                )
            assert "turbo" not in agent.paths.config_file.read_text()


async def test_secrets_go_to_the_keyring_never_the_config(
    short_home: Path, memory_keyring: MemoryKeyring
) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        client = await agent.client()
        async with client:
            assert (
                await client.call("set_secret", {"name": "exai_token", "value": "s3cr3t-token"})
            )["set"]
            assert memory_keyring.get_password("hubsync", TOKEN_SECRET) == "s3cr3t-token"
            assert (await client.call("config_get"))["secrets"]["exai_token"] is True
            await client.call("config_set", {"config": {"exai": {"port": 9000}}})
            assert "s3cr3t" not in agent.paths.config_file.read_text()
            await client.call("set_secret", {"name": "exai_token", "value": None})
            assert memory_keyring.get_password("hubsync", TOKEN_SECRET) is None
            with pytest.raises(ControlError):
                await client.call("set_secret", {"name": "supabase_password", "value": "x"})


async def test_ignore_patterns_are_written_and_take_effect(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    (docs / "keep.txt").write_text("keep")
    (docs / "build").mkdir()
    (docs / "build" / "out.o").write_text("object")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        client = await agent.client()
        async with client:
            result = await client.call(
                "set_ignore", {"path": str(docs), "patterns": ["build/", "*.log"]}
            )
            assert result["ignore"] == ["build/", "*.log"]
            assert (docs / ".hubignore").read_text() == "build/\n*.log\n"
            status = await client.call("status")
            assert status["roots"][0]["ignore"] == ["build/", "*.log"]
        (docs / "new.log").write_text("noise")
        (docs / "build" / "more.o").write_text("object")
        (docs / "real.txt").write_text("real")
        rid = agent.ctx.journal.roots()[0].id
        await agent.wait_for(lambda: agent.ctx.journal.file(rid, "real.txt") is not None)
        await agent.idle()
        assert agent.ctx.journal.file(rid, "new.log") is None
        assert agent.ctx.journal.file(rid, "build/more.o") is None


async def test_sign_in_through_the_agent_opens_the_supabase_hub(
    short_home: Path,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    monkeypatch.setenv("SUPABASE_URL", supabase_server.url)
    monkeypatch.setenv("SUPABASE_ANON_KEY", supabase_server.anon_key)
    async with live_agent(short_home, [docs]) as agent:
        client = await agent.client()
        async with client:
            assert "supabase" not in (await client.call("status"))["health"]
            with pytest.raises(ControlError) as wrong:
                await client.call("sign_in", {"email": supabase_user.email, "password": "nope"})
            assert wrong.value.code == "auth"
            account = await client.call(
                "sign_in", {"email": supabase_user.email, "password": supabase_user.password}
            )
            assert account == {"signed_in": True, "user": supabase_user.email}
            assert "supabase" in agent.ctx.remotes
            await agent.wait_for(lambda: "supabase" in agent.service.health)
            stored = [k for k in memory_keyring.items if "session" in k[1] or "auth" in k[1]]
            assert stored, "the session is kept in the keyring"
            assert supabase_user.password not in str(memory_keyring.items)
            account = await client.call("sign_out")
            assert account == {"signed_in": False, "user": None}
            assert "supabase" not in agent.ctx.remotes
            assert not [k for k in memory_keyring.items if "session" in k[1] or "auth" in k[1]]
