"""A hub in use that is missing is waited for; a different hub gets every file again."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sync.engine import PassFailure, SyncEngine
from sync.hub_identity import HubChanged, open_local_hub
from sync.journal import Journal
from sync.remotes.local import HubMissing, LocalHub
from tests.fixtures.engine import FAST_RETRY, assert_hub_mirrors


async def make(folder: Path, create: bool) -> LocalHub:
    return LocalHub(folder, create=create)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "state" / "journal.sqlite3")
    yield j
    j.close()


@asynccontextmanager
async def synced(journal: Journal, hub_dir: Path, **kw: bool) -> AsyncIterator[str | None]:
    """Open the hub as the agent would, sync every folder once, close it; yields the notice."""
    opened = await open_local_hub(journal, hub_dir, make, **kw)
    engine = SyncEngine(journal, {"local": opened.hub}, retry=FAST_RETRY)
    try:
        for root in journal.roots():
            report = await engine.sync_root(root)
            assert report.complete, report.errors
        yield opened.notice
    finally:
        engine.close()
        await opened.hub.close()


def folder_with_files(tmp_path: Path, journal: Journal) -> tuple[Path, str]:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("alpha")
    (docs / "sub" / "b.txt").write_text("beta")
    return docs, journal.add_root(docs, "local").id


async def test_a_missing_hub_in_use_is_waited_for_never_made_anew(
    tmp_path: Path, journal: Journal
) -> None:
    """An unplugged drive: a new, empty hub in its place would lack every 'synced' file."""
    docs, rid = folder_with_files(tmp_path, journal)
    drive = tmp_path / "drive"
    drive.mkdir()
    async with synced(journal, drive / "hub") as notice:
        assert notice is None
    shutil.move(drive, tmp_path / "elsewhere")  # unplugged: the mount folder is gone
    with pytest.raises(HubMissing, match="is its drive plugged in"):
        await open_local_hub(journal, drive / "hub", make)
    assert not drive.exists()
    drive.mkdir()  # an empty mount folder left behind
    with pytest.raises(HubMissing, match="is missing"):
        await open_local_hub(journal, drive / "hub", make)
    assert list(drive.iterdir()) == []
    drive.rmdir()
    shutil.move(tmp_path / "elsewhere", drive)  # plugged back in
    (docs / "a.txt").write_text("alpha, edited while the drive was away")
    async with synced(journal, drive / "hub") as notice:
        assert notice is None  # the same hub: nothing to upload again
    assert_hub_mirrors(drive / "hub", rid, docs)


async def test_a_new_hub_folder_gets_every_file(tmp_path: Path, journal: Journal) -> None:
    docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "old-hub"):
        pass
    async with synced(journal, tmp_path / "new-hub") as notice:
        assert notice is not None and "2 files will be uploaded" in notice
    assert_hub_mirrors(tmp_path / "new-hub", rid, docs)
    async with synced(journal, tmp_path / "new-hub") as notice:
        assert notice is None


async def test_a_hub_replaced_in_place_gets_every_file(tmp_path: Path, journal: Journal) -> None:
    """Another hub put where the old one was (restored from elsewhere, or rebuilt)."""
    docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "hub"):
        pass
    other = Journal(tmp_path / "other.sqlite3")
    async with synced(other, tmp_path / "other-hub"):
        pass
    other.close()
    shutil.rmtree(tmp_path / "hub")
    shutil.move(tmp_path / "other-hub", tmp_path / "hub")
    async with synced(journal, tmp_path / "hub") as notice:
        assert notice is not None and "not the hub your folders were mirrored to" in notice
    assert_hub_mirrors(tmp_path / "hub", rid, docs)


async def test_a_hub_copied_to_a_new_folder_is_the_same_hub(
    tmp_path: Path, journal: Journal
) -> None:
    _docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "hub"):
        pass
    shutil.copytree(tmp_path / "hub", tmp_path / "bigger-disk" / "hub")
    async with synced(journal, tmp_path / "bigger-disk" / "hub") as notice:
        assert notice is None
    assert journal.count_states(rid) == {"synced": 2}


async def test_the_own_default_hub_deleted_is_made_anew_and_filled(
    tmp_path: Path, journal: Journal
) -> None:
    """HubSync's own hub lives beside the journal: missing, it was deleted, not unplugged."""
    docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "hub", own_folder=True):
        pass
    shutil.rmtree(tmp_path / "hub")
    async with synced(journal, tmp_path / "hub", own_folder=True) as notice:
        assert notice is not None
    assert_hub_mirrors(tmp_path / "hub", rid, docs)


@pytest.mark.parametrize("hub_there", [True, False])
async def test_a_journal_from_before_hub_ids_adopts_its_hub(
    tmp_path: Path, journal: Journal, hub_there: bool
) -> None:
    _docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "hub"):
        pass
    sqlite3.connect(journal.path, isolation_level=None).execute(
        "DELETE FROM meta WHERE key LIKE 'hub.%'"
    )  # as an older HubSync left it
    if not hub_there:
        shutil.rmtree(tmp_path / "hub")
        with pytest.raises(HubMissing):
            await open_local_hub(journal, tmp_path / "hub", make)
        return
    async with synced(journal, tmp_path / "hub") as notice:
        assert notice is None
    assert journal.count_states(rid) == {"synced": 2}
    assert journal.hub_seen("local")[0] is not None


async def test_deletions_held_for_the_old_hub_do_not_come_back_as_synced(
    tmp_path: Path, journal: Journal
) -> None:
    """Held rows are not in the new hub: if their files return they must be uploaded."""
    docs, rid = folder_with_files(tmp_path, journal)
    for i in range(12):
        (docs / f"f{i}.txt").write_text(f"file {i}")
    async with synced(journal, tmp_path / "hub-a"):
        pass
    aside = tmp_path / "aside"
    docs.rename(aside)
    docs.mkdir()
    opened = await open_local_hub(journal, tmp_path / "hub-a", make)
    engine = SyncEngine(journal, {"local": opened.hub}, retry=FAST_RETRY)
    report = await engine.sync_root(journal.roots()[0])
    engine.close()
    await opened.hub.close()
    assert len(report.held_deletes) == 14
    docs.rmdir()
    aside.rename(docs)  # the files are back, and the hub setting now points elsewhere
    async with synced(journal, tmp_path / "hub-b") as notice:
        assert notice is not None
    assert_hub_mirrors(tmp_path / "hub-b", rid, docs)


async def test_a_journal_without_blob_rows_still_knows_its_hub_is_in_use(
    tmp_path: Path, journal: Journal
) -> None:
    """Files deduplicated against a shared hub leave no blob row; their file rows count."""
    _docs, _rid = folder_with_files(tmp_path, journal)
    drive = tmp_path / "drive"
    drive.mkdir()
    async with synced(journal, drive / "hub"):
        pass
    sqlite3.connect(journal.path, isolation_level=None).execute("DELETE FROM blobs")
    sqlite3.connect(journal.path, isolation_level=None).execute(
        "DELETE FROM meta WHERE key LIKE 'hub.%'"
    )
    shutil.rmtree(drive / "hub")
    with pytest.raises(HubMissing):
        await open_local_hub(journal, drive / "hub", make)
    assert not (drive / "hub").exists()


async def test_a_new_own_hub_is_filled_even_if_the_first_opening_is_killed(
    tmp_path: Path, journal: Journal
) -> None:
    """Killed between making the new hub and adopting it: the next start still refills it."""
    docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "hub", own_folder=True):
        pass
    sqlite3.connect(journal.path, isolation_level=None).execute(
        "DELETE FROM meta WHERE key LIKE 'hub.%'"
    )  # as an older HubSync
    shutil.rmtree(tmp_path / "hub")

    async def make_then_die(folder: Path, create: bool) -> LocalHub:
        hub = LocalHub(folder, create=create)
        await hub.close()
        raise KeyboardInterrupt  # stands for kill -9 after the hub was made

    with pytest.raises(KeyboardInterrupt):
        await open_local_hub(journal, tmp_path / "hub", make_then_die, own_folder=True)
    async with synced(journal, tmp_path / "hub", own_folder=True) as notice:
        assert notice is not None
    assert_hub_mirrors(tmp_path / "hub", rid, docs)


async def test_a_process_that_may_not_switch_hubs_changes_nothing(
    tmp_path: Path, journal: Journal
) -> None:
    """A CLI command beside a running agent sees the new hub setting but leaves the
    journal to the agent, which switches when it restarts."""
    _docs, rid = folder_with_files(tmp_path, journal)
    async with synced(journal, tmp_path / "hub-a"):
        pass
    seen = journal.hub_seen("local")
    with pytest.raises(HubChanged, match="until it is restarted"):
        await open_local_hub(journal, tmp_path / "hub-b", make, adopt=False)
    assert not (tmp_path / "hub-b").exists()
    await LocalHub(tmp_path / "hub-c").close()  # another hub, there already
    with pytest.raises(HubChanged):
        await open_local_hub(journal, tmp_path / "hub-c", make, adopt=False)
    assert journal.hub_seen("local") == seen
    assert journal.count_states(rid) == {"synced": 2}


async def test_a_pass_whose_hub_is_switched_midway_does_not_call_its_files_synced(
    tmp_path: Path, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed in as another user while a pass uploads as the first: what went to the
    first account must not count as synced for the second."""
    _docs, rid = folder_with_files(tmp_path, journal)
    opened = await open_local_hub(journal, tmp_path / "hub", make)
    engine = SyncEngine(journal, {"local": opened.hub}, retry=FAST_RETRY)
    record = opened.hub.record

    async def record_then_switch(entries: object) -> object:
        result = await record(entries)  # type: ignore[arg-type]
        journal.rebase_hub("local", "another-hub", "elsewhere")  # what a sign-in does
        return result

    monkeypatch.setattr(opened.hub, "record", record_then_switch)
    try:
        report = await engine.sync_root(journal.roots()[0])
    finally:
        engine.close()
        await opened.hub.close()
    assert report.failure == PassFailure("transient", "the local hub was switched during the pass")
    assert journal.count_states(rid) == {"seen": 2}  # uploaded to the new hub next time


async def test_a_blob_write_never_recreates_a_hub_that_went_away(tmp_path: Path) -> None:
    """Issue 14.2: ``mv drive drive.away`` then a write must not rebuild ``drive/hub/...``
    (the real hub would land nested inside it when the drive comes back)."""
    drive = tmp_path / "drive"
    drive.mkdir()
    hub = LocalHub(drive / "hub")
    source = tmp_path / "repro.md"
    source.write_bytes(b"x\n")
    sha = hashlib.sha256(b"x\n").hexdigest()
    try:
        drive.rename(tmp_path / "drive.away")
        with pytest.raises(HubMissing):
            await hub.put_blob(source, sha, 2, "repro.md", "text/markdown")
        (outcome,) = await hub.ingest([(source, "repro.md", "text/markdown")])
        assert isinstance(outcome, HubMissing)
        assert not drive.exists()
    finally:
        await hub.close()
    (tmp_path / "drive.away").rename(drive)
    back = LocalHub(drive / "hub", create=False)
    try:
        key = await back.put_blob(source, sha, 2, "repro.md", "text/markdown")
        assert (drive / "hub" / "user-files" / key).read_bytes() == b"x\n"
    finally:
        await back.close()
