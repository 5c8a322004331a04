"""Restored content is known to the hub: no upload, no new version, logged as a restore."""

from __future__ import annotations

import shutil
from pathlib import Path

from sync.restore import restore_path
from tests.fixtures.engine import Rig, assert_hub_mirrors


def write(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


def kinds(rig: Rig) -> list[str]:
    return [op["kind"] for op in rig.journal.recent_operations(1000)]


async def test_held_files_brought_back_are_not_uploaded_again(rig: Rig) -> None:
    docs = rig.folder()
    for i in range(20):
        write(docs / "photos" / f"p{i:02}.jpg", f"photo {i}")
    write(docs / "keep.txt", "keep")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    shutil.rmtree(docs / "photos")
    assert len((await rig.engine.sync_root(root)).held_deletes) == 20
    uploads = kinds(rig).count("upload")
    done = await restore_path(rig.journal, rig.hub, rig.cache, root, "photos")
    assert len(done) == 20 and not any(d.kept_both for d in done)
    after = await rig.engine.sync_root(root)
    assert (after.hashed, after.uploaded, after.recorded) == (0, 0, 0) and after.complete
    assert rig.journal.count_states(root.id) == {"synced": 21}
    assert [v.version for v in rig.journal.versions(root.id, "photos/p03.jpg")] == [1]
    history = await rig.hub.history(rig.journal.device_id, root.id, "photos/p03.jpg")
    assert [v.version for v in history] == [1]
    assert kinds(rig).count("upload") == uploads and kinds(rig).count("restore") == 20
    assert_hub_mirrors(rig.hub.root, root.id, docs)


async def test_a_deleted_file_restored_is_recorded_without_an_upload(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "note.txt", "one")
    write(docs / "keep.txt", "keep")
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    (docs / "note.txt").unlink()
    assert (await rig.engine.sync_root(root)).deleted == 1
    uploads = kinds(rig).count("upload")
    await restore_path(rig.journal, rig.hub, rig.cache, root, "note.txt")
    after = await rig.engine.sync_root(root)
    assert (after.hashed, after.uploaded, after.recorded) == (0, 0, 0)
    history = await rig.hub.history(rig.journal.device_id, root.id, "note.txt")
    assert [(v.version, v.deleted) for v in history] == [(1, False), (2, True), (3, False)]
    assert kinds(rig).count("upload") == uploads
    assert_hub_mirrors(rig.hub.root, root.id, docs)
