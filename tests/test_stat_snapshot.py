"""The stat-index snapshot: a faster first rescan that never hides a journal change."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sync.journal import SCHEMA_VERSION, FileState, Journal, stat_snapshot
from sync.journal.stat_index import StatIndex, StatRow

ROWS: list[StatRow] = [
    ("a.txt", 1, 2, 3, FileState.SYNCED),
    ("broken.bin", 10, 20, 30, FileState.ERROR),
    ("dir/sub/z.txt", 7, 8, 9, FileState.SYNCED),
    ("dir/ünïcødé 📄.txt", 0, -5_000_000_000, 2**63 + 7, FileState.SYNCED),
    ("gone.txt", 4, 5, 6, FileState.DELETED),
]


def rows_of(journal: Journal, root_id: str) -> dict[str, StatRow]:
    return {row[0]: row for row in journal.stat_index(root_id).rows()}


def synced_journal(tmp_path: Path, count: int = 3) -> tuple[Journal, str]:
    journal = Journal(tmp_path / "j.sqlite3")
    root = journal.add_root(tmp_path / "folder", "local")
    with journal.transaction():
        journal.mark_synced(
            root.id,
            [(f"f{i}.txt", i, i * 10, 100 + i, f"{i:064x}", 1, f"k{i}") for i in range(count)],
            now=1.0,
        )
    return journal, root.id


def test_snapshot_round_trip_keeps_every_row_exactly() -> None:
    index = StatIndex.from_rows(ROWS)
    only_root = StatIndex.from_rows([("x", 1, 1, 1, FileState.SYNCED)])
    only_others = StatIndex.from_rows(
        [("y", 1, 1, 1, FileState.ERROR), ("z/w", 2, 2, 2, FileState.DELETED)]
    )
    indexes = {"r1": index, "r2": only_root, "r3": StatIndex(), "r4": only_others}
    data = _saved(indexes, generation=42)
    loaded = stat_snapshot.load(data, 42)
    assert loaded == indexes
    assert sorted(loaded["r1"].rows()) == ROWS
    assert stat_snapshot.load(data, 43) is None  # another generation: stale


@pytest.mark.parametrize("cut", [3, 20, 40, 100, -1])
def test_a_damaged_snapshot_is_ignored(cut: int) -> None:
    data = _saved({"root-1": StatIndex.from_rows(ROWS)}, generation=1)
    assert stat_snapshot.load(data[:cut], 1) is None
    assert stat_snapshot.load(data + b"\0" * 8, 1) is None


def test_first_rescan_after_reopening_reads_the_snapshot(tmp_path: Path) -> None:
    journal, root_id = synced_journal(tmp_path)
    expected = rows_of(journal, root_id)
    with journal.transaction():  # the cached index is stale at close: rebuilt for the snapshot
        journal.forget(root_id, ["f0.txt"])
    del expected["f0.txt"]
    journal.close()
    snapshot = tmp_path / "j.sqlite3.stat"
    assert snapshot.exists()
    again = Journal(tmp_path / "j.sqlite3")
    # Prove the rows come from the snapshot: make SQLite's copy differ without a
    # generation change (triggers off), which no real writer can do.
    behind = sqlite3.connect(again.path, isolation_level=None)
    behind.execute("DROP TRIGGER files_update_generation")
    behind.execute("UPDATE files SET size = 999")
    behind.close()
    assert rows_of(again, root_id) == expected
    again.close()


def test_snapshot_is_not_used_after_another_process_changed_the_journal(tmp_path: Path) -> None:
    journal, root_id = synced_journal(tmp_path)
    journal.stat_index(root_id)
    journal.close()
    other = sqlite3.connect(tmp_path / "j.sqlite3")
    other.execute("UPDATE files SET size = 999 WHERE relpath = 'f1.txt'")
    other.execute("DELETE FROM files WHERE relpath = 'f2.txt'")
    other.commit()
    other.close()
    again = Journal(tmp_path / "j.sqlite3")
    assert not (tmp_path / "j.sqlite3.stat").exists()  # stale: removed on sight
    index = rows_of(again, root_id)
    assert set(index) == {"f0.txt", "f1.txt"} and index["f1.txt"][1] == 999
    again.close()


def test_a_stale_snapshot_is_dropped_and_the_index_follows_writes(tmp_path: Path) -> None:
    journal, root_id = synced_journal(tmp_path)
    journal.stat_index(root_id)
    journal.close()
    again = Journal(tmp_path / "j.sqlite3")
    with again.transaction():
        again.forget(root_id, ["f0.txt"])
    assert set(rows_of(again, root_id)) == {"f1.txt", "f2.txt"}
    again.close()


def test_a_command_that_never_rescanned_leaves_the_snapshot_as_it_was(tmp_path: Path) -> None:
    journal, root_id = synced_journal(tmp_path)
    journal.stat_index(root_id)
    journal.close()
    saved = (tmp_path / "j.sqlite3.stat").read_bytes()
    status = Journal(tmp_path / "j.sqlite3")  # e.g. `hubsync status`: reads, no rescan
    status.count_states()
    status.close()
    assert (tmp_path / "j.sqlite3.stat").read_bytes() == saved


def test_an_index_read_inside_a_transaction_is_not_kept(tmp_path: Path) -> None:
    """A rollback gives the generation back: an index cached inside the transaction
    could later pass for a different state with the same number."""
    journal, root_id = synced_journal(tmp_path)
    try:
        with journal.transaction():
            journal.forget(root_id, ["f0.txt"])
            assert "f0.txt" not in rows_of(journal, root_id)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    with journal.transaction():
        journal._conn.execute("UPDATE files SET size = 5 WHERE relpath = 'f1.txt'")
    index = rows_of(journal, root_id)
    assert set(index) == {"f0.txt", "f1.txt", "f2.txt"} and index["f1.txt"][1] == 5
    journal.close()


def test_journal_of_schema_1_gains_the_generation_on_upgrade(tmp_path: Path) -> None:
    journal, root_id = synced_journal(tmp_path)
    journal.close()
    v1 = sqlite3.connect(tmp_path / "j.sqlite3")  # back to the schema of version 1
    for event in ("insert", "update", "delete"):
        v1.execute(f"DROP TRIGGER files_{event}_generation")
    v1.execute("DROP TABLE files_generation")
    v1.execute("ALTER TABLE files DROP COLUMN held_at")
    for table in ("skipped", "error_groups", "error_members"):  # schema 4
        v1.execute(f"DROP TABLE {table}")
    for table in ("rollup_hourly", "rollup_files", "rollup_state"):  # schema 5
        v1.execute(f"DROP TABLE {table}")
    for trigger in ("files_state_insert", "files_state_update"):  # schema 6
        v1.execute(f"DROP TRIGGER {trigger}")
    v1.execute("DROP TABLE file_transitions")
    v1.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    v1.commit()
    v1.close()
    upgraded = Journal(tmp_path / "j.sqlite3")
    assert upgraded.get_meta("schema_version") == str(SCHEMA_VERSION)
    columns = {r[1] for r in sqlite3.connect(upgraded.path).execute("PRAGMA table_info(files)")}
    assert "held_at" in columns
    before = rows_of(upgraded, root_id)
    with upgraded.transaction():
        upgraded.forget(root_id, ["f0.txt"])
    assert set(rows_of(upgraded, root_id)) == set(before) - {"f0.txt"}
    upgraded.close()


def _saved(indexes: dict[str, StatIndex], generation: int) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.stat"
        stat_snapshot.save(path, generation, indexes)
        assert stat_snapshot.read(path, generation + 1) is None and not path.exists()
        stat_snapshot.save(path, generation, indexes)
        data = stat_snapshot.read(path, generation)
        assert data is not None
        return data


def test_every_root_comes_back_from_one_snapshot(tmp_path: Path) -> None:
    journal, first = synced_journal(tmp_path)
    second = journal.add_root(tmp_path / "other", "local").id
    with journal.transaction():
        journal.mark_synced(second, [("z.txt", 1, 2, 9, "f" * 64, 1, "kz")], now=1.0)
    expected = {first: journal.stat_index(first), second: journal.stat_index(second)}
    journal.close()
    again = Journal(tmp_path / "j.sqlite3")
    behind = sqlite3.connect(again.path, isolation_level=None)
    behind.execute("DROP TRIGGER files_delete_generation")
    behind.execute("DELETE FROM files")  # only the snapshot still has the rows
    behind.close()
    assert {first: again.stat_index(first), second: again.stat_index(second)} == expected
    again.close()


def test_close_closes_even_when_the_snapshot_cannot_be_made(tmp_path: Path) -> None:
    journal, root_id = synced_journal(tmp_path)
    journal.stat_index(root_id)
    behind = sqlite3.connect(journal.path, isolation_level=None)
    behind.execute("DROP TABLE files_generation")  # a journal damaged behind our back
    behind.close()
    journal.close()
    with pytest.raises(sqlite3.ProgrammingError):
        journal._conn.execute("SELECT 1")  # closed
    assert not (tmp_path / "j.sqlite3.stat").exists()


def test_a_flipped_byte_makes_the_snapshot_stale_not_wrong() -> None:
    data = bytearray(_saved({"root-1": StatIndex.from_rows(ROWS)}, generation=1))
    at = data.index(b"z.txt")
    data[at] ^= 0x01  # "z.txt" becomes "{.txt": well-formed, and wrong
    assert stat_snapshot.load(bytes(data), 1) is None
