"""The Supabase remote against the Supabase test server, over real HTTP.

Real supabase-py, storage3, postgrest, supabase_auth and tuspy talk to
tests/supabase_server; assertions look at what the server stored and at its
request log.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest

from sync.errors import AuthError, FileChangedError, PermanentError, QuotaError, TransientError
from sync.keys import sha_from_key
from sync.remotes.base import BUCKET_FILES, ManifestEntry, Operation, Remote
from sync.remotes.supabase import MemoryResumeStore, SupabaseRemote
from sync.remotes.supabase.session import REQUEST_RETRY, SupabaseSettings
from tests.fixtures.supabase import SupabaseUser
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in, urandom_file, write_file
from tests.supabase_server import SupabaseTestServer

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]

MiB = 1024 * 1024


def entry(
    remote: SupabaseRemote, relpath: str, sha: str, key: str, size: int, version: int = 1
) -> ManifestEntry:
    return ManifestEntry(
        device="dev-1",
        root_id="root-1",
        root_path="/home/alice/Docs",
        relpath=relpath,
        sha256=sha,
        size=size,
        mtime_ns=1_700_000_000_000_000_000,
        version=version,
        key=key,
        content_type="text/plain",
    )


async def test_round_trip_and_rows(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    assert isinstance(hub_remote, Remote)
    data = b"hello hub\n" * 1000
    sha = write_file(tmp_path / "notes.txt", data)

    key = await hub_remote.put_blob(
        tmp_path / "notes.txt", sha, len(data), "notes.txt", "text/plain"
    )

    assert key == f"{hub_remote.user_id}/{sha[:2]}/{sha}/notes.txt"
    stored = supabase_server.storage.get(BUCKET_FILES, key)
    assert stored is not None and bytes(stored.data) == data
    assert stored.content_type.startswith("text/plain")
    rows = supabase_server.rest.snapshot("file_metadata")
    assert [
        {
            k: r[k]
            for k in (
                "file_id",
                "path",
                "bucket_id",
                "filename",
                "file_size",
                "content_type",
                "sha256_hash",
                "user_id",
            )
        }
        for r in rows
    ] == [
        {
            "file_id": key,
            "path": key,
            "bucket_id": BUCKET_FILES,
            "filename": "notes.txt",
            "file_size": len(data),
            "content_type": "text/plain",
            "sha256_hash": sha,
            "user_id": hub_remote.user_id,
        }
    ]

    dest = tmp_path / "back.txt"
    await hub_remote.get_blob(key, sha, dest)
    assert dest.read_bytes() == data
    assert await hub_remote.ping() > 0
    url = await hub_remote.signed_url(key, 60)
    assert "/object/sign/" in url


async def test_download_with_wrong_hash_is_an_integrity_error(
    hub_remote: SupabaseRemote, tmp_path: Path
) -> None:
    sha = write_file(tmp_path / "a.bin", b"abc")
    key = await hub_remote.put_blob(tmp_path / "a.bin", sha, 3, "a.bin", "application/octet-stream")
    from sync.errors import IntegrityError

    with pytest.raises(IntegrityError):
        await hub_remote.get_blob(key, "0" * 64, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


NAMES = [
    "my report 2024.txt",
    "résumé été.pdf",
    "日本語のファイル.md",
    "party 🎉 photo.jpg",
    "hash#tag.txt",
    "100% done.txt",
    "what?.txt",
    "back\\slash.txt",
    "ordinary (copy) [1] {x}.txt",
]


async def test_awkward_names_make_valid_keys_and_sync(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    entries = []
    for i, name in enumerate(NAMES):
        data = f"content {i} of {name}".encode()
        src = tmp_path / f"src{i}"
        sha = write_file(src, data)
        key = await hub_remote.put_blob(src, sha, len(data), name, "text/plain")
        assert sha_from_key(key) == sha
        stored = supabase_server.storage.get(BUCKET_FILES, key)
        assert stored is not None and bytes(stored.data) == data
        out = tmp_path / f"out{i}"
        await hub_remote.get_blob(key, sha, out)
        assert out.read_bytes() == data
        entries.append(entry(hub_remote, f"dir with space/{name}", sha, key, len(data)))

    await hub_remote.record(entries)

    manifest = supabase_server.rest.snapshot("hubsync_manifest")
    assert sorted(r["rel_path"] for r in manifest) == sorted(e.relpath for e in entries)
    names = {r["filename"] for r in supabase_server.rest.snapshot("file_metadata")}
    assert names == set(NAMES)
    history = await hub_remote.history("dev-1", "root-1", f"dir with space/{NAMES[3]}")
    assert [h.relpath for h in history] == [f"dir with space/{NAMES[3]}"]
    assert history[0].key == entries[3].key


async def test_equal_content_is_uploaded_once(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    data = os.urandom(50_000)
    sha = write_file(tmp_path / "one.bin", data)
    write_file(tmp_path / "two.bin", data)

    assert await hub_remote.find_blobs([sha]) == {}
    key = await hub_remote.put_blob(tmp_path / "one.bin", sha, len(data), "one.bin", "image/png")
    found = await hub_remote.find_blobs([sha, "f" * 64])
    assert found == {sha: key}

    uploads = [
        e
        for e in supabase_server.log.entries(prefix=f"/storage/v1/object/{BUCKET_FILES}/")
        if e.method in ("POST", "PUT") and sha in e.path
    ]
    assert len(uploads) == 1


async def test_find_blobs_is_one_query_per_batch_and_probes_storage_without_rows(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    sha = write_file(tmp_path / "x", b"stored without a row")
    key = await hub_remote.put_blob(tmp_path / "x", sha, 20, "x.txt", "text/plain")
    supabase_server.rest.clear("file_metadata")
    supabase_server.log.clear()
    unknown = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(450)]
    hub_remote.probe_limit = 500

    found = await hub_remote.find_blobs([*unknown, sha])

    assert found == {sha: key}
    selects = supabase_server.log.entries("GET", "/rest/v1/file_metadata")
    assert len(selects) == 5  # 451 hashes in batches of 100


async def test_concurrent_uploads_share_metadata_requests(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    files = []
    for i in range(40):
        data = f"file {i}".encode()
        files.append((tmp_path / f"f{i}", write_file(tmp_path / f"f{i}", data), len(data)))
    supabase_server.faults.add_latency(0.05, prefix="/rest/v1/")  # keep a write in flight

    keys = await asyncio.gather(
        *(hub_remote.put_blob(p, sha, n, p.name, "text/plain") for p, sha, n in files)
    )

    rows = supabase_server.rest.snapshot("file_metadata")
    assert sorted(r["file_id"] for r in rows) == sorted(keys)
    writes = supabase_server.log.entries("POST", "/rest/v1/file_metadata")
    assert len(writes) <= len(files) // 4


async def test_repeated_rows_in_one_batch_are_merged(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    sha = write_file(tmp_path / "same.txt", b"same content, same name")
    supabase_server.faults.add_latency(0.05, prefix="/rest/v1/")
    keys = await asyncio.gather(
        *(
            hub_remote.put_blob(tmp_path / "same.txt", sha, 23, "same.txt", "text/plain")
            for _ in range(4)
        )
    )
    assert len(set(keys)) == 1
    first = entry(hub_remote, "a/same.txt", sha, keys[0], 23)
    await hub_remote.record([first, first, entry(hub_remote, "b/same.txt", sha, keys[0], 23)])

    assert len(supabase_server.rest.snapshot("file_metadata")) == 1
    assert len(supabase_server.rest.snapshot("hubsync_manifest")) == 2


async def test_lost_responses_and_an_exai_row_add_no_duplicate_rows(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    """file_metadata has no unique key (EXAI adds a row per dedup hit), so HubSync's
    own rows must not multiply: not when a response is lost after the insert took
    effect, not when EXAI already recorded the object."""
    sha = write_file(tmp_path / "a.txt", b"recorded once")
    supabase_server.faults.drop(2, after_handling=True, prefix="/rest/v1/file_", methods=("POST",))
    key = await hub_remote.put_blob(tmp_path / "a.txt", sha, 13, "a.txt", "text/plain")
    ops = [Operation("upload", "completed", key=key, sha256=sha, bytes=13)]
    await hub_remote.log_operations(ops)
    assert supabase_server.faults.injected == 2
    await hub_remote.record([entry(hub_remote, "a.txt", sha, key, 13)])
    assert [r["path"] for r in supabase_server.rest.snapshot("file_metadata")] == [key]
    assert len(supabase_server.rest.snapshot("file_operations")) == 1

    other = write_file(tmp_path / "b.txt", b"uploaded by EXAI first")
    exai_key = f"{hub_remote.user_id}/{other[:2]}/{other}/b.txt"
    await (
        hub_remote.session.client.table("file_metadata")
        .insert(
            {
                "file_id": exai_key,
                "user_id": hub_remote.user_id,
                "filename": "b.txt",
                "file_size": 22,
                "bucket_id": BUCKET_FILES,
                "path": exai_key,
                "sha256_hash": other,
            }
        )
        .execute()
    )
    await hub_remote.record([entry(hub_remote, "b.txt", other, exai_key, 22)])
    assert sorted(r["path"] for r in supabase_server.rest.snapshot("file_metadata")) == sorted(
        [key, exai_key]
    )


async def test_a_hub_without_the_schema_view_is_taken_for_hubsyncs_first_tables(
    hub_remote: SupabaseRemote,
    supabase_server: SupabaseTestServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Migrations older than the hubsync_schema view made text file ids and timing columns."""
    supabase_server.rest.execute("DROP VIEW public.hubsync_schema")
    sha = write_file(tmp_path / "old.txt", b"an older hub")
    key = await hub_remote.put_blob(tmp_path / "old.txt", sha, 12, "old.txt", "text/plain")
    await hub_remote.log_operations(
        [Operation("upload", "completed", key=key, sha256=sha, bytes=12, duration_ms=7)]
    )
    assert [r["file_id"] for r in supabase_server.rest.snapshot("file_metadata")] == [key]
    [op] = supabase_server.rest.snapshot("file_operations")
    assert (op["file_id"], op["bytes"], op["duration_ms"]) == (key, 12, 7)
    assert "hubsync supabase schema" in caplog.text


async def test_large_file_goes_through_tus_in_6_mib_chunks(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    size = 20 * MiB + 123
    sha = urandom_file(tmp_path / "big.bin", size)
    moved: list[int] = []

    key = await hub_remote.put_blob(
        tmp_path / "big.bin", sha, size, "big.bin", "application/octet-stream", moved.append
    )

    patches = supabase_server.log.entries("PATCH", "/storage/v1/upload/resumable/")
    assert [p.bytes_in for p in patches] == [6 * MiB, 6 * MiB, 6 * MiB, 2 * MiB + 123]
    assert sum(moved) == size
    stored = supabase_server.storage.get(BUCKET_FILES, key)
    assert stored is not None and hashlib.sha256(bytes(stored.data)).hexdigest() == sha
    assert hub_remote.resume_store.get_item(f"tus:{BUCKET_FILES}/{key}:{size}") is None
    out = tmp_path / "out.bin"
    await hub_remote.get_blob(key, sha, out)
    assert out.stat().st_size == size


async def test_a_chunk_whose_answer_was_lost_is_not_sent_twice(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    size = 20 * MiB
    sha = urandom_file(tmp_path / "big.bin", size)
    supabase_server.faults.drop(
        1, after_handling=True, prefix="/storage/v1/upload/resumable/", methods=("PATCH",)
    )
    moved: list[int] = []

    key = await hub_remote.put_blob(
        tmp_path / "big.bin", sha, size, "big.bin", "video/mp4", moved.append
    )

    stored = supabase_server.storage.get(BUCKET_FILES, key)
    assert stored is not None and hashlib.sha256(bytes(stored.data)).hexdigest() == sha
    patches = supabase_server.log.entries("PATCH", "/storage/v1/upload/resumable/")
    assert sum(p.bytes_in for p in patches) <= size + 6 * MiB  # at most the resent probe
    assert [p.status for p in patches].count(409) <= 1
    assert sum(moved) == size


async def test_tus_resumes_after_a_restart(
    hub_settings: SupabaseSettings,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
    tmp_path: Path,
) -> None:
    size = 20 * MiB
    sha = urandom_file(tmp_path / "big.bin", size)
    store = MemoryResumeStore()  # stands in for the journal that survives the restart
    first = SupabaseRemote(
        await sign_in(hub_settings, supabase_user, memory_keyring), resume_store=store
    )
    sent = 0
    two_chunks = asyncio.Event()

    def progress(n: int) -> None:
        nonlocal sent
        sent += n
        if sent >= 12 * MiB:
            two_chunks.set()

    task = asyncio.create_task(
        first.put_blob(tmp_path / "big.bin", sha, size, "big.bin", "video/mp4", progress)
    )
    await two_chunks.wait()
    task.cancel()  # the process dies here
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.close()
    assert store.items, "the upload URL was kept for the restart"
    mark = len(supabase_server.log)

    second = SupabaseRemote(
        await sign_in(hub_settings, supabase_user, memory_keyring), resume_store=store
    )
    try:
        key = await second.put_blob(tmp_path / "big.bin", sha, size, "big.bin", "video/mp4")
    finally:
        await second.close()

    after = supabase_server.log.entries()[mark:]
    resent = sum(e.bytes_in for e in after if e.method == "PATCH")
    print(f"{size / MiB:.0f} MiB: {resent / size:.0%} sent again after the kill")
    assert resent < 0.6 * size
    assert any(e.method == "HEAD" and "/upload/resumable/" in e.path for e in after)
    stored = supabase_server.storage.get(BUCKET_FILES, key)
    assert stored is not None and hashlib.sha256(bytes(stored.data)).hexdigest() == sha
    assert not store.items


async def test_a_file_changed_during_tus_never_completes(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    size = 13 * MiB
    src = tmp_path / "big.bin"
    sha = urandom_file(src, size)

    def scribble(n: int) -> None:
        with open(src, "r+b") as handle:  # change the tail while the head is being sent
            handle.seek(size - 10)
            handle.write(b"X" * 10)

    with pytest.raises(FileChangedError):
        await hub_remote.put_blob(src, sha, size, "big.bin", "video/mp4", scribble)
    assert supabase_server.storage.keys(BUCKET_FILES) == []
    assert isinstance(hub_remote.resume_store, MemoryResumeStore)
    assert hub_remote.resume_store.items == {}  # the spoiled upload is not resumed later


async def test_small_file_changed_since_hashing(hub_remote: SupabaseRemote, tmp_path: Path) -> None:
    sha = write_file(tmp_path / "a.txt", b"old")
    (tmp_path / "a.txt").write_bytes(b"new")
    with pytest.raises(FileChangedError):
        await hub_remote.put_blob(tmp_path / "a.txt", sha, 3, "a.txt", "text/plain")


async def test_bucket_limits_are_permanent_per_file_and_not_retried(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    bucket = supabase_server.storage.bucket(BUCKET_FILES)
    bucket.file_size_limit = 1000
    bucket.allowed_mime_types = ["text/plain", "image/*"]
    big = os.urandom(5000)
    sha_big = write_file(tmp_path / "big.txt", big)
    sha_exe = write_file(tmp_path / "tool.exe", b"MZ small")

    with pytest.raises(QuotaError):
        await hub_remote.put_blob(tmp_path / "big.txt", sha_big, 5000, "big.txt", "text/plain")
    with pytest.raises(PermanentError) as rejected:
        await hub_remote.put_blob(
            tmp_path / "tool.exe", sha_exe, 8, "tool.exe", "application/x-msdownload"
        )
    assert not isinstance(rejected.value, QuotaError)
    assert "content type" in rejected.value.message
    attempts = [
        e
        for e in supabase_server.log.entries(prefix="/storage/v1/object/")
        if e.method in ("POST", "PUT")
    ]
    assert len(attempts) == 2  # one each: the remote did not retry


async def test_expired_access_token_is_refreshed_silently(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    data = b"x" * 100
    sha = write_file(tmp_path / "a", data)
    supabase_server.auth.expire_access_tokens()

    key = await hub_remote.put_blob(tmp_path / "a", sha, 100, "a.txt", "text/plain")
    supabase_server.auth.expire_access_tokens()
    await hub_remote.record([entry(hub_remote, "a.txt", sha, key, 100)])
    size = 7 * MiB
    big_sha = urandom_file(tmp_path / "big", size)

    def expire_between_chunks(_: int) -> None:
        supabase_server.auth.expire_access_tokens()

    await hub_remote.put_blob(
        tmp_path / "big", big_sha, size, "big.bin", "video/mp4", expire_between_chunks
    )

    refreshes = [
        e
        for e in supabase_server.log.entries("POST", "/auth/v1/token")
        if "refresh_token" in e.query
    ]
    # small upload, record, second TUS chunk, size check after the last chunk
    assert len(refreshes) == 4
    assert all(e.status == 200 for e in refreshes)
    assert len(supabase_server.rest.snapshot("hubsync_manifest")) == 1


async def test_revoked_session_asks_to_sign_in_again(
    hub_remote: SupabaseRemote,
    supabase_server: SupabaseTestServer,
    supabase_user: SupabaseUser,
    tmp_path: Path,
) -> None:
    sha = write_file(tmp_path / "a", b"abc")
    supabase_server.auth.revoke_refresh_tokens(supabase_user.uid)
    supabase_server.auth.expire_access_tokens()

    with pytest.raises(AuthError, match="sign in again"):
        await hub_remote.put_blob(tmp_path / "a", sha, 3, "a.txt", "text/plain")
    with pytest.raises(AuthError, match="sign in again"):
        await hub_remote.ping()
    assert supabase_server.storage.keys(BUCKET_FILES) == []


async def test_operations_are_logged_in_one_batch(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer
) -> None:
    ops = [
        Operation("upload", "completed", key=f"k{i}", sha256="a" * 64, bytes=i, duration_ms=i)
        for i in range(30)
    ] + [Operation("download", "failed", error="boom")]
    supabase_server.log.clear()

    await hub_remote.log_operations(ops)

    rows = supabase_server.rest.snapshot("file_operations")
    assert len(rows) == 31
    assert {r["operation_type"] for r in rows} == {"upload", "download"}
    assert [r["error_message"] for r in rows if r["status"] == "failed"] == ["boom"]
    assert len(supabase_server.log.entries("POST", "/rest/v1/file_operations")) == 1


async def test_rate_limit_and_retry_after(
    hub_settings: SupabaseSettings,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
) -> None:
    from dataclasses import replace

    settings = replace(hub_settings, requests_per_second=20)
    remote = SupabaseRemote(await sign_in(settings, supabase_user, memory_keyring))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(remote.ping() for _ in range(40)))
        assert loop.time() - started >= 0.9  # 40 requests at 20/s with a burst of 20

        supabase_server.faults.throttle(1, retry_after=1, prefix="/rest/v1/")
        started = loop.time()
        await remote.ping()  # answered 429, then retried after Retry-After
        assert loop.time() - started >= 0.8
        assert supabase_server.faults.injected == 1
    finally:
        await remote.close()


async def test_many_uploads_with_injected_faults_leave_nothing_behind(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    files = []
    for i in range(120):
        data = os.urandom(2000 + i)
        files.append((tmp_path / f"f{i}", write_file(tmp_path / f"f{i}", data), len(data)))
    faults = supabase_server.faults
    faults.fail(rate=0.07, status=503)
    faults.drop(rate=0.05)
    faults.drop(rate=0.04, after_handling=True)
    faults.throttle(rate=0.04, retry_after=0)
    sem = asyncio.Semaphore(8)

    async def push(path: Path, sha: str, size: int) -> str:
        async with sem:
            for _ in range(40):
                try:
                    return await hub_remote.put_blob(path, sha, size, path.name, "text/plain")
                except TransientError:
                    await asyncio.sleep(0.01)
            raise AssertionError("gave up")

    keys = await asyncio.gather(*(push(*f) for f in files))

    assert faults.injected > 20  # (most are retried inside the remote, per request)
    for (_, sha, _), key in zip(files, keys, strict=True):
        stored = supabase_server.storage.get(BUCKET_FILES, key)
        assert stored is not None and hashlib.sha256(bytes(stored.data)).hexdigest() == sha
    pool = hub_remote.session.http._transport._pool  # type: ignore[attr-defined]
    await hub_remote.close()
    assert pool.connections == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


LIVE = {
    name: os.environ.get(f"HUBSYNC_TEST_SUPABASE_{name}", "")
    for name in ("URL", "ANON_KEY", "EMAIL", "PASSWORD")
}


@pytest.mark.supabase_live
@pytest.mark.skipif(
    not all(LIVE.values()),
    reason="set HUBSYNC_TEST_SUPABASE_URL, _ANON_KEY, _EMAIL and _PASSWORD to run against a "
    "real Supabase project",
)
async def test_contract_against_a_real_project(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    settings = SupabaseSettings(url=LIVE["URL"], anon_key=LIVE["ANON_KEY"])
    user = SupabaseUser(LIVE["EMAIL"], LIVE["PASSWORD"], "")
    remote = SupabaseRemote(await sign_in(settings, user, memory_keyring))
    try:
        data = os.urandom(4096)
        name = "contract 🎉 #%?.bin"
        sha = write_file(tmp_path / "c.bin", data)
        key = await remote.put_blob(
            tmp_path / "c.bin", sha, len(data), name, "application/octet-stream"
        )
        assert (await remote.find_blobs([sha])) == {sha: key}
        await remote.get_blob(key, sha, tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data
        await remote.record([entry(remote, f"contract/{name}", sha, key, len(data))])
        assert await remote.history("dev-1", "root-1", f"contract/{name}")
        await remote.ping()
    finally:
        await remote.close()


@pytest.mark.slow
async def test_200_mb_upload_through_tus(
    tmp_path: Path, memory_keyring: MemoryKeyring, supabase_database: str
) -> None:
    with SupabaseTestServer(upload_limit=1024**3, database_url=supabase_database) as server:
        from tests.fixtures.supabase import make_user

        user = make_user(server, "carol")
        settings = SupabaseSettings(url=server.url, anon_key=server.anon_key, requests_per_second=0)
        remote = SupabaseRemote(await sign_in(settings, user, memory_keyring))
        try:
            size = 200 * MiB
            sha = urandom_file(tmp_path / "huge.bin", size)
            key = await remote.put_blob(tmp_path / "huge.bin", sha, size, "huge.bin", "video/mp4")
            stored = server.storage.get(BUCKET_FILES, key)
            assert stored is not None and len(stored.data) == size
        finally:
            await remote.close()


KILLED_UPLOADER = """
import asyncio, sys
from pathlib import Path
from supabase_auth import AsyncMemoryStorage
from sync.journal import Journal, JournalResumeStore
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import SupabaseSession, SupabaseSettings

url, anon, email, password, journal, source, sha, size = sys.argv[1:]

async def main():
    settings = SupabaseSettings(url, anon, requests_per_second=0)
    session = await SupabaseSession.sign_in(settings, AsyncMemoryStorage(), email, password)
    remote = SupabaseRemote(session, resume_store=JournalResumeStore(Journal(Path(journal))))
    await remote.put_blob(Path(source), sha, int(size), "big.bin", "video/mp4")

asyncio.run(main())
"""


@pytest.mark.parametrize(
    "size", [30 * MiB, pytest.param(200 * MiB, marks=pytest.mark.slow, id="200MiB")]
)
async def test_tus_resumes_after_kill_9_with_the_journal(
    hub_settings: SupabaseSettings,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
    tmp_path: Path,
    size: int,
) -> None:
    from sync.journal import Journal, JournalResumeStore

    supabase_server.storage.global_limit = max(supabase_server.storage.global_limit, 2 * size)
    source = tmp_path / "big.bin"
    sha = urandom_file(source, size)
    journal_path = tmp_path / "journal.sqlite3"
    supabase_server.faults.add_latency(0.2, prefix="/storage/v1/upload/resumable/")
    args = [supabase_server.url, supabase_server.anon_key, supabase_user.email]
    args += [supabase_user.password, str(journal_path), str(source), sha, str(size)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_UPLOADER, *args, cwd=Path(__file__).parent.parent
    )
    try:
        for _ in range(300):
            done = supabase_server.log.entries("PATCH", "/storage/v1/upload/resumable/", status=204)
            if len(done) >= max(3, size // (2 * 6 * MiB)):  # about half the file is sent
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the child never sent three chunks")
    finally:
        child.kill()  # SIGKILL: no cleanup of any kind in the child
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    supabase_server.faults.clear()
    mark = len(supabase_server.log)

    journal = Journal(journal_path)
    remote = SupabaseRemote(
        await sign_in(hub_settings, supabase_user, memory_keyring),
        resume_store=JournalResumeStore(journal),
    )
    try:
        for _ in range(20):  # what the engine's transfer layer does with TransientError
            try:
                key = await remote.put_blob(source, sha, size, "big.bin", "video/mp4")
                break
            except TransientError as exc:
                # e.g. 409 while the server still holds the dead child's request
                await asyncio.sleep(min(exc.retry_after or 0.1, 0.3))
        else:
            raise AssertionError("never resumed")
    finally:
        await remote.close()
        journal.close()

    after = supabase_server.log.entries()[mark:]
    resent = sum(e.bytes_in for e in after if e.method == "PATCH")
    print(f"{size / MiB:.0f} MiB: {resent / size:.0%} sent again after the kill")
    assert resent < 0.6 * size
    stored = supabase_server.storage.get(BUCKET_FILES, key)
    assert stored is not None and hashlib.sha256(bytes(stored.data)).hexdigest() == sha


async def test_a_hanging_request_times_out_as_transient(
    hub_settings: SupabaseSettings,
    supabase_user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    supabase_server: SupabaseTestServer,
) -> None:
    from dataclasses import replace

    timeout = 0.3
    settings = replace(hub_settings, timeout=timeout)
    remote = SupabaseRemote(await sign_in(settings, supabase_user, memory_keyring))
    try:
        supabase_server.faults.add_latency(0.8, prefix="/rest/v1/")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransientError, match="timed out"):
            await remote.ping()
        attempts = REQUEST_RETRY.attempts  # each attempt gives up after the timeout
        assert loop.time() - started < attempts * timeout + REQUEST_RETRY.wait_max * attempts
        supabase_server.faults.clear()
        await remote.ping()  # the pool recovers: the stuck connections were discarded
        await asyncio.sleep(0.9)  # let the server finish the abandoned requests before it stops
    finally:
        await remote.close()
