"""Events reach the tray from the agent's loop only, also when a transfer thread reports.

The control server's client queues belong to its loop: ``publish`` from another
thread raises, so a handler that forgets to hand progress over fails here.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.control.client import ControlClient
from agent.control.hub_handlers import DownloadProgress
from agent.control.server import ControlServer
from agent.daemon.oneoff import upload_paths
from sync.remotes.local import LocalHub

pytest_plugins = ["tests.fixtures.agent_infra"]


async def test_publish_refuses_a_thread_other_than_the_loops(
    control_server: ControlServer,
) -> None:
    control_server.publish("status", {"ok": True})  # the loop's thread: fine
    with pytest.raises(RuntimeError, match="off the event loop's thread"):
        await asyncio.to_thread(control_server.publish, "status", {"ok": False})


async def test_one_off_upload_progress_from_the_hub_thread_reaches_subscribers(
    control_server: ControlServer, short_tmp: Path
) -> None:
    hub = LocalHub(short_tmp / "hub")
    photo = short_tmp / "photo.jpg"
    photo.write_bytes(b"\xff\xd8" + bytes(range(256)) * 4096)  # about 1 MB
    publishers: set[int] = set()

    def publish(data: dict[str, Any]) -> None:
        publishers.add(threading.get_ident())
        control_server.publish("upload", data)

    async with await ControlClient.connect(control_server.socket_path) as client:
        events = await client.subscribe(["upload"])
        items = await upload_paths(hub, [photo], publish=publish)
        seen = []
        async for event in events:
            seen.append(event.data)
            if event.data["state"] in ("done", "failed"):
                break
    assert [i["state"] for i in items] == ["done"] and items[0]["size"] == photo.stat().st_size
    uploading = [e for e in seen if e["state"] == "uploading"]
    assert uploading and uploading[-1]["bytes_done"] == photo.stat().st_size
    assert publishers == {threading.get_ident()}  # every event from the loop's thread
    await hub.close()


async def test_download_progress_from_a_landing_thread_reaches_subscribers(
    control_server: ControlServer,
) -> None:
    """Pulling in place lands files from worker threads, which report the bytes moved."""
    async with await ControlClient.connect(control_server.socket_path) as client:
        events = await client.subscribe(["hub_download"])
        progress = DownloadProgress(control_server.publish, "laptop:Docs")
        await asyncio.to_thread(progress.moved, 4096)
        await asyncio.sleep(0)  # the handed-over count is applied on the loop
        progress.finish(ok=True)
        seen = []
        async for event in events:
            seen.append(event.data)
            if event.data["state"] == "done":
                break
    assert seen[-1] == {
        "source": "laptop:Docs",
        "state": "done",
        "bytes_done": 4096,
        "bytes_total": 0,
        "files_done": 0,
        "files_total": 0,
    }
