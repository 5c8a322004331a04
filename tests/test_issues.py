"""What is not in the hub, and why: error groups, skipped items, the upload policy."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

import sync.passes.transfer
from agent.control.issues_api import API_GROUPS, API_ISSUES, issues_report
from agent.control.protocol import MAX_FRAME_BYTES
from sync.engine import SyncEngine
from sync.errors import LocalFileError, PermanentError, QuotaError
from sync.fingerprint import fingerprint, normalise
from sync.hashing import hash_file
from sync.issues import list_issues
from sync.journal import OPEN, RESOLVED, RESOLVED_BY_USER, Journal
from sync.policy import FolderRules, UploadPolicy, sniff
from sync.remotes.base import ManifestEntry
from sync.remotes.local import LocalHub
from tests.fixtures.engine import FAST_RETRY, Rig


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


class FailingHub(LocalHub):
    """Rejects the rows of files named q*.txt (quota) and r*.txt (a constraint), each
    with a message naming the file and a number, as real hubs do; until ``healed``."""

    healed = False
    ingest_limit = 0  # every file hashed by the engine (whose reads the test breaks)

    async def record(self, entries: Sequence[ManifestEntry]) -> None:
        if not self.healed:
            for e in entries:
                name = e.relpath.rsplit("/", 1)[-1]
                if e.deleted or name[0] not in "qr" or not name[1:-4].isdigit():
                    continue
                n = int(name[1:-4])
                if name.startswith("q"):
                    raise QuotaError(f"{e.relpath}: {1000 + n} bytes over the project's quota")
                if name.startswith("r"):
                    raise PermanentError(
                        f"row {n} violates check constraint 'c{n}' (id {os.urandom(6).hex()})"
                    )
        await super().record(entries)


def test_messages_that_differ_by_path_number_or_id_share_a_fingerprint() -> None:
    a = "docs/a 1.txt: cannot be read: [Errno 13] Permission denied"
    b = "/home/u/x/b.txt: cannot be read: [Errno 13] Permission denied"
    assert normalise(a) == normalise(b) == "<path>: cannot be read: [Errno <n>] Permission denied"
    assert fingerprint("local", a, "read") == fingerprint("local", b, "read")
    assert fingerprint("local", a, "read") != fingerprint("local", a, "upload")
    assert fingerprint("local", a, "read") != fingerprint("transient", a, "read")
    assert normalise("blob 5f2a9b7c8d1e2f3a04 of 12,345 bytes") == "blob <hex> of <n> bytes"


async def test_1000_failures_of_3_kinds_become_3_groups_that_resolve_when_the_files_sync(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rig.folder()
    for n in range(400):
        write(docs / "q" / f"q{n}.txt", f"quota {n}")
    for n in range(350):
        write(docs / "r" / f"r{n}.txt", f"rule {n}")
    for n in range(250):
        write(docs / "u" / f"u{n}.txt", f"unreadable {n}")
    write(docs / "fine.txt", "fine")
    broken = {"on": True}

    def unreadable(path: Path) -> object:
        if broken["on"] and path.name.startswith("u"):
            raise LocalFileError(f"{path}: cannot be read: [Errno 13] Permission denied")
        return hash_file(path)

    monkeypatch.setattr(sync.passes.transfer, "hash_file", unreadable)
    hub = FailingHub(rig.tmp / "failing-hub")
    # Hashing in threads: the patched hash_file does not reach worker processes.
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY, hash_processes=0)
    root = rig.add_root(docs)
    try:
        report = await engine.sync_root(root)
        assert len(report.errors) == 1000 and report.recorded == 1
        groups = {g.kind: g for g in rig.journal.error_groups()}
        assert sorted(groups) == ["local", "permanent", "quota"]
        assert (groups["quota"].count, groups["permanent"].count, groups["local"].count) == (
            400,
            350,
            250,
        )
        assert all(g.state == OPEN for g in groups.values())
        assert groups["local"].operation == "read" and groups["quota"].operation == "upload"
        assert groups["quota"].open_files == 400 and len(groups["quota"].paths) == 100
        assert groups["quota"].message == "<path>: <n> bytes over the project's quota"
        issues = list_issues(rig.journal)
        assert len(issues) == 1000
        assert {i.group for i in issues} == {g.id for g in groups.values()}
        answer = issues_report(rig.journal, max_issues=API_ISSUES, max_groups=API_GROUPS)
        assert (answer["total"], answer["truncated"]) == (1000, 0)
        assert len(json.dumps(answer).encode()) < MAX_FRAME_BYTES  # one control API frame
        assert issues_report(rig.journal, max_issues=10)["truncated"] == 990

        # The same failures again: counted, still three groups.
        await engine.sync_root(root, retry_errors=True)
        again = {g.kind: g for g in rig.journal.error_groups()}
        assert len(again) == 3 and again["quota"].count == 800
        assert again["quota"].first_seen == groups["quota"].first_seen

        # The hub takes the rows again, the files can be read: every group resolves.
        hub.healed, broken["on"] = True, False
        report = await engine.sync_root(root, retry_errors=True)
        assert report.complete, report.errors
        after = rig.journal.error_groups()
        assert [g.state for g in after] == [RESOLVED] * 3
        assert all(g.open_files == 0 and g.resolved_at for g in after)
        assert list_issues(rig.journal) == []
        # Each group went to the hub too, resolved.
        mirrored = {r["kind"]: r for r in await hub.list_errors()}
        assert {k: r["state"] for k, r in mirrored.items()} == dict.fromkeys(
            ("local", "permanent", "quota"), RESOLVED
        )
        assert mirrored["quota"]["occurrences"] == 800
    finally:
        engine.close()
        await hub.close()


async def test_a_group_resolves_only_when_all_of_its_files_sync(rig: Rig) -> None:
    docs = rig.folder()
    for n in range(3):
        write(docs / f"q{n}.txt", f"q{n}")
    hub = FailingHub(rig.tmp / "failing-hub")
    engine = SyncEngine(rig.journal, {"local": hub}, retry=FAST_RETRY)
    root = rig.add_root(docs)
    try:
        await engine.sync_root(root)
        (group,) = rig.journal.error_groups()
        assert group.open_files == 3
        (docs / "q0.txt").unlink()  # gone: no longer failing
        write(docs / "q1.txt", "q1 changed")  # still rejected
        await engine.sync_root(root, retry_errors=True)
        (group,) = rig.journal.error_groups()
        assert (group.state, group.open_files) == (OPEN, 2)
        rig.journal.resolve_group(group.id, 1.0)
        assert rig.journal.error_group(group.id).state == RESOLVED_BY_USER  # type: ignore[union-attr]
        await engine.sync_root(root, retry_errors=True)  # fails again: open again
        assert rig.journal.error_group(group.id).state == OPEN  # type: ignore[union-attr]
        hub.healed = True
        await engine.sync_root(root, retry_errors=True)
        healed = rig.journal.error_group(group.id)
        assert healed is not None and (healed.state, healed.open_files) == (RESOLVED, 0)
    finally:
        engine.close()
        await hub.close()


async def test_group_rows_survive_a_crash_between_failure_and_commit(tmp_path: Path) -> None:
    """The failure, its group and its membership are one transaction: a process killed
    before the commit leaves neither, after it leaves all three."""
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    root = journal.add_root(tmp_path, "local")
    with journal.transaction():
        journal.mark_seen(root.id, [("a.txt", 1, 1, 1)])
    from sync.journal import Failure

    journal._conn.execute("BEGIN IMMEDIATE")
    journal._in_tx = True
    journal.mark_error(root.id, "a.txt", "local", "a.txt: nope", 10, 1.0)
    journal.record_failures(root.id, [Failure("a.txt", "local", "a.txt: nope", "read")], 1.0)
    # Killed here: another connection sees nothing of it, and after a reopen neither.
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM error_groups").fetchone()[0] == 0
    other.close()
    journal._conn.close()
    reopened = Journal(path)
    assert reopened.error_groups() == []
    assert reopened.file(root.id, "a.txt").state == "seen"  # type: ignore[union-attr]
    reopened.close()


async def test_skipped_items_are_kept_and_cleared_when_they_become_syncable(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "real.txt", "real")
    os.symlink(docs / "real.txt", docs / "link.txt")
    os.mkfifo(docs / "pipe")
    bad = os.fsencode(docs) + b"/caf\xe9.txt"
    with open(bad, "wb") as f:
        f.write(b"latin-1 name")
    long_dir = docs / "/".join(["d" * 200] * 5)
    write(long_dir / ("x" * 100 + ".txt"), "deep")
    sock = socket.socket(socket.AF_UNIX)
    sock_path = docs / "s.sock"
    try:
        sock.bind(str(sock_path))
    except OSError:
        sock_path = None  # type: ignore[assignment]
    root = rig.add_root(docs)
    await rig.engine.sync_root(root)
    skipped = {rel: (kind, why) for _, rel, kind, why, _ in rig.journal.skipped(root.id)}
    assert skipped["link.txt"][0] == "symlink" and "symbolic link" in skipped["link.txt"][1]
    assert skipped["pipe"] == ("special", "skipped: a FIFO (named pipe)")
    assert [k for r, (k, _) in skipped.items() if r.startswith("caf")] == ["invalid_name"]
    assert [k for r, (k, _) in skipped.items() if r.startswith("ddd")] == ["path_too_long"]
    if sock_path is not None:
        assert skipped["s.sock"] == ("special", "skipped: a socket")
    sock.close()
    # Gone or syncable now: no longer listed, by a full pass or by one for the path.
    (docs / "link.txt").unlink()
    write(docs / "link.txt", "a file now")
    await rig.engine.sync_root(root, paths=["link.txt"])
    assert "link.txt" not in {r for _, r, *_ in rig.journal.skipped(root.id)}
    (docs / "pipe").unlink()
    await rig.engine.sync_root(root)
    left = {r for _, r, *_ in rig.journal.skipped(root.id)}
    assert "pipe" not in left and "link.txt" not in left and len(left) >= 2
    assert rig.journal.file(root.id, "link.txt").state == "synced"  # type: ignore[union-attr]


async def test_the_upload_policy_skips_before_any_byte_is_sent(rig: Rig) -> None:
    docs = rig.folder()
    write(docs / "ok.txt", "fine")
    write(docs / "tool.exe", b"MZ\x90\x00" + b"\0" * 100)
    write(docs / "renamed.txt", b"\x7fELF" + b"\0" * 100)  # an executable named .txt
    write(docs / "photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    rules = FolderRules(deny_extensions=("exe",), deny_types=("application/x-executable",))
    hub = LocalHub(rig.tmp / "policy-hub")
    engine = SyncEngine(
        rig.journal, {"local": hub}, retry=FAST_RETRY, folder_rules=lambda _r: rules
    )
    root = rig.add_root(docs)
    try:
        report = await engine.sync_root(root)
        assert report.uploaded == 2 and report.complete
        assert report.skipped["tool.exe"] == "skipped: .exe files are denied for this folder"
        assert "application/x-executable is denied" in report.skipped["renamed.txt"]
        kinds = {r: k for _, r, k, _, _ in rig.journal.skipped(root.id)}
        assert kinds == {"tool.exe": "type_not_allowed", "renamed.txt": "type_not_allowed"}
        with sqlite3.connect(hub.root / "hub.sqlite3") as db:
            names = {r[0] for r in db.execute("SELECT rel_path FROM hubsync_manifest")}
        assert names == {"ok.txt", "photo.png"}
    finally:
        engine.close()
        await hub.close()


def test_policy_rules() -> None:
    from sync.policy import BucketLimits

    assert sniff(b"%PDF-1.7", "x.bin") == "application/pdf"
    assert sniff(b"hello", "notes") == "text/plain"
    small = UploadPolicy(BucketLimits(file_size_limit=10))
    assert small.check("a.txt", 11, None) == (
        "too_large",
        "skipped: 11 bytes, larger than the bucket allows (10 bytes)",
    )
    assert small.check("a.txt", 10, None) is None
    images = UploadPolicy(BucketLimits(allowed_mime_types=("image/*",)))
    assert images.check("a.png", 1, b"\x89PNG\r\n\x1a\n") is None
    assert images.check("a.txt", 1, b"x") == (
        "type_not_allowed",
        "skipped: content type text/plain is not allowed by the bucket",
    )
    only_pdf = UploadPolicy(rules=FolderRules(allow_extensions=("pdf",)))
    assert only_pdf.check("a.pdf", 1, None) is None
    assert only_pdf.check("Makefile", 1, None) == (
        "type_not_allowed",
        "skipped: files without an extension are not in this folder's allow list",
    )


def test_ignore_rules_are_explained_with_the_rule_and_its_file(tmp_path: Path) -> None:
    from sync.issues import ignored_items
    from sync.journal import Root

    write(tmp_path / ".hubignore", "# build output\n*.log\n!keep.log\n")
    write(tmp_path / "a.log", "x")
    write(tmp_path / "keep.log", "x")
    write(tmp_path / "sub" / ".hubignore", "secret/\n")
    write(tmp_path / "sub" / "secret" / "k.txt", "x")
    write(tmp_path / "sub" / "b.log", "x")
    write(tmp_path / "~$lock.docx", "x")
    root = Root("r", tmp_path, "local", False, None)
    found = {i.path: (i.rule, i.rule_file) for i in ignored_items(root)}
    assert found == {
        "a.log": ("*.log", ".hubignore"),
        "sub/b.log": ("*.log", ".hubignore"),
        "sub/secret": ("secret/", "sub/.hubignore"),
        "~$lock.docx": ("~$*", "(built-in)"),
    }


def test_journal_reports_held_deletions_as_issues(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    root = journal.add_root(tmp_path, "local")
    with journal.transaction():
        journal.mark_synced(root.id, [("a.txt", 1, 1, 1, "0" * 64, 1, "k")], 1.0)
        journal.mark_held(root.id, ["a.txt"], 2.0)
    (issue,) = list_issues(journal)
    assert (issue.category, issue.kind, issue.path) == ("held", "deletion", "a.txt")
    assert "--confirm-deletes" in issue.reason
    journal.close()


def test_upload_lists_are_checked_when_loaded_and_when_set(tmp_path: Path) -> None:
    from agent.config import ConfigError, UploadConfig, load_config
    from agent.control.protocol import ControlError
    from agent.control.settings_api import merge_config
    from agent.platform.paths import resolve_paths

    paths = resolve_paths({"HUBSYNC_HOME": str(tmp_path)})
    paths.config_file.parent.mkdir(parents=True)
    pics = tmp_path / "pics"
    pics.mkdir()
    paths.config_file.write_text(
        '[upload]\ndeny_extensions = ["exe"]\n'
        f'[upload.folders."{pics}"]\nallow_types = ["image/*"]\ndeny_extensions = ["psd"]\n'
    )
    config = load_config(paths)
    rules = config.upload.rules_for(pics.resolve())
    assert rules.allow_types == ("image/*",) and rules.deny_extensions == ("exe", "psd")
    assert config.upload.rules_for(tmp_path).allow_types == ()
    for bad in ('deny_extensions = [".exe"]', 'allow_types = ["png"]', "deny_types = 3"):
        paths.config_file.write_text(f"[upload]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_config(paths)
    with pytest.raises(ControlError) as refused:
        merge_config(config, {"upload": {"deny_types": ["Not A Type"]}})
    assert "is not a content type" in refused.value.message
    assert UploadConfig().rules_for(tmp_path) == FolderRules()


async def test_a_failure_of_the_whole_pass_is_a_group_that_the_next_good_pass_resolves(
    rig: Rig,
) -> None:
    docs = rig.folder()
    write(docs / "a.txt", "a")
    root = rig.add_root(docs)
    rig.hub._db.execute("PRAGMA busy_timeout=50")
    other = sqlite3.connect(rig.hub.root / "hub.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        report = await rig.engine.sync_root(root)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert report.failure.kind == "transient"
    (group,) = rig.journal.error_groups()
    assert (group.operation, group.state, group.paths) == ("sync", OPEN, ["."])
    (issue,) = [i for i in list_issues(rig.journal) if i.path == "."]
    assert issue.category == "error" and issue.group == group.id
    report = await rig.engine.sync_root(root)
    assert report.complete
    assert rig.journal.error_group(group.id).state == RESOLVED  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["a [1]*.txt", "sub/#x!.md", "trailing  ", "back\\slash"])
def test_ignore_this_adds_a_rule_matching_only_that_path(tmp_path: Path, name: str) -> None:
    import pathspec

    from agent.control.issues_api import ignore_path
    from sync.journal import Root

    root = Root("r", tmp_path, "local", False, None)
    rule = ignore_path(root, name)
    assert ignore_path(root, name) == rule  # once only
    lines = (tmp_path / ".hubignore").read_text().splitlines()
    assert lines == [rule]
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    assert spec.match_file(name) and not spec.match_file("other/" + name)
    with pytest.raises(ValueError):
        ignore_path(root, "../outside")
