"""Walking and comparing: ignore rules (built-in and nested .hubignore), renames by inode."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sync.scan
from sync.ignore import DEFAULT_PATTERNS
from sync.journal import FileState, Journal
from sync.journal.stat_index import StatIndex, StatRow
from sync.scan import diff, walk, walk_paths


def touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_builtin_and_nested_hubignore_rules(tmp_path: Path) -> None:
    for rel in [
        "keep.txt",
        "~$report.docx",
        ".~lock.sheet.ods#",
        "draft.swp",
        "movie.part",
        "a/.DS_Store",
        "a/Thumbs.db",
        "build/out.o",
        "a/b/secret.key",
        "a/b/ok.txt",
        "a/notes.log",
        "logs/app.log",
        "a/b/c/deep.log",
    ]:
        touch(tmp_path / rel)
    (tmp_path / ".hubignore").write_text("build/\n*.log\n")
    (tmp_path / "a" / "b" / ".hubignore").write_text("*.key\n!deep.log\n")
    walked = walk(tmp_path)
    assert sorted(walked.files) == [".hubignore", "a/b/.hubignore", "a/b/ok.txt", "keep.txt"]
    assert walked.ignored >= 9
    # The same rules hold for a look at a few paths (what a file event costs).
    some = walk_paths(tmp_path, ["a/b", "build/out.o", "keep.txt", "a/notes.log"])
    assert sorted(some.files) == ["a/b/.hubignore", "a/b/ok.txt", "keep.txt"]


def test_pruning_walk_lists_only_what_changed(tmp_path: Path) -> None:
    touch(tmp_path / "same.txt", "same")
    touch(tmp_path / "edited.txt", "before")
    st_same = (tmp_path / "same.txt").stat()
    st_edit = (tmp_path / "edited.txt").stat()
    known = {
        "same.txt": (
            "same.txt",
            st_same.st_size,
            st_same.st_mtime_ns,
            st_same.st_ino,
            FileState.SYNCED,
        ),
        "edited.txt": (
            "edited.txt",
            st_edit.st_size,
            st_edit.st_mtime_ns,
            st_edit.st_ino,
            FileState.SYNCED,
        ),
        "gone.txt": ("gone.txt", 3, 1, 999999, FileState.SYNCED),
    }
    touch(tmp_path / "edited.txt", "after, longer")
    walked = walk(tmp_path, StatIndex.from_rows(sorted(known.values())))
    assert walked.unchanged == 1 and set(walked.files) == {"edited.txt"}
    assert set(walked.leftover) == {"edited.txt", "gone.txt"}
    d = diff(walked.files, walked.leftover, unchanged=walked.unchanged)
    assert d.unchanged == 1 and set(d.to_hash) == {"edited.txt"} and d.deleted == ["gone.txt"]


def test_rename_is_matched_by_inode(tmp_path: Path) -> None:
    touch(tmp_path / "new-name.txt", "content")
    st = (tmp_path / "new-name.txt").stat()
    known = {
        "old-name.txt": ("old-name.txt", st.st_size, st.st_mtime_ns, st.st_ino, FileState.SYNCED)
    }
    walked = walk(tmp_path, StatIndex.from_rows(known.values()))
    d = diff(walked.files, walked.leftover)
    assert d.renamed == {"new-name.txt": "old-name.txt"} and d.deleted == ["old-name.txt"]


def test_cached_stat_index_follows_every_write(tmp_path: Path) -> None:
    """The rescan index is reused only while nothing at all was written to the journal."""
    import sqlite3

    journal = Journal(tmp_path / "j.sqlite3")
    root = journal.add_root(tmp_path, "local")
    with journal.transaction():
        journal.mark_synced(root.id, [("a.txt", 1, 2, 3, "0" * 64, 1, "k")], now=1.0)
    assert tracked(journal, root.id) == {"a.txt"}
    with journal.transaction():  # a write through this connection
        journal.mark_synced(root.id, [("b.txt", 1, 2, 4, "1" * 64, 1, "k2")], now=2.0)
    assert tracked(journal, root.id) == {"a.txt", "b.txt"}
    other = sqlite3.connect(tmp_path / "j.sqlite3")  # a write by another process
    other.execute("DELETE FROM files WHERE relpath='a.txt'")
    other.commit()
    other.close()
    assert tracked(journal, root.id) == {"b.txt"}
    journal.close()


def tracked(journal: Journal, root_id: str) -> set[str]:
    return {row[0] for row in journal.stat_index(root_id).rows()}


def synced_rows(top: Path, rels: list[str]) -> list[StatRow]:
    rows: list[StatRow] = []
    for rel in rels:
        st = (top / rel).stat()
        rows.append((rel, st.st_size, st.st_mtime_ns, st.st_ino, FileState.SYNCED))
    return rows


def test_unchanged_folders_are_matched_whole_and_changes_file_by_file(tmp_path: Path) -> None:
    rels = [f"{d}/f{i:02}.txt" for d in ("a", "a/b", "c") for i in range(20)] + ["top.txt"]
    rels += ["ünï/café ☕.txt"]  # non-ASCII names are matched like any other
    for rel in rels:
        touch(tmp_path / rel, rel)
    index = StatIndex.from_rows(sorted(synced_rows(tmp_path, rels)))
    assert walk(tmp_path, index).unchanged == len(rels)
    touch(tmp_path / "a/b/f07.txt", "edited, longer than before")
    (tmp_path / "c/f03.txt").unlink()
    touch(tmp_path / "c/new.txt", "new")
    walked = walk(tmp_path, index)
    assert set(walked.files) == {"a/b/f07.txt", "c/new.txt"}
    assert set(walked.leftover) == {"a/b/f07.txt", "c/f03.txt"}
    assert walked.unchanged == len(rels) - 2
    d = diff(walked.files, walked.leftover, unchanged=walked.unchanged)
    assert set(d.to_hash) == {"a/b/f07.txt", "c/new.txt"} and d.deleted == ["c/f03.txt"]
    assert walk(tmp_path, index).unchanged == len(rels) - 2  # the walk left the index as it was


def test_a_folder_that_is_gone_leaves_all_its_rows_for_deletion(tmp_path: Path) -> None:
    rels = ["keep/a.txt", "gone/x.txt", "gone/deeper/y.txt"]
    for rel in rels:
        touch(tmp_path / rel)
    index = StatIndex.from_rows(sorted(synced_rows(tmp_path, rels)))
    for rel in rels[1:]:
        (tmp_path / rel).unlink()
    (tmp_path / "gone/deeper").rmdir()
    (tmp_path / "gone").rmdir()
    walked = walk(tmp_path, index)
    assert walked.unchanged == 1 and not walked.files
    assert sorted(diff(walked.files, walked.leftover).deleted) == sorted(rels[1:])


def test_rows_in_any_order_and_other_states_give_the_same_answer(tmp_path: Path) -> None:
    rels = [f"d/{n}.txt" for n in ("b", "a", "c", "B", "_", "10", "9")]
    for rel in rels:
        touch(tmp_path / rel)
    rows = synced_rows(tmp_path, rels)
    failed = (*rows[0][:4], FileState.ERROR)  # unchanged on disk, but its last upload failed
    index = StatIndex.from_rows([failed, *rows[1:]])  # not in relpath order
    walked = walk(tmp_path, index)
    assert walked.unchanged == len(rels) - 1 and set(walked.files) == {rows[0][0]}
    assert walked.leftover == {rows[0][0]: failed}
    assert set(diff(walked.files, walked.leftover, {rows[0][0]}).to_hash) == {rows[0][0]}


class _Entry:
    """A directory entry whose stat fails the way a file without permission does."""

    def __init__(self, entry: os.DirEntry[str]) -> None:
        self.name, self.path, self._entry = entry.name, entry.path, entry

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        raise PermissionError(13, "Permission denied", self.path)


def test_what_cannot_be_read_is_neither_changed_nor_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rels = ["a.txt", "box/b.txt", "box/inner/c.txt", "locked/d.txt", "emptied/e.txt"]
    for rel in rels:
        touch(tmp_path / rel)
    index = StatIndex.from_rows(sorted(synced_rows(tmp_path, rels)))
    (tmp_path / "emptied/e.txt").unlink()  # a folder still there, its file gone
    real = os.scandir

    @contextlib.contextmanager
    def scandir(path: str) -> Iterator[list[Any]]:
        if path == str(tmp_path / "locked"):
            raise PermissionError(13, "Permission denied", path)
        with real(path) as it:
            entries = list(it)
        yield [_Entry(e) if e.name == "b.txt" else e for e in entries]

    monkeypatch.setattr(sync.scan.os, "scandir", scandir)
    walked = walk(tmp_path, index)
    assert walked.unreadable == {"locked", "box/b.txt"}
    assert set(walked.skipped) == {"locked", "box/b.txt"}
    assert set(walked.leftover) == {"box/b.txt", "locked/d.txt", "emptied/e.txt"}
    d = diff(walked.files, walked.without_unreadable(walked.leftover))
    assert d.deleted == ["emptied/e.txt"] and not d.to_hash

    def root_unreadable(path: str) -> Any:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(sync.scan.os, "scandir", root_unreadable)
    walked = walk(tmp_path, index)
    assert walked.unreadable == {""} and len(walked.leftover) == len(rels)
    assert not diff(walked.files, walked.without_unreadable(walked.leftover)).deleted


def test_every_builtin_pattern_is_ignored_among_ordinary_names(tmp_path: Path) -> None:
    # A folder is tried against the built-in patterns only when one of its names may
    # match: each pattern alone among ordinary files must still be caught.
    for i, pattern in enumerate(DEFAULT_PATTERNS):
        folder = tmp_path / f"f{i:02d}"
        for name in ["a.txt", pattern.replace("*", "x1"), "z.txt"]:
            touch(folder / name)
    walked = walk(tmp_path)
    expected = [f"f{i:02d}/{n}" for i in range(len(DEFAULT_PATTERNS)) for n in ("a.txt", "z.txt")]
    assert sorted(walked.files) == expected
    assert walked.ignored == len(DEFAULT_PATTERNS)


def test_a_rescan_of_many_folders_finds_exactly_what_changed(tmp_path: Path) -> None:
    rels = [f"top{t}/sub{s}/n{n}.txt" for t in range(5) for s in range(3) for n in range(4)]
    for rel in [*rels, "root.txt", "top0/skip.tmp", "top4/.hubsync-x"]:
        touch(tmp_path / rel)
    (tmp_path / "top2" / "link").symlink_to("nowhere")
    index = StatIndex.from_rows(sorted(synced_rows(tmp_path, [*rels, "root.txt"])))
    touch(tmp_path / "top1/sub2/n0.txt", "edited, longer")
    touch(tmp_path / "top3/new.txt")
    (tmp_path / "top4/sub0/n3.txt").unlink()
    walked = walk(tmp_path, index)
    assert set(walked.files) == {"top1/sub2/n0.txt", "top3/new.txt"}
    assert walked.unchanged == len(rels) + 1 - 2
    assert set(walked.leftover) == {"top1/sub2/n0.txt", "top4/sub0/n3.txt"}
    assert walked.folders == 1 + 5 + 5 * 3 and walked.ignored == 2
    assert walked.skipped == {"top2/link": sync.scan.SYMLINK}
