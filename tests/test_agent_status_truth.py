"""What the agent's ``status`` says while it works: files counted one by one as they
finish, and a queue counted in files (not watcher events), also while paused."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.control.protocol import ControlError
from sync.throttle import Bandwidth
from tests.fixtures.agent import live_agent


async def test_files_done_climbs_file_by_file_within_a_chunk(short_home: Path) -> None:
    """40 files are one chunk (512): the count must not sit at 0 until the chunk is recorded."""
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        agent.ctx.engine.upload_limit = Bandwidth(400_000)  # ~2 s for the whole pass
        for i in range(40):
            (docs / f"f{i:02}.bin").write_bytes(os.urandom(20_000))
        seen: set[tuple[int, int]] = set()
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            p: dict[str, Any] | None = agent.service.progress
            if p and p.get("files_total"):
                seen.add((int(p["files_done"]), int(p["files_total"])))
                if p.get("current"):
                    assert p["current_size"] == 20_000  # the file named, its own size
            counts = agent.ctx.journal.count_states(next(iter(agent.service.runtimes)))
            if counts.get("synced") == 40:
                break
            await asyncio.sleep(0.02)
        totals = {total for _, total in seen}
        middle = {done for done, total in seen if 0 < done < total}
        assert totals and max(totals) <= 40, seen
        assert len(middle) >= 3, f"files_done jumped by chunks: {sorted(seen)}"


async def test_the_queue_counts_files_and_names_them_while_paused(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        client = await agent.client()
        try:
            await client.call("pause")
            (docs / "sub").mkdir()
            for i in range(5):
                path = docs / "sub" / f"new{i}.txt"
                path.write_text("one")  # several events per file: create, modify, close
                path.write_text("one two")
            await asyncio.sleep(1.0)  # past the debounce: the scheduler holds them back

            async def waiting() -> tuple[int, list[str]]:
                status = await client.call("status")
                root = status["roots"][0]
                assert root["waiting"] == status["queue"]
                return status["queue"], [w["path"] for w in root["waiting_sample"]]

            await agent.wait_for(lambda: agent.service.debouncer.queued == 0, timeout=10)
            queued, names = await waiting()
            assert queued == 5  # files: not the folder, not one per event
            assert names == [f"sub/new{i}.txt" for i in range(5)]
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agent",
                "status",
                env={**os.environ, "HUBSYNC_HOME": str(short_home)},
                stdout=asyncio.subprocess.PIPE,
            )
            said, _ = await asyncio.wait_for(cli.communicate(), 30)
            assert "0 synced, 5 waiting" in said.decode(), said.decode()  # not "0 waiting"

            await client.call("resume")
            await agent.wait_for(
                lambda: (
                    agent.ctx.journal.count_states(next(iter(agent.service.runtimes)))
                    == {"synced": 5}
                ),
                timeout=20,
            )
            assert (await waiting())[0] == 0
        finally:
            await client.close()


async def test_bringing_back_held_files_ends_with_nothing_held(short_home: Path) -> None:
    """Files that came back by themselves before the answer: the answer syncs them, so
    no status offers "Delete in the hub too" for files that are there."""
    docs = short_home / "docs"
    (docs / "big").mkdir(parents=True)
    for i in range(20):
        (docs / "big" / f"f{i:02}.txt").write_text(f"file {i}")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        rid = next(iter(agent.service.runtimes))
        client = await agent.client()
        try:
            shutil.rmtree(docs / "big")
            await agent.wait_for(
                lambda: agent.ctx.journal.count_states(rid).get("held") == 20, timeout=30
            )
            (docs / "big").mkdir()
            for i in range(5):  # back from elsewhere (a backup) before the user answers
                (docs / "big" / f"f{i:02}.txt").write_text(f"file {i}")
            published: list[dict[str, Any]] = []
            publish = agent.service.server.publish

            def spy(event: str, data: Any) -> int:
                if event == "status":
                    published.append(data["roots"][0])
                return publish(event, data)

            agent.service.server.publish = spy  # type: ignore[method-assign]
            assert await client.call("bring_back_held", {"root": str(docs)}) == {"restoring": 20}
            await agent.wait_for(lambda: any(not r["answering"] for r in published), timeout=30)
            answered = next(r for r in published if not r["answering"])
            assert answered["counts"].get("held", 0) == 0, answered["counts"]
            assert agent.ctx.journal.count_states(rid) == {"synced": 20}
        finally:
            await client.close()


async def test_saved_by_dedup_is_kept_over_an_agent_restart(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("same content")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        (docs / "b.txt").write_text("same content")  # the hub has it: no upload
        await agent.wait_for(lambda: agent.service.metrics.counters["dedup_hits"] == 1)
    async with live_agent(short_home, []) as agent:
        client = await agent.client()
        try:
            metrics = (await client.call("status"))["metrics"]
        finally:
            await client.close()
        assert metrics["counters"]["dedup_hits"] == 0  # this run's
        assert metrics["all_time"]["dedup_hits"] == 1
        assert metrics["all_time"]["dedup_bytes_saved"] == len("same content")


async def test_config_get_says_when_the_exai_token_comes_from_the_environment(
    short_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAI_WS_TOKEN", "from-the-environment")
    async with live_agent(short_home, []) as agent:
        client = await agent.client()
        try:
            secrets = (await client.call("config_get"))["secrets"]
        finally:
            await client.close()
    assert secrets["exai_token_env"] is True
    assert "from-the-environment" not in repr(secrets)  # never the token itself


async def test_a_pause_for_a_while_ends_by_itself(short_home: Path) -> None:
    async with live_agent(short_home, []) as agent:
        client = await agent.client()
        try:
            with pytest.raises(ControlError, match="for_seconds"):
                await client.call("pause", {"for_seconds": -1})
            status = await client.call("pause", {"for_seconds": 0.5})
            assert status["paused"] is True and status["paused_until"] > time.time()
            await agent.wait_for(lambda: not agent.service.paused, timeout=10)
            status = await client.call("status")
            assert status["paused"] is False and status["paused_until"] is None
            await client.call("pause", {"for_seconds": 0.3})
            await client.call("pause")  # "until I resume" replaces the timed pause
            await asyncio.sleep(0.6)
            assert (await client.call("status"))["paused"] is True
        finally:
            await client.close()
