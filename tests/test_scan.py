"""Walking and comparing: ignore rules (built-in and nested .hubignore), renames by inode."""

from __future__ import annotations

from pathlib import Path

from sync.journal import SYNCED_MARK
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
        "same.txt": ("same.txt", st_same.st_size, st_same.st_mtime_ns, st_same.st_ino, SYNCED_MARK),
        "edited.txt": (
            "edited.txt",
            st_edit.st_size,
            st_edit.st_mtime_ns,
            st_edit.st_ino,
            SYNCED_MARK,
        ),
        "gone.txt": ("gone.txt", 3, 1, 999999, SYNCED_MARK),
    }
    touch(tmp_path / "edited.txt", "after, longer")
    walked = walk(tmp_path, known)
    assert walked.unchanged == 1 and set(walked.files) == {"edited.txt"}
    d = diff(walked.files, known, unchanged=walked.unchanged)
    assert d.unchanged == 1 and set(d.to_hash) == {"edited.txt"} and d.deleted == ["gone.txt"]


def test_rename_is_matched_by_inode(tmp_path: Path) -> None:
    touch(tmp_path / "new-name.txt", "content")
    st = (tmp_path / "new-name.txt").stat()
    known = {"old-name.txt": ("old-name.txt", st.st_size, st.st_mtime_ns, st.st_ino, SYNCED_MARK)}
    walked = walk(tmp_path, dict(known))
    d = diff(walked.files, known)
    assert d.renamed == {"new-name.txt": "old-name.txt"} and d.deleted == ["old-name.txt"]


def test_cached_stat_index_follows_every_write(tmp_path: Path) -> None:
    """The rescan index is reused only while nothing at all was written to the journal."""
    import sqlite3

    from sync.journal import Journal

    journal = Journal(tmp_path / "j.sqlite3")
    root = journal.add_root(tmp_path, "local")
    with journal.transaction():
        journal.mark_synced(root.id, [("a.txt", 1, 2, 3, "0" * 64, 1, "k")], now=1.0)
    first = journal.stat_index(root.id)
    first.pop("a.txt")  # callers get their own copy
    assert set(journal.stat_index(root.id)) == {"a.txt"}
    with journal.transaction():  # a write through this connection
        journal.mark_synced(root.id, [("b.txt", 1, 2, 4, "1" * 64, 1, "k2")], now=2.0)
    assert set(journal.stat_index(root.id)) == {"a.txt", "b.txt"}
    other = sqlite3.connect(tmp_path / "j.sqlite3")  # a write by another process
    other.execute("DELETE FROM files WHERE relpath='a.txt'")
    other.commit()
    other.close()
    assert set(journal.stat_index(root.id)) == {"b.txt"}
    journal.close()
