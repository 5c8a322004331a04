"""The engine against a real local hub: dedup, renames, versions, deletions, restores."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import sync.passes.discover
import sync.passes.transfer
import sync.scan
from sync.engine import SyncEngine
from sync.errors import PermanentError, TransientError
from sync.remotes.base import ManifestEntry
from sync.remotes.local import LocalHub
from sync.restore import restore_path
from tests.fixtures.engine import (
    FAST_RETRY,
    Rig,
    assert_hub_mirrors,
    blob_files,
    hub_latest,
    sha_of,
)


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def blob_bytes(rig: Rig) -> int:
    return sum(size for _, size in blob_files(rig.hub.root).values())


async def test_first_sync_mirrors_every_file(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(40):
        write(docs / f"d{i % 4}" / f"f{i}.txt", f"content {i}\n" * (i + 1))
    write(docs / "empty.bin", b"")
    root = rig.add_root(docs)
    report = await rig.engine.sync_root(root)
    assert report.complete and report.recorded == 41
    assert_hub_mirrors(rig.hub.root, root.id, docs)
    again = await rig.engine.sync_root(root)
    assert (again.hashed, again.uploaded, again.recorded) == (0, 0, 0)
    assert again.unchanged == 41


async def test_identical_content_anywhere_adds_no_blob_bytes(rig: Rig) -> None:
    a, b = rig.folder("a"), rig.folder("b")
    payload = os.urandom(200_000)
    write(a / "report.pdf", payload)
    root_a = rig.add_root(a)
    await rig.engine.sync_root(root_a)
    before = blob_bytes(rig)
    write(a / "copy" / "report (1).pdf", payload)  # same root
    write(b / "elsewhere.bin", payload)  # other root
    root_b = rig.add_root(b)
    ra = await rig.engine.sync_root(root_a)
    rb = await rig.engine.sync_root(root_b)
    assert blob_bytes(rig) == before
    assert (ra.uploaded, rb.uploaded) == (0, 0)
    assert ra.deduplicated == 1 and rb.deduplicated == 1
    assert_hub_mirrors(rig.hub.root, root_b.id, b)


async def test_equal_files_in_one_pass_upload_once(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(5):
        write(docs / f"same{i}.txt", "identical bytes")
    root = rig.add_root(docs)
    report = await rig.engine.sync_root(root)
    assert report.uploaded == 1 and report.deduplicated == 4
    assert len(blob_files(rig.hub.root)) == 1


async def test_rename_and_move_reupload_nothing(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "a.txt", "alpha" * 1000)
    write(docs / "dir" / "b.txt", "beta" * 1000)
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    blobs = blob_files(rig.hub.root)
    (docs / "a.txt").rename(docs / "renamed.txt")
    (docs / "dir").rename(docs / "moved-dir")
    report = await rig.engine.sync_root(root)
    assert report.uploaded == 0 and report.renamed == 2 and report.deduplicated == 0
    assert report.held_deletes == []
    assert blob_files(rig.hub.root) == blobs  # same blobs, same inodes: nothing rewritten
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_history_and_restore_every_version_byte_for_byte(rig: Rig) -> None:
    docs = rig.folder()
    f = docs / "notes.md"
    contents = [os.urandom(5000 + i) for i in range(4)]
    root = rig.add_root(docs)
    for data in contents:
        write(f, data)
        await rig.engine.sync_root(root)
    versions = rig.journal.versions(root.id, "notes.md")
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert [v.sha256 for v in versions] == [sha_of(write(rig.tmp / "x", c)) for c in contents]
    hub_versions = await rig.hub.history(rig.journal.device_id, root.id, "notes.md")
    assert [v.sha256 for v in hub_versions] == [v.sha256 for v in versions]
    out = rig.tmp / "restored"
    for n, data in enumerate(contents, start=1):
        done = await restore_path(
            rig.journal, rig.hub, rig.cache, root, "notes.md", version=n, to_dir=out / str(n)
        )
        assert done[0].path.read_bytes() == data


async def test_second_restore_of_same_content_is_a_cache_hit(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "a.txt", "v1")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    write(docs / "a.txt", "v2")
    await rig.engine.sync_root(root)
    await restore_path(
        rig.journal, rig.hub, rig.cache, root, "a.txt", version=1, to_dir=rig.tmp / "r1"
    )
    first = rig.cache.stats()
    assert (first.hits, first.misses) == (0, 1)
    await restore_path(
        rig.journal, rig.hub, rig.cache, root, "a.txt", version=1, to_dir=rig.tmp / "r2"
    )
    second = rig.cache.stats()
    assert (second.hits, second.misses) == (1, 1)
    assert (rig.tmp / "r2" / "a.txt").read_text() == "v1"


async def test_restore_never_overwrites_a_different_file(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "plan.txt", "original")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    write(docs / "plan.txt", "edited locally")
    done = (await restore_path(rig.journal, rig.hub, rig.cache, root, "plan.txt", version=1))[0]
    assert done.kept_both and done.path.name == "plan (restored v1).txt"
    assert (docs / "plan.txt").read_text() == "edited locally"
    assert done.path.read_text() == "original"
    again = (await restore_path(rig.journal, rig.hub, rig.cache, root, "plan.txt", version=1))[0]
    assert again.identical and again.path == done.path


async def test_deletes_are_tombstones_and_restorable(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "keep.txt", "keep")
    write(docs / "gone" / "one.txt", "one")
    write(docs / "gone" / "two.txt", "two")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    blobs = blob_files(rig.hub.root)
    for p in (docs / "gone").iterdir():
        p.unlink()
    (docs / "gone").rmdir()
    report = await rig.engine.sync_root(root)
    assert report.deleted == 2
    assert blob_files(rig.hub.root) == blobs  # tombstones never delete blobs
    versions = rig.journal.versions(root.id, "gone/one.txt")
    assert [v.deleted for v in versions] == [False, True]
    restored = await restore_path(rig.journal, rig.hub, rig.cache, root, "gone")
    assert sorted(r.relpath for r in restored) == ["gone/one.txt", "gone/two.txt"]
    assert (docs / "gone" / "two.txt").read_text() == "two"
    report = await rig.engine.sync_root(root)
    assert report.uploaded == 0 and report.recorded == 0  # the restore recorded them
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_mass_deletion_is_held_until_confirmed(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(30):
        write(docs / f"f{i}.txt", f"file {i}")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    for i in range(20):
        (docs / f"f{i}.txt").unlink()
    held = await rig.engine.sync_root(root)
    assert len(held.held_deletes) == 20 and held.deleted == 0 and not held.complete
    assert rig.journal.count_states(root.id)["held"] == 20
    still_held = await rig.engine.sync_root(root)
    assert len(still_held.held_deletes) == 20
    confirmed = await rig.engine.sync_root(root, confirm_deletes=True)
    assert confirmed.deleted == 20 and confirmed.complete
    assert rig.journal.count_states(root.id) == {"synced": 10, "deleted": 20}


async def test_held_deletions_are_not_applied_by_later_small_passes(rig: Rig) -> None:
    """The watcher can report one ``rm -rf`` in several batches: once a deletion is held,
    a later batch too small to look like an accident must not apply it piecemeal."""
    docs = rig.folder()
    for i in range(24):
        write(docs / "photos" / f"img{i:02}.jpg", f"photo {i}")
    write(docs / "album.txt", "kept")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    for i in range(24):
        (docs / "photos" / f"img{i:02}.jpg").unlink()
    names = [f"photos/img{i:02}.jpg" for i in range(24)]
    held = await rig.engine.sync_root(root, paths=names)
    assert len(held.held_deletes) == 24
    for start in range(0, 24, 6):  # the same deletions, reported again in small batches
        again = await rig.engine.sync_root(root, paths=names[start : start + 6])
        assert again.deleted == 0 and len(again.held_deletes) == 6
    (docs / "album.txt").unlink()  # a deletion made while others wait joins them
    later = await rig.engine.sync_root(root, paths=["album.txt"])
    assert later.deleted == 0 and later.held_deletes == ["album.txt"]
    assert rig.journal.count_states(root.id) == {"held": 25}
    latest = hub_latest(rig.hub.root, root.id)
    assert len(latest) == 25 and not any(deleted for _, deleted, _ in latest.values())


async def test_confirming_a_held_deletion_deletes_only_what_was_confirmed(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(20):
        write(docs / "old" / f"f{i:02}.txt", f"old {i}")
    for i in range(5):
        write(docs / "new" / f"g{i}.txt", f"new {i}")
    write(docs / "keep.txt", "keep")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    shutil.rmtree(docs / "old")
    shown = (await rig.engine.sync_root(root)).held_deletes
    assert len(shown) == 20
    shutil.rmtree(docs / "new")  # after the user looked: joins the hold, not the answer
    assert len((await rig.engine.sync_root(root)).held_deletes) == 25
    write(docs / "old" / "f07.txt", "old 7")  # one came back before the answer
    applied = await rig.engine.apply_held(root, shown)
    assert applied.deleted == 19 and applied.complete
    states = rig.journal.count_states(root.id)
    assert states == {"deleted": 19, "held": 6, "synced": 1}  # f07 waits to be seen again
    latest = hub_latest(rig.hub.root, root.id)
    assert latest["new/g0.txt"][1] is False and latest["old/f00.txt"][1] is True


async def test_a_deletion_long_after_a_hold_does_not_join_it(rig: Rig) -> None:
    now = [1_000_000.0]
    rig.engine.clock = lambda: now[0]
    docs = rig.folder()
    for i in range(20):
        write(docs / "old" / f"f{i:02}.txt", f"old {i}")
    write(docs / "notes.txt", "draft")
    write(docs / "keep.txt", "keep")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    shutil.rmtree(docs / "old")
    assert len((await rig.engine.sync_root(root)).held_deletes) == 20
    now[0] += rig.engine.mass_delete.window + 1  # an hour later, a deliberate delete
    (docs / "notes.txt").unlink()
    report = await rig.engine.sync_root(root)
    assert report.deleted == 1 and "notes.txt" not in report.held_deletes


async def test_a_newly_ignored_file_is_no_longer_mirrored_not_deleted(rig: Rig) -> None:
    """Ignoring a folder stops mirroring it: the hub keeps what it has (no tombstone,
    no held deletion waiting for ever), and the files stay where they are."""
    docs = rig.folder()
    for i in range(20):
        write(docs / "build" / f"o{i}.bin", f"object {i}")
    write(docs / "main.c", "int main;")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    write(docs / ".hubignore", "build/\n")
    report = await rig.engine.sync_root(root)
    assert report.deleted == 0 and report.held_deletes == [] and report.complete
    latest = hub_latest(rig.hub.root, root.id)
    assert latest["build/o3.bin"][1] is False  # still there in the hub, as it was
    assert rig.journal.count_states(root.id)["deleted"] == 20
    (docs / ".hubignore").unlink()  # mirrored again: back as new versions
    again = await rig.engine.sync_root(root)
    assert again.recorded == 20 and again.uploaded == 0
    assert rig.journal.count_states(root.id) == {"synced": 21, "deleted": 1}  # .hubignore


async def test_a_held_folder_moved_back_under_another_name_is_a_move(rig: Rig) -> None:
    """Dragged out (held), dragged back renamed: the hold ends, nothing is uploaded, and
    a pass with nothing held does not rewrite the journal (its stat cache stays)."""
    docs = rig.folder()
    for i in range(20):
        write(docs / "A" / f"f{i:02}.txt", f"file {i}")
    write(docs / "keep.txt", "keep")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    (docs / "A").rename(rig.tmp / "out")
    assert len((await rig.engine.sync_root(root)).held_deletes) == 20
    generation = rig.journal._files_generation()
    assert len((await rig.engine.sync_root(root)).held_deletes) == 20
    assert rig.journal._files_generation() == generation  # still held: no row rewritten
    (rig.tmp / "out").rename(docs / "B")
    report = await rig.engine.sync_root(root)
    assert report.held_deletes == [] and report.deleted == 20 and report.uploaded == 0
    assert rig.journal.count_states(root.id) == {"synced": 21, "deleted": 20}


async def test_a_file_replaced_by_a_folder_of_its_name_is_deleted_in_the_hub(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "notes", "a file")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    (docs / "notes").unlink()
    write(docs / "notes" / "a.txt", "now a folder")
    report = await rig.engine.sync_root(root)
    assert report.deleted == 1 and report.complete
    latest = hub_latest(rig.hub.root, root.id)
    assert latest["notes"][1] is True and latest["notes/a.txt"][1] is False


async def test_confirming_while_the_hub_is_away_reports_it(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(12):
        write(docs / f"f{i}.txt", str(i))
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    for i in range(12):
        (docs / f"f{i}.txt").unlink()
    shown = (await rig.engine.sync_root(root)).held_deletes
    hub = rig.engine.remotes.pop("local")
    try:
        report = await rig.engine.apply_held(root, shown)
    finally:
        rig.engine.remotes["local"] = hub
    assert report.auth_needed and "not available" in report.failure.reason
    assert rig.journal.count_states(root.id) == {"held": 12}


async def test_restoring_a_folder_brings_back_its_held_deletions(rig: Rig) -> None:
    """What `sync --once` suggests for a held deletion: `hubsync restore FOLDER`."""
    docs = rig.folder()
    for i in range(12):
        write(docs / "sub" / f"f{i}.txt", f"file {i}")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    for i in range(12):
        (docs / "sub" / f"f{i}.txt").unlink()
    assert len((await rig.engine.sync_root(root)).held_deletes) == 12
    done = await restore_path(rig.journal, rig.hub, rig.cache, root, ".")
    assert len(done) == 12 and (docs / "sub" / "f3.txt").read_text() == "file 3"
    report = await rig.engine.sync_root(root)
    assert report.complete and report.uploaded == 0
    assert rig.journal.count_states(root.id) == {"synced": 12}


async def test_held_file_that_comes_back_is_synced_again(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(12):
        write(docs / f"f{i}.txt", f"file {i}")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    moved = rig.tmp / "aside"
    docs.rename(moved)
    docs.mkdir()
    held = await rig.engine.sync_root(root)
    assert len(held.held_deletes) == 12
    docs.rmdir()
    moved.rename(docs)  # the "unplugged drive" is back
    report = await rig.engine.sync_root(root)
    assert report.complete and report.uploaded == 0
    assert rig.journal.count_states(root.id) == {"synced": 12}


async def test_partial_pass_only_looks_at_given_paths(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "a.txt", "a")
    write(docs / "sub" / "b.txt", "b")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    write(docs / "a.txt", "a2")
    write(docs / "sub" / "c.txt", "c")
    (docs / "sub" / "b.txt").unlink()
    report = await rig.engine.sync_root(root, paths=["sub"])
    assert report.recorded == 1 and report.deleted == 1  # c added, b tombstoned, a untouched
    assert rig.journal.file(root.id, "a.txt").version == 1  # type: ignore[union-attr]
    report = await rig.engine.sync_root(root, paths=["a.txt", "sub/missing.txt"])
    assert report.recorded == 1
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_changed_file_keeps_previous_version(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "a.txt", "first")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    await asyncio.sleep(0.01)
    write(docs / "a.txt", "second")
    report = await rig.engine.sync_root(root)
    assert report.uploaded == 1
    shas = [v.sha256 for v in rig.journal.versions(root.id, "a.txt")]
    assert len(shas) == 2 and len(blob_files(rig.hub.root)) == 2


async def test_a_folder_that_cannot_be_read_is_kept_not_deleted(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a synced folder that could not be listed (permissions, a flaky
    network share) was taken as deleted, and every file in it got a tombstone."""
    docs = rig.folder()
    write(docs / "keep.txt", "keep")
    write(docs / "locked" / "one.txt", "one")
    write(docs / "locked" / "deeper" / "two.txt", "two")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    real_scandir = os.scandir
    locked = str(docs / "locked")

    def scandir(path: str) -> Any:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(sync.scan.os, "scandir", scandir)
    for paths in (None, ["locked"]):  # a full rescan, and one for a file-system event
        report = await rig.engine.sync_root(root, paths=paths)
        assert report.errors["locked"] == ("local", "folder cannot be read: Permission denied")
        assert not report.complete  # `sync --once` must not say every file is in the hub
        assert report.deleted == 0 and not report.held_deletes
        assert rig.journal.file(root.id, "locked/deeper/two.txt").state == "synced"
    monkeypatch.undo()
    report = await rig.engine.sync_root(root)
    assert report.deleted == report.uploaded == report.recorded == 0
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_a_new_file_on_a_reused_inode_is_not_taken_for_a_rename(rig: Rig) -> None:
    """Regression: a file deleted and a new one of the same size and (pinned) mtime on
    the inode it freed passed for a rename: the hub got the old content under the new
    name, and kept it until the file changed again."""
    docs = rig.folder()
    pinned = 315532800_000000000  # SOURCE_DATE_EPOCH-style builds pin every mtime
    old = write(docs / "app.3f2a.js", b"A" * 5000)
    os.utime(old, ns=(pinned, pinned))
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    old.unlink()
    new = write(docs / "app.9b1c.js", b"B" * 5000)
    os.utime(new, ns=(pinned, pinned))
    # The file system may or may not hand the freed inode out again: make it so.
    behind = sqlite3.connect(rig.journal.path, isolation_level=None)
    behind.execute("UPDATE files SET inode=? WHERE relpath='app.3f2a.js'", (new.stat().st_ino,))
    behind.close()
    report = await rig.engine.sync_root(root)
    assert report.renamed == 0 and report.uploaded == 1
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_a_file_that_keeps_failing_is_tried_less_and_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every retry reset the count of attempts, so a file that could not be
    read was tried every 15 s forever instead of backing off."""
    from sync.engine import SyncEngine
    from sync.errors import LocalFileError
    from sync.journal import Journal
    from sync.remotes.local import LocalHub

    def unreadable(path: Path, *args: object) -> object:
        raise LocalFileError("cannot read: I/O error")

    monkeypatch.setattr(sync.passes.transfer, "hash_file", unreadable)
    now = [1000.0]
    journal = Journal(tmp_path / "j.sqlite3")
    hub = LocalHub(tmp_path / "hub")
    engine = SyncEngine(journal, {"local": hub}, clock=lambda: now[0])
    docs = tmp_path / "docs"
    write(docs / "big.bin", os.urandom(2 * 1024 * 1024))  # above the read-once size
    root = journal.add_root(docs, "local")
    waits = []
    try:
        for _ in range(4):
            report = await engine.sync_root(root)
            assert report.errors["big.bin"][1] == "cannot read: I/O error"
            row = journal.file(root.id, "big.bin")
            assert row is not None and row.next_retry is not None
            waits.append(row.next_retry - now[0])
            now[0] = row.next_retry + 1
    finally:
        engine.close()
        await hub.close()
        journal.close()
    assert waits == [15.0, 30.0, 60.0, 120.0]


async def test_deleted_files_that_flash_back_and_vanish_stay_deleted(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: paths with a tombstone that reappeared and vanished before they were
    hashed were left 'seen': the next pass held them as a mass deletion again."""
    docs = rig.folder()
    flashing = [write(docs / f"f{i}.txt", f"v{i}") for i in range(12)]
    for i in range(12):
        write(docs / f"keep{i}.txt", f"k{i}")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    for f in flashing:
        f.unlink()
    assert (await rig.engine.sync_root(root, confirm_deletes=True)).deleted == 12
    for i, f in enumerate(flashing):
        write(f, f"new {i}")  # e.g. a build step, gone before they are read
    real_walk = sync.passes.discover.walk

    def walk_then_vanish(*args: Any) -> Any:
        walked = real_walk(*args)
        for f in flashing:
            f.unlink()
        return walked

    monkeypatch.setattr(sync.passes.discover, "walk", walk_then_vanish)
    await rig.engine.sync_root(root)
    monkeypatch.undo()
    report = await rig.engine.sync_root(root)
    assert report.held_deletes == [] and report.deleted == 0 and report.complete
    assert rig.journal.count_states(root.id) == {"synced": 12, "deleted": 12}


async def test_a_hub_database_locked_by_another_writer_ends_the_pass_not_the_agent(
    rig: Rig,
) -> None:
    """Regression: "database is locked" (another device on a shared hub) escaped the
    pass as a raw sqlite3 error; and blobs stored in that pass never got their
    file_metadata rows, even after the next pass recorded the files."""
    docs = rig.folder()
    for i in range(3):
        write(docs / f"f{i}.txt", f"file {i}")
    root = rig.add_root(docs)
    rig.hub._db.execute("PRAGMA busy_timeout=50")
    other = sqlite3.connect(rig.hub.root / "hub.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        report = await rig.engine.sync_root(root)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert report.failure.kind == "transient" and "locked" in report.failure.reason
    assert rig.journal.count_states(root.id) == {"seen": 3}
    report = await rig.engine.sync_root(root)
    assert report.complete and report.uploaded == 0  # the blobs were there already
    assert_hub_mirrors(rig.hub.root, root.id, docs)
    with sqlite3.connect(rig.hub.root / "hub.sqlite3") as db:
        described = {r[0] for r in db.execute("SELECT sha256_hash FROM file_metadata")}
    assert described == {sha_of(docs / f"f{i}.txt") for i in range(3)}


async def test_a_row_the_hub_rejects_fails_its_file_only(rig: Rig) -> None:
    class PickyHub(LocalHub):
        async def record(self, entries: Sequence[ManifestEntry]) -> None:
            if any(e.relpath == "bad.txt" for e in entries):
                raise PermanentError("violates check constraint")
            await super().record(entries)

    docs = rig.folder()
    for name in ("a.txt", "bad.txt", "c.txt"):
        write(docs / name, name)
    hub = PickyHub(rig.tmp / "picky-hub")
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY)
    try:
        report = await engine.sync_root(rig.add_root(docs))
    finally:
        engine.close()
        await hub.close()
    assert report.errors == {"bad.txt": ("permanent", "violates check constraint")}
    assert report.recorded == 2


async def test_a_file_recorded_by_the_hub_but_not_the_journal_still_gets_a_tombstone(
    rig: Rig,
) -> None:
    """Regression: the hub committed a file's row, the answer was lost (or the agent was
    killed) before the journal noted it; the user then deleted the file, and the hub
    kept showing it as live, forever."""

    class ForgetfulHub(LocalHub):
        lose_answer = True

        async def record(self, entries: Sequence[ManifestEntry]) -> None:
            await super().record(entries)
            if self.lose_answer:
                raise TransientError("connection reset")

    docs = rig.folder()
    report_doc = write(docs / "report.docx", "draft")
    hub = ForgetfulHub(rig.tmp / "forgetful-hub")
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY)
    root = rig.add_root(docs)
    try:
        assert (await engine.sync_root(root)).failure.kind == "transient"
        hub.lose_answer = False
        report_doc.unlink()
        report = await engine.sync_root(root)
    finally:
        engine.close()
        await hub.close()
    assert report.deleted == 1
    assert hub_latest(hub.root, root.id)["report.docx"][1]  # the newest version is deleted
