"""An idle agent costs almost nothing: its periodic wake-ups do not grow with the files.

Counted in SQLite virtual-machine steps on the journal's connection, not in time:
a wake-up that reads every file row of a 100k-file folder costs ~1% of a core.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sync.journal import stat_snapshot
from tests.fixtures.agent import FAST, LiveAgent, live_agent

FILES = 1000


def _count_steps(agent: LiveAgent) -> list[int]:
    """Count the journal connection's SQLite steps from now on (one per 100)."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0  # go on

    agent.ctx.journal.metrics_connection().set_progress_handler(tick, 100)
    return steps


async def test_idle_wakeups_read_no_file_rows(short_home: Path) -> None:
    docs = short_home / "docs"
    for i in range(FILES):
        folder = docs / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.txt").write_text(str(i))
    async with live_agent(short_home, [docs]) as agent:
        await agent.idle()
        journal = agent.ctx.journal
        snapshot = journal.path.with_name(journal.path.name + ".stat")
        await agent.wait_for(  # the one snapshot write after the first pass is behind us
            lambda: stat_snapshot.read(snapshot, journal._files_generation()) is not None
        )
        passes = agent.service.passes
        steps = _count_steps(agent)
        await asyncio.sleep(4 * FAST.housekeeping)  # several wake-ups with housekeeping
        agent.ctx.journal.metrics_connection().set_progress_handler(None, 0)
        assert agent.service.passes == passes, "nothing changed: no pass ran"
        # One full read of the folder's rows is already ~FILES * 10 steps (FILES / 10 here).
        assert steps[0] * 100 < FILES, f"{steps[0] * 100} SQLite steps while idle"
