"""The file-state machine: written down once (sync/journal/states.py), enforced on
every write to the journal, and the only place file states are spelled."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from sync.journal import (
    FileStat,
    FileState,
    IllegalTransition,
    Journal,
    Recording,
    SyncedFile,
    Tombstone,
)
from sync.journal import states as machine

ROOT = Path(__file__).resolve().parents[1]


def journal_with(tmp_path: Path) -> tuple[Journal, str]:
    journal = Journal(tmp_path / "j.sqlite3")
    root = journal.add_root(tmp_path / "docs", "local")
    with journal.transaction():
        journal.mark_synced(root.id, [SyncedFile("a.txt", 1, 2, 3, "a" * 64, 1, "ka")], 1.0)
        journal.mark_synced(root.id, [SyncedFile("b.txt", 1, 2, 4, "b" * 64, 1, "kb")], 1.0)
    return journal, root.id


def test_the_journal_allows_exactly_the_moves_written_down(tmp_path: Path) -> None:
    journal, root_id = journal_with(tmp_path)  # a.txt and b.txt synced
    with journal.transaction():
        journal.mark_deleted(root_id, [Tombstone("b.txt", 2, "b" * 64, 1, 2, "kb")], 3.0)
    journal.close()
    other = sqlite3.connect(tmp_path / "j.sqlite3", isolation_level=None)

    def move(rel: str, target: FileState) -> bool:
        other.execute("SAVEPOINT try")
        try:
            other.execute("UPDATE files SET state=? WHERE relpath=?", (target, rel))
        except sqlite3.IntegrityError:
            return False
        finally:
            other.execute("ROLLBACK TO try")
            other.execute("RELEASE try")
        return True

    for rel, source in (("a.txt", FileState.SYNCED), ("b.txt", FileState.DELETED)):
        for target in FileState:
            assert move(rel, target) == (target in machine.TRANSITIONS[source]), (source, target)
    new = (
        "INSERT INTO files(root_id, relpath, size, mtime_ns, inode, state) VALUES(?, ?, 1, 1, 1, ?)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        other.execute(new, (root_id, "c.txt", FileState.HELD))  # never new as a held deletion
    other.execute(new, (root_id, "c.txt", FileState.SEEN))
    other.close()


def test_a_write_that_breaks_the_machine_fails_and_changes_nothing(tmp_path: Path) -> None:
    journal, root_id = journal_with(tmp_path)
    with journal.transaction():
        journal.mark_unmirrored(root_id, ["a.txt"])
    with pytest.raises(IllegalTransition), journal.transaction():
        journal.mark_error(root_id, "a.txt", "local", "nope", 10, 2.0)  # not mirrored
    row = journal.file(root_id, "a.txt")
    assert row is not None and row.state == FileState.UNMIRRORED and row.last_error is None
    # Any writer, not only this code: another connection is refused the same way.
    other = sqlite3.connect(journal.path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="illegal file-state transition"):
        other.execute("UPDATE files SET state=? WHERE relpath=?", (FileState.HELD, "a.txt"))
    other.close()
    journal.close()


def test_recording_and_unmirrored_are_states_of_their_own(tmp_path: Path) -> None:
    journal, root_id = journal_with(tmp_path)
    with journal.transaction():
        journal.mark_seen(root_id, [FileStat("c.txt", 5, 6, 7)])
        journal.mark_recording(root_id, [Recording("c.txt", "c" * 64, 1, "kc")])
        journal.mark_unmirrored(root_id, ["a.txt"])
        journal.mark_deleted(root_id, [Tombstone("b.txt", 2, "b" * 64, 1, 2, "kb")], 3.0)
    states = {rel: row.state for rel, row in journal.files(root_id).items()}
    assert states == {
        "a.txt": FileState.UNMIRRORED,
        "b.txt": FileState.DELETED,
        "c.txt": FileState.RECORDING,
    }
    # Shown as before: recording still waits, an unmirrored file is out of the mirror.
    assert journal.count_states(root_id) == {"seen": 1, "deleted": 2}
    assert journal.tracked_count(root_id) == 1
    journal.close()


def test_a_journal_of_schema_5_names_its_hidden_states(tmp_path: Path) -> None:
    journal, root_id = journal_with(tmp_path)
    with journal.transaction():
        journal.mark_seen(root_id, [FileStat("c.txt", 5, 6, 7)])
        journal.mark_recording(root_id, [Recording("c.txt", "c" * 64, 1, "kc")])
        journal.mark_seen(root_id, [FileStat("d.txt", 5, 6, 8)])  # new, not hashed yet
        journal.mark_unmirrored(root_id, ["a.txt"])
        journal.mark_deleted(root_id, [Tombstone("b.txt", 2, "b" * 64, 1, 2, "kb")], 3.0)
    journal.close()
    old = sqlite3.connect(tmp_path / "j.sqlite3", isolation_level=None)  # as schema 5 left it
    for trigger in ("files_state_insert", "files_state_update"):
        old.execute(f"DROP TRIGGER {trigger}")
    old.execute("DROP TABLE file_transitions")
    old.execute("UPDATE files SET state='seen' WHERE state='recording'")
    old.execute("UPDATE files SET state='deleted' WHERE state='unmirrored'")
    old.execute("UPDATE meta SET value='5' WHERE key='schema_version'")
    old.close()
    again = Journal(tmp_path / "j.sqlite3")
    states = {rel: row.state for rel, row in again.files(root_id).items()}
    assert states == {
        "a.txt": FileState.UNMIRRORED,  # no tombstone: its newest version is live
        "b.txt": FileState.DELETED,
        "c.txt": FileState.RECORDING,  # a hash the hub may have a row for
        "d.txt": FileState.SEEN,
    }
    with pytest.raises(IllegalTransition), again.transaction():  # and the machine holds
        again.mark_error(root_id, "a.txt", "local", "nope", 1, 4.0)
    again.close()


SQL_STATE_LITERAL = re.compile(r"\bstate\s*(?:=|!=|<>|IN\s*\(|NOT IN\s*\()\s*'", re.IGNORECASE)
"""``state='held'``, ``state IN ('seen', ...``: a state written into SQL, not a parameter."""


def test_no_file_state_is_spelled_in_sql_outside_the_enum() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("sync", "agent", "gui")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "states.py"
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if SQL_STATE_LITERAL.search(line)
    ]
    assert found == []
