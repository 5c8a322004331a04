"""What counts as a deletion, and the mass-deletion guard judging one ``rm -rf`` whole."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fixtures.engine import Rig, hub_latest


def write(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


def hub_deleted(rig: Rig, root_id: str) -> int:
    return sum(deleted for _, deleted, _ in hub_latest(rig.hub.root, root_id).values())


@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
async def test_an_rm_rf_reported_in_small_batches_is_held_whole(rig: Rig, seed: int) -> None:
    """The watcher reports a 2,000-file ``rm -rf`` in batches at random intervals, and
    passes start at random points (some of them full rescans): nothing is deleted in
    the hub, every file is held. Judged batch by batch, the first ones were applied."""
    rng = random.Random(seed)
    now = [1_000_000.0]
    rig.engine.clock = lambda: now[0]
    rig.engine.mass_delete = replace(rig.engine.mass_delete, settle=10.0)
    docs = rig.folder()
    names = [f"sub/d{i % 20:02}/f{i:04}.txt" for i in range(2000)]
    for i, rel in enumerate(names):
        write(docs / rel, f"file {i}")
    for i in range(2000):
        write(docs / "other" / f"o{i:04}.txt", f"other {i}")
    root = rig.add_root(docs)
    assert (await rig.engine.sync_root(root)).complete
    order = names[:]
    rng.shuffle(order)
    reported: list[str] = []
    while order:
        batch = order[: rng.randint(1, 150)]
        order = order[len(batch) :]
        for rel in batch:
            (docs / rel).unlink()
        reported.extend(batch)
        now[0] += rng.uniform(0, 9.0)  # never as long as the quiet time asked for
        if rng.random() < 0.6:  # a pass starts now, on what was reported so far
            paths = None if rng.random() < 0.2 else reported
            report = await rig.engine.sync_root(root, paths=paths)
            assert report.deleted == 0
            reported = []
    if reported:
        assert (await rig.engine.sync_root(root, paths=reported)).deleted == 0
    shutil.rmtree(docs / "sub")
    now[0] += 10.0  # quiet at last: judged all together
    last = await rig.engine.sync_root(root)
    assert last.deleted == 0 and last.deferred == 0
    assert len(rig.engine.journal.held(root.id)) == 2000
    assert hub_deleted(rig, root.id) == 0


async def test_a_few_deletions_wait_for_quiet_then_apply(rig: Rig) -> None:
    now = [1_000_000.0]
    rig.engine.clock = lambda: now[0]
    rig.engine.mass_delete = replace(rig.engine.mass_delete, settle=10.0)
    docs = rig.folder()
    for i in range(30):
        write(docs / f"f{i:02}.txt", f"file {i}")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    (docs / "f00.txt").unlink()
    first = await rig.engine.sync_root(root, paths=["f00.txt"])
    assert first.deleted == 0 and first.deferred == 1 and not first.complete
    now[0] += 4
    (docs / "f01.txt").unlink()
    second = await rig.engine.sync_root(root, paths=["f01.txt"])
    assert second.deferred == 2
    now[0] += 10
    write(docs / "f01.txt", "back again")  # came back before it was judged: not deleted
    quiet = await rig.engine.sync_root(root, paths=["f05.txt"])
    assert quiet.deleted == 1 and quiet.deferred == 0 and quiet.held_deletes == []
    assert hub_latest(rig.hub.root, root.id)["f00.txt"][1] is True


async def test_renamed_folders_do_not_count_as_recent_deletions(rig: Rig) -> None:
    """12 folders renamed (1,200 moves), then 10 files deleted: the 10 are deleted, not
    held; the moves were no removals."""
    docs = rig.folder()
    for d in range(12):
        for f in range(100):
            write(docs / f"d{d}" / f"f{f}.txt", f"file {d} {f}")
    for f in range(100):
        write(docs / f"x{f}.txt", f"extra {f}")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    for d in range(12):
        (docs / f"d{d}").rename(docs / f"e{d}")
    moved = await rig.engine.sync_root(root)
    assert moved.renamed == 1200 and moved.held_deletes == [] and moved.uploaded == 0
    for f in range(10):
        (docs / f"x{f}.txt").unlink()
    report = await rig.engine.sync_root(root)
    assert report.deleted == 10 and report.held_deletes == []


def _rm_rf_beside_a_folder_rename(docs: Path) -> None:
    """40 of 70 files deleted while the other 30 move to another folder."""
    for i in range(40):
        write(docs / "gone" / f"f{i}.txt", f"gone {i}")
    for i in range(30):
        write(docs / "old" / f"f{i}.txt", f"moved {i}")


async def test_renames_in_the_same_pass_do_not_hide_a_mass_deletion(rig: Rig) -> None:
    """The moved files' new names are recorded before deletions are judged: counted with
    their old names too, they made the folder look twice their size, and 40 of 70 files
    deleted looked like 40 of 100."""
    docs = rig.folder()
    _rm_rf_beside_a_folder_rename(docs)
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    shutil.rmtree(docs / "gone")
    (docs / "old").rename(docs / "new")
    report = await rig.engine.sync_root(root)
    assert {f"gone/f{i}.txt" for i in range(40)} <= set(report.held_deletes)
    assert hub_deleted(rig, root.id) <= 30


async def test_a_rename_beside_a_mass_deletion_is_applied_not_held(rig: Rig) -> None:
    """Only the real deletions are held: the user is never asked about (nor offered to
    bring back, beside their new copies) files that were only renamed."""
    docs = rig.folder()
    _rm_rf_beside_a_folder_rename(docs)
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    shutil.rmtree(docs / "gone")
    (docs / "old").rename(docs / "new")
    report = await rig.engine.sync_root(root)
    assert report.held_deletes == sorted(f"gone/f{i}.txt" for i in range(40))
    assert report.renamed == 30 and report.deleted == 30 and report.uploaded == 0
    latest = hub_latest(rig.hub.root, root.id)
    assert all(latest[f"old/f{i}.txt"][1] and not latest[f"new/f{i}.txt"][1] for i in range(30))
