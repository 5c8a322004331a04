"""The Storage contract HubSync relies on, asserted on both servers.

One parametrized fixture gives, for the test server and for the real Storage
server (behind the test server's gateway mode), two signed-in users with a
supabase-py client each and the product's :class:`SupabaseRemote` for the
first. The assertions are the same for both; where the product has a code
path (upload, lookups, TUS resume, hash-checked download, signed URLs) the
test goes through it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from storage3.exceptions import StorageApiError
from supabase import Client, ClientOptions, create_client

from sync.errors import IntegrityError, TransientError
from sync.keys import object_key
from sync.remotes.base import BUCKET_FILES
from sync.remotes.supabase import MemoryResumeStore, SupabaseRemote
from sync.remotes.supabase.session import TUS_CHUNK, SupabaseSettings
from sync.remotes.supabase.tus import resume_fingerprint
from tests.fixtures.real_storage import start_real_gateway
from tests.fixtures.supabase import SupabaseUser, make_user
from tests.fixtures.supabase_remote import MemoryKeyring, sign_in, urandom_file, write_file
from tests.supabase_server import SupabaseTestServer

MiB = 1024 * 1024
# Every character class reference/supabase.md lists as allowed in a key.
ALLOWED_KEY_CHARACTERS = "AZaz09_!.*'() &$=@;:+,?-"
REFUSED_KEY_CHARACTERS = ("é", "🎉", "%", "#", "[", "{", "\\", "^", "~", "<", "|", '"', "`")


@dataclass
class Hub:
    server: SupabaseTestServer
    alice: SupabaseUser
    bob: SupabaseUser
    client_a: Client
    client_b: Client
    remote: SupabaseRemote
    resume_store: MemoryResumeStore

    @property
    def settings(self) -> SupabaseSettings:
        return self.remote.session.settings


@pytest.fixture(params=["test-server", "real-server"])
def contract_server(request: pytest.FixtureRequest) -> Iterator[SupabaseTestServer]:
    if request.param == "real-server":
        server = start_real_gateway(request.getfixturevalue("real_storage"))
    else:
        server = SupabaseTestServer(seed=7).start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: SupabaseTestServer, user: SupabaseUser, http: httpx.Client) -> Client:
    options = ClientOptions(httpx_client=http, auto_refresh_token=False)
    client = create_client(server.url, server.anon_key, options)
    client.auth.sign_in_with_password({"email": user.email, "password": user.password})
    return client


@pytest.fixture
async def hub(
    contract_server: SupabaseTestServer,
    memory_keyring: MemoryKeyring,
) -> AsyncIterator[Hub]:
    alice, bob = make_user(contract_server, "alice"), make_user(contract_server, "bob")
    settings = SupabaseSettings(
        url=contract_server.url, anon_key=contract_server.anon_key, requests_per_second=0
    )
    store = MemoryResumeStore()
    remote = SupabaseRemote(await sign_in(settings, alice, memory_keyring), resume_store=store)
    with httpx.Client(timeout=30) as http:
        try:
            yield Hub(
                contract_server,
                alice,
                bob,
                _client(contract_server, alice, http),
                _client(contract_server, bob, http),
                remote,
                store,
            )
        finally:
            await remote.close()


async def test_uploads_are_found_by_batch_lookup_of_their_hashes(hub: Hub, tmp_path: Path) -> None:
    shas = {}
    for n in range(5):
        data = os.urandom(1000 + n)
        sha = write_file(tmp_path / f"f{n}.bin", data)
        shas[sha] = await hub.remote.put_blob(
            tmp_path / f"f{n}.bin", sha, len(data), f"f{n}.bin", "application/octet-stream"
        )
    # One stored without a metadata row (a crash between blob and row): found by probing.
    orphan = os.urandom(500)
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    orphan_key = object_key(hub.alice.uid, orphan_sha, "orphan.bin")
    hub.client_a.storage.from_(BUCKET_FILES).upload(
        orphan_key, orphan, {"content-type": "application/octet-stream"}
    )
    unknown = hashlib.sha256(b"never uploaded").hexdigest()

    found = await hub.remote.find_blobs([*shas, orphan_sha, unknown])

    assert found == {**shas, orphan_sha: orphan_key}


def test_x_upsert_replaces_and_a_plain_upload_is_key_already_exists(hub: Hub) -> None:
    bucket = hub.client_a.storage.from_(BUCKET_FILES)
    key = f"{hub.alice.uid}/up/sert.txt"
    bucket.upload(key, b"one", {"content-type": "text/plain"})
    with pytest.raises(StorageApiError) as refused:
        bucket.upload(key, b"two", {"content-type": "text/plain"})
    assert (refused.value.status, refused.value.code) == ("409", "Duplicate")
    assert bucket.download(key) == b"one"
    bucket.upload(key, b"two", {"content-type": "text/plain", "x-upsert": "true"})
    assert bucket.download(key) == b"two"


def _tus_metadata(key: str) -> str:
    pairs = (("bucketName", BUCKET_FILES), ("objectName", key))
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs)


def _tus_headers(hub: Hub, **extra: str) -> dict[str, str]:
    return {**hub.remote.session.headers(), "Tus-Resumable": "1.0.0", **extra}


def test_tus_create_patch_head_in_chunks_of_any_size(hub: Hub) -> None:
    data = os.urandom(3 * 100_000 + 17)
    key = f"{hub.alice.uid}/tus/odd.bin"
    with httpx.Client(timeout=30) as http:
        created = http.post(
            f"{hub.settings.storage_url}/upload/resumable",
            headers=_tus_headers(
                hub, **{"Upload-Length": str(len(data)), "Upload-Metadata": _tus_metadata(key)}
            ),
        )
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        for offset in range(0, len(data), 100_000):
            head = http.head(url, headers=_tus_headers(hub))
            assert (head.status_code, head.headers["Upload-Offset"]) == (200, str(offset))
            assert head.headers["Upload-Length"] == str(len(data))
            patch = http.patch(
                url,
                content=data[offset : offset + 100_000],
                headers=_tus_headers(
                    hub,
                    **{
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                ),
            )
            assert patch.status_code == 204, patch.text
    assert hub.client_a.storage.from_(BUCKET_FILES).download(key) == data


KILLED_UPLOADER = """
import sys, time, httpx
url, token, anon, offset, sent = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
data = open(sys.argv[6], "rb").read()[offset:]

def body():
    yield data[:sent]
    print("sent", flush=True)  # httpx asked for more: the first piece is in the kernel
    time.sleep(3600)
    yield data[sent:]

headers = {"Authorization": "Bearer " + token, "apikey": anon, "Tus-Resumable": "1.0.0",
           "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
           "Content-Length": str(len(data))}
httpx.patch(url, content=body(), headers=headers, timeout=3600)
"""


async def _head_offset(hub: Hub, url: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(200):
            head = await http.head(url, headers=_tus_headers(hub))
            if head.status_code == 200:
                return int(head.headers["Upload-Offset"])
            await asyncio.sleep(0.05)
    raise AssertionError(f"HEAD never answered 200 (last {head.status_code})")


async def _kill_mid_chunk(hub: Hub, url: str, source: Path, offset: int, sent: int) -> None:
    """A process PATCHes from ``offset``, gets ``sent`` bytes out, and is killed -9."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_UPLOADER,
        url,
        hub.remote.session.authorization.removeprefix("Bearer "),
        hub.server.anon_key,
        str(offset),
        str(sent),
        str(source),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line.strip() == b"sent"
        await asyncio.sleep(0.3)  # let the bytes reach the server
    finally:
        child.kill()
        await child.wait()
    assert child.returncode == -signal.SIGKILL


async def test_tus_resumes_after_kill_9_at_offsets_off_the_chunk_grid(
    hub: Hub, tmp_path: Path
) -> None:
    size = TUS_CHUNK + 2 * MiB + 333
    source = tmp_path / "big.bin"
    sha = urandom_file(source, size)
    key = object_key(hub.alice.uid, sha, "big.bin")
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{hub.settings.storage_url}/upload/resumable",
            headers=_tus_headers(
                hub,
                **{
                    "Upload-Length": str(size),
                    "Upload-Metadata": _tus_metadata(key),
                    "x-upsert": "true",
                },
            ),
        )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    first = MiB + 12345
    await _kill_mid_chunk(hub, url, source, 0, first)
    assert await _head_offset(hub, url) == first
    second = first + 777_777
    await _kill_mid_chunk(hub, url, source, first, 777_777)
    assert await _head_offset(hub, url) == second
    assert second % TUS_CHUNK and second % (256 * 1024)

    # The product picks the upload up where the server says it is.
    hub.resume_store.set_item(
        resume_fingerprint(BUCKET_FILES, key, size), json.dumps({"url": url, "offset": 0})
    )
    mark = len(hub.server.log)
    for _ in range(40):
        try:
            assert await hub.remote.put_blob(source, sha, size, "big.bin", "video/mp4") == key
            break
        except TransientError as exc:  # e.g. 409/423 while the server drops the dead request
            await asyncio.sleep(min(exc.retry_after or 0.2, 0.5))
    else:
        raise AssertionError("never resumed")
    resent = sum(e.bytes_in for e in hub.server.log.entries()[mark:] if e.method == "PATCH")
    assert resent == size - second
    back = tmp_path / "back.bin"
    await hub.remote.get_blob(key, sha, back)
    assert back.read_bytes() == source.read_bytes()


async def test_download_checks_the_hash(hub: Hub, tmp_path: Path) -> None:
    data = os.urandom(70_000)
    sha = write_file(tmp_path / "d.bin", data)
    key = await hub.remote.put_blob(tmp_path / "d.bin", sha, len(data), "d.bin", "image/png")
    await hub.remote.get_blob(key, sha, tmp_path / "ok.bin")
    assert (tmp_path / "ok.bin").read_bytes() == data
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(IntegrityError):
        await hub.remote.get_blob(key, wrong, tmp_path / "bad.bin")
    assert not (tmp_path / "bad.bin").exists()


def test_list_with_prefix_shows_files_and_folders(hub: Hub) -> None:
    bucket = hub.client_a.storage.from_(BUCKET_FILES)
    for key in ("ls/a.txt", "ls/b.txt", "ls/sub/c.txt", "other/d.txt"):
        bucket.upload(f"{hub.alice.uid}/{key}", b"x", {"content-type": "text/plain"})
    entries = bucket.list(f"{hub.alice.uid}/ls")
    files = sorted(e["name"] for e in entries if e["id"])
    folders = sorted(e["name"] for e in entries if not e["id"])
    assert (files, folders) == (["a.txt", "b.txt"], ["sub"])
    assert all(e["metadata"]["size"] == 1 for e in entries if e["id"])
    assert [e["name"] for e in bucket.list(f"{hub.alice.uid}/ls/sub")] == ["c.txt"]


async def test_signed_url_is_fetched_over_plain_http(hub: Hub, tmp_path: Path) -> None:
    data = os.urandom(2048)
    sha = write_file(tmp_path / "s.bin", data)
    key = await hub.remote.put_blob(tmp_path / "s.bin", sha, len(data), "s.bin", "text/plain")
    url = await hub.remote.signed_url(key, 60)
    async with httpx.AsyncClient(timeout=30) as http:
        fetched = await http.get(url)  # no apikey, no token: the URL is the permission
        tampered = await http.get(url + "x")
    assert (fetched.status_code, fetched.content) == (200, data)
    assert tampered.status_code == 400


def test_delete_removes_the_object(hub: Hub) -> None:
    bucket = hub.client_a.storage.from_(BUCKET_FILES)
    key = f"{hub.alice.uid}/del/gone.txt"
    bucket.upload(key, b"bye", {"content-type": "text/plain"})
    removed = bucket.remove([key, f"{hub.alice.uid}/del/never.txt"])
    assert [r["name"] for r in removed] == [key]
    with pytest.raises(StorageApiError) as missing:
        bucket.download(key)
    assert missing.value.status == "404"
    assert bucket.list(f"{hub.alice.uid}/del") == []


def test_a_second_user_sees_reads_and_writes_nothing_of_the_first(hub: Hub) -> None:
    mine = hub.client_a.storage.from_(BUCKET_FILES)
    theirs = hub.client_b.storage.from_(BUCKET_FILES)
    key = f"{hub.alice.uid}/private/p.txt"
    mine.upload(key, b"secret", {"content-type": "text/plain"})

    assert theirs.list(f"{hub.alice.uid}/private") == []
    with pytest.raises(StorageApiError) as read:
        theirs.download(key)
    assert read.value.status == "404"
    with pytest.raises(StorageApiError) as write:
        theirs.upload(f"{hub.alice.uid}/private/q.txt", b"x", {"content-type": "text/plain"})
    assert write.value.status == "403"
    assert write.value.message == "new row violates row-level security policy"
    with pytest.raises(StorageApiError):
        theirs.upload(key, b"x", {"content-type": "text/plain", "x-upsert": "true"})
    assert theirs.remove([key]) == []
    assert mine.download(key) == b"secret"


def test_keys_with_every_allowed_character_class(hub: Hub) -> None:
    bucket = hub.client_a.storage.from_(BUCKET_FILES)
    name = f"all {ALLOWED_KEY_CHARACTERS}.txt"
    key = f"{hub.alice.uid}/chars/{name}"
    bucket.upload(key, name.encode(), {"content-type": "text/plain"})
    assert bucket.download(key) == name.encode()
    assert [e["name"] for e in bucket.list(f"{hub.alice.uid}/chars")] == [name]
    for bad in REFUSED_KEY_CHARACTERS:
        with pytest.raises(StorageApiError) as refused:
            bucket.upload(
                f"{hub.alice.uid}/chars/x{bad}y.txt", b"x", {"content-type": "text/plain"}
            )
        assert "Invalid key" in refused.value.message, bad


async def test_awkward_file_names_make_keys_both_servers_accept(hub: Hub, tmp_path: Path) -> None:
    for n, name in enumerate(["café 🎉.txt", "50% [draft] #2.md", "a\\b^c~d<e>|f`g.txt"]):
        data = f"{n}: {name}".encode()
        sha = write_file(tmp_path / f"{n}.bin", data)
        key = await hub.remote.put_blob(tmp_path / f"{n}.bin", sha, len(data), name, "text/plain")
        await hub.remote.get_blob(key, sha, tmp_path / f"{n}.back")
        assert (tmp_path / f"{n}.back").read_bytes() == data
