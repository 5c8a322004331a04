"""``hub.link``: the link and EXAI reference of a hub file, for the Hub window."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from agent.control.protocol import ControlError
from tests.fixtures.agent import live_agent, short_home

__all__ = ["short_home"]


async def test_link_and_reference_of_a_file_and_its_older_version(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    (docs / "plan.md").write_text("first")
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        client = await agent.client()
        async with client:
            (me,) = (await client.call("hub.devices"))["devices"]
            source = f"{me['name']}:docs/plan.md"
            first = (await client.call("hub.versions", {"source": source}))["versions"][0]
            (docs / "plan.md").write_text("second")
            await agent.idle()

            now = await client.call("hub.link", {"source": source})
            assert now["version"] == 2 and now["link"].startswith("file://")
            assert Path(unquote(urlparse(now["link"]).path)).read_text() == "second"
            assert now["ref"] == f"user-files/{now['ref'].split('/', 1)[1]}"
            assert hashlib.sha256(b"second").hexdigest() in now["ref"]
            then = await client.call("hub.link", {"source": source, "at": first["recorded_at"]})
            assert then["version"] == 1 and then["sha256"] == hashlib.sha256(b"first").hexdigest()

            for params, code in (
                ({}, "bad_params"),
                ({"source": source, "link_ttl_seconds": 0}, "bad_params"),
                ({"source": source, "at": "yesterday"}, "bad_params"),
                ({"source": f"{me['name']}:docs/nope.md"}, "not_found"),
            ):
                with pytest.raises(ControlError) as failed:
                    await client.call("hub.link", params)
                assert failed.value.code == code, params
