"""A file closed after writing skips the debounce; everything else still waits for it.

The agent tests run a real agent with a real inotify observer and a debounce far longer
than the tests wait, so only the close-after-write fast path can bring a file to the hub.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

from agent.daemon.watcher import CLOSE_SETTLE, Change, Debouncer, RootWatcher
from tests.fixtures.agent import FAST, LiveAgent, live_agent
from tests.fixtures.engine import assert_hub_mirrors, sha_of

HUGE = replace(FAST, debounce=30.0, max_delay=60.0)
"""Nothing debounced is released while a test runs."""


def _root_id(agent: LiveAgent) -> str:
    (rt,) = agent.service.runtimes.values()
    return rt.root.id


def _hub_shas(agent: LiveAgent, rel: str) -> list[str]:
    return [v.sha256 for v in agent.ctx.journal.versions(_root_id(agent), rel)]


async def test_a_closed_file_reaches_the_hub_without_waiting_for_the_debounce(
    short_home: Path,
) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs], timings=HUGE) as agent:
        await agent.idle()
        (docs / "note.md").write_text("saved and closed")
        await agent.wait_for(lambda: bool(_hub_shas(agent, "note.md")), timeout=60)
        assert _hub_shas(agent, "note.md") == [sha_of(docs / "note.md")]
        assert_hub_mirrors(agent.ctx.config.local_hub_path(agent.paths), _root_id(agent), docs)


async def test_a_file_kept_open_is_not_uploaded_half_written(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    async with live_agent(short_home, [docs], timings=HUGE) as agent:
        await agent.idle()
        with open(docs / "log.txt", "w") as f:
            for step in range(4):
                f.write(f"part {step}\n" * 100)
                f.flush()
                await agent.wait_for(lambda: agent.service.debouncer.queued == 1, timeout=60)
                await asyncio.sleep(4 * CLOSE_SETTLE)  # past the settle, still open
                assert not _hub_shas(agent, "log.txt"), "uploaded while still being written"
        await agent.wait_for(lambda: bool(_hub_shas(agent, "log.txt")), timeout=60)
        assert _hub_shas(agent, "log.txt") == [sha_of(docs / "log.txt")]


async def test_an_atomic_save_uploads_only_the_final_content(short_home: Path) -> None:
    docs = short_home / "docs"
    docs.mkdir()
    (docs / "essay.md").write_text("draft 1")
    async with live_agent(short_home, [docs], timings=replace(FAST, debounce=1.0)) as agent:
        await agent.idle()
        before = _hub_shas(agent, "essay.md")
        temp = docs / ".goutputstream-Q1W2E3"  # gedit: temp written and closed, then renamed
        temp.write_text("draft 2, final")
        await asyncio.sleep(10 * CLOSE_SETTLE)  # a fast path on the temp would fire
        os.replace(temp, docs / "essay.md")
        await agent.wait_for(lambda: len(_hub_shas(agent, "essay.md")) == 2, timeout=60)
        await agent.idle()
        assert _hub_shas(agent, "essay.md") == [*before, sha_of(docs / "essay.md")]
        assert not _hub_shas(agent, temp.name), "the editor's temp file reached the hub"
        assert_hub_mirrors(agent.ctx.config.local_hub_path(agent.paths), _root_id(agent), docs)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_closed_file_is_released_after_the_settle(tmp_path: Path) -> None:
    clock = _Clock()
    d = Debouncer(30.0, 60.0, clock)
    (tmp_path / "a.txt").write_text("done")
    d.add("r", "a.txt")
    d.closed("r", "a.txt", tmp_path / "a.txt")
    assert d.ready() == {}
    clock.now += CLOSE_SETTLE
    assert d.ready() == {"r": {"a.txt"}}
    assert d.queued == 0


def test_a_closed_file_that_changes_or_goes_within_the_settle_is_debounced(
    tmp_path: Path,
) -> None:
    clock = _Clock()
    d = Debouncer(30.0, 60.0, clock)
    for name in ("written-again", "rewritten", "renamed", "deleted"):
        (tmp_path / name).write_text("first")
        d.closed("r", name, tmp_path / name)
    d.add("r", "written-again")  # a second writer still has it open
    (tmp_path / "rewritten").write_text("second, longer")  # its events not seen yet
    (tmp_path / "renamed").rename(tmp_path / "elsewhere")
    d.add("r", "renamed", structural=True)
    (tmp_path / "deleted").unlink()  # its event not seen yet
    clock.now += CLOSE_SETTLE
    assert d.ready() == {}
    clock.now += 30.0
    assert d.ready() == {"r": {"written-again", "rewritten", "renamed", "deleted"}}


def test_editor_temp_and_ignored_names_never_take_the_fast_path(tmp_path: Path) -> None:
    clock = _Clock()
    d = Debouncer(30.0, 60.0, clock)
    names = [".goutputstream-ABCDEF", "4913", ".essay.md.swp", "essay.md~", "report.tmp"]
    for name in names:
        (tmp_path / name).write_text("temp")
        d.closed("r", name, tmp_path / name)
    clock.now += 1.0
    assert d.ready() == {}
    clock.now += 30.0
    assert d.ready() == {"r": set(names)}


def test_the_watcher_reports_a_close_after_writing_only(tmp_path: Path) -> None:
    seen: list[tuple[str, Change]] = []
    lock = threading.Lock()

    def on_path(rel: str, change: Change) -> None:
        with lock:
            seen.append((rel, change))

    def changes() -> list[tuple[str, Change]]:
        with lock:
            return list(seen)

    (tmp_path / "read.txt").write_text("already there")
    watcher = RootWatcher(tmp_path, on_path, lambda reason: None)
    assert watcher.start() is None
    try:
        (tmp_path / "read.txt").read_text()  # a close after only reading
        (tmp_path / "written.txt").write_text("new")
        deadline = time.monotonic() + 10
        while ("written.txt", Change.CLOSED) not in changes():
            assert time.monotonic() < deadline, f"no close event: {changes()}"
            time.sleep(0.01)
        os.rename(tmp_path / "written.txt", tmp_path / "moved.txt")
        while ("moved.txt", Change.STRUCTURAL) not in changes():
            assert time.monotonic() < deadline, f"no move event: {changes()}"
            time.sleep(0.01)
    finally:
        watcher.stop()
    got = changes()
    assert not [c for c in got if c[0] == "read.txt"]
    assert ("written.txt", Change.EDITED) in got  # created and written: debounced
    assert ("written.txt", Change.STRUCTURAL) in got


def test_a_file_closed_again_and_again_is_still_released_after_max_delay(
    tmp_path: Path,
) -> None:
    clock = _Clock()
    d = Debouncer(30.0, 2.0, clock)
    log_file = tmp_path / "app.log"
    log_file.write_text("line\n")
    released = []
    for _ in range(300):  # a logger that opens, appends and closes every 10 ms, for 3 s
        d.closed("r", "app.log", log_file)
        released.append(d.ready())
        clock.now += CLOSE_SETTLE / 5
    assert {"r": {"app.log"}} in released  # looked at within max_delay, not starved
