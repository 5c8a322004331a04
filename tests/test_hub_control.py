"""The hub-reading control methods (``hub.*``) of a running agent, for the tray."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent.control.protocol import ControlError
from tests.fixtures.agent import live_agent, short_home

__all__ = ["short_home"]


async def test_devices_find_versions_get_and_pull_through_the_agent(short_home: Path) -> None:
    docs = short_home / "docs"
    (docs / "notes").mkdir(parents=True)
    (docs / "notes/plan.md").write_text("first")
    big = os.urandom(3 * 1024 * 1024)
    (docs / "video.bin").write_bytes(big)
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        (docs / "notes/plan.md").write_text("second, longer")
        await agent.idle()
        client = await agent.client()
        async with client:
            (me,) = (await client.call("hub.devices"))["devices"]
            assert me["this_device"] and me["files"] == 2
            assert me["folders"][0]["path"] == str(docs.resolve())
            name = me["name"]
            found = (await client.call("hub.find", {"pattern": "*.md"}))["files"]
            assert [f["path"] for f in found] == ["notes/plan.md"]
            large = await client.call("hub.find", {"larger": 1024 * 1024, "device": name})
            assert [f["path"] for f in large["files"]] == ["video.bin"]
            versions = await client.call("hub.versions", {"source": f"{name}:docs/notes/plan.md"})
            assert [v["size"] for v in versions["versions"]] == [5, 14]

            events = await client.subscribe(["hub_download"])
            out = short_home / "out"
            got = await client.call(
                "hub.get", {"source": f"{name}:docs/video.bin", "to": str(out)}, timeout=30
            )
            assert (out / "video.bin").read_bytes() == big and got["size"] == len(big)
            seen = []
            async with asyncio.timeout(10):
                async for event in events:
                    seen.append(event.data)
                    if event.data["state"] != "running":
                        break
            assert seen[0]["bytes_total"] == len(big) and seen[-1]["state"] == "done"
            assert seen[-1]["bytes_done"] == len(big)  # the local hub sent it

            pulled = await client.call(
                "hub.pull", {"source": f"{name}:docs", "to": str(short_home / "copy")}, timeout=30
            )
            # video.bin was read by the get: its cache entry (a link to the hub's blob)
            # serves it again; plan.md comes from the hub.
            assert pulled["files"] == 2 and pulled["cache_hits"] == 1
            assert (short_home / "copy/notes/plan.md").read_text() == "second, longer"

            for method, params in (
                ("hub.get", {"source": f"{name}:docs/video.bin", "to": "relative"}),
                ("hub.get", {"source": 3, "to": str(out)}),
                ("hub.find", {"since": "yesterday"}),
            ):
                with pytest.raises(ControlError) as bad:
                    await client.call(method, params)
                assert bad.value.code == "bad_params", params
            with pytest.raises(ControlError) as missing:
                await client.call("hub.get", {"source": f"{name}:docs/nope", "to": str(out)})
            assert missing.value.code == "not_found"
