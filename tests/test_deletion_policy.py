"""The deletion policy alone (sync/deletions.py, sync/renames.py): no hub, no disk."""

from __future__ import annotations

from sync.deletions import DeletionQueue, MassDeletePolicy, Plan, decide, sort_deleted
from sync.journal import FileRow, FileState
from sync.renames import moved_from, pair_by_inode

POLICY = MassDeletePolicy()


def row(rel: str, state: FileState = FileState.SYNCED) -> FileRow:
    digest = rel.encode().hex().ljust(64, "0")[:64]
    return FileRow(rel, 1, 2, 3, digest, state, 1, f"k/{rel}", None, None, 0, None)


def rows_of(*rels: str, state: FileState = FileState.SYNCED) -> dict[str, FileRow]:
    return {r: row(r, state=state) for r in rels}


def judge(candidates: list[str], rows: dict[str, FileRow], **kw: object) -> Plan:
    args: dict[str, object] = dict(
        elsewhere=set(), recent=0, tracked=20, joining=False, confirm=False, policy=POLICY
    )
    args.update(kw)
    return decide(candidates, rows, **args)  # type: ignore[arg-type]


def test_a_few_deletions_are_applied() -> None:
    gone = [f"f{i}" for i in range(3)]
    plan = judge(gone, rows_of(*gone))
    assert plan.apply == gone and plan.hold == [] and plan.held == []


def test_a_mass_deletion_is_held_whole_never_in_part() -> None:
    gone = [f"f{i}" for i in range(12)]  # 12 of 20: more than half of the folder
    plan = judge(gone, rows_of(*gone))
    assert plan.apply == [] and plan.hold == gone and plan.held == sorted(gone)


def test_recent_deletions_count_towards_the_guard() -> None:
    gone = ["a", "b"]
    assert judge(gone, rows_of(*gone), recent=0).apply == gone
    assert judge(gone, rows_of(*gone), recent=1001).hold == gone


def test_new_deletions_join_a_recent_hold_and_held_ones_stay_held() -> None:
    rows = {**rows_of("old", state=FileState.HELD), **rows_of("new")}
    plan = judge(["old", "new"], rows, joining=True)
    assert plan.apply == [] and plan.hold == ["new"] and plan.held == ["new", "old"]
    plan = judge(["old", "new"], rows)  # no recent hold: the new one alone is judged
    assert plan.apply == ["new"] and plan.held == ["old"]


def test_a_move_is_applied_even_beside_a_mass_deletion() -> None:
    gone = [f"f{i}" for i in range(12)]
    rows = rows_of(*gone)
    moved = rows["f0"].sha256
    assert moved is not None
    plan = judge(gone, rows, elsewhere={moved}, tracked=21)
    assert plan.apply == ["f0"] and plan.moved == {"f0"}
    assert plan.hold == gone[1:]


def test_a_held_file_moved_back_under_a_new_name_is_a_move() -> None:
    rows = rows_of("held", state=FileState.HELD)
    plan = judge(["held"], rows, elsewhere={rows["held"].sha256})
    assert plan.apply == ["held"] and plan.moved == {"held"} and plan.held == []


def test_confirmed_deletions_are_all_applied() -> None:
    gone = [f"f{i}" for i in range(12)]
    plan = judge(gone, rows_of(*gone, state=FileState.HELD), confirm=True)
    assert plan.apply == gone and plan.hold == [] and plan.held == []


def test_deleted_paths_are_sorted_by_what_becomes_of_them() -> None:
    rows = rows_of("synced", "ignored now")
    rows["never"] = FileRow("never", 1, 2, 3, None, FileState.SEEN, 0, None, None, None, 0, None)
    out = sort_deleted(["synced", "ignored now", "never", "unknown"], rows, {"ignored now"})
    assert out.forget == {"never", "unknown"}
    assert out.unmirror == {"ignored now"} and out.tombstone == ["synced"]


def test_deletions_wait_until_the_folder_is_quiet() -> None:
    queue = DeletionQueue()
    assert queue.add("r", ["a"], now=0.0) == {"a"}
    assert not queue.quiet("r", now=1.0, settle=2.0)
    assert queue.add("r", ["a", "b"], now=1.5) == {"a", "b"}  # "b" is new: the wait restarts
    assert not queue.quiet("r", now=3.0, settle=2.0)
    assert queue.quiet("r", now=3.5, settle=2.0)
    assert queue.take("r") == {"a", "b"} and queue.take("r") == set()


def test_renames_are_paired_by_inode_size_and_mtime() -> None:
    known = {
        "old.txt": ("old.txt", 5, 7, 42, FileState.SYNCED),
        "other.txt": ("other.txt", 5, 7, 43, FileState.ERROR),  # not synced: no pairing
    }
    pairs = pair_by_inode(["old.txt", "other.txt"], {"new.txt": (5, 7, 42), "x": (5, 7, 43)}, known)
    assert pairs == {"new.txt": "old.txt"}
    assert moved_from(pairs, rows_of("old.txt")) == {"new.txt": row("old.txt").sha256}
