"""Expired and refused access tokens, on the test server and on the real Storage server.

Each test runs twice: on the test server, and on the real Supabase Storage
server behind the test server's gateway (auth and REST stay on the test
server, with the same JWT secret). Tokens expire for real (short lifetimes,
a laptop that sleeps past the expiry with its event loop frozen); on the test
server also early, by the server (``expire_access_tokens``), which no client
can see coming. What must hold: every file reaches the hub, none is marked
failed, nobody is asked to sign in again unless the session was revoked.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from supabase_auth._async import gotrue_client

from sync.engine import PassReport, SyncEngine
from sync.find import FindQuery
from sync.journal import Journal, JournalResumeStore
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.errors import NotFound, is_jwt_failure, may_hide_a_refused_token
from sync.remotes.supabase.session import TUS_CHUNK, SupabaseSession, SupabaseSettings
from sync.remotes.supabase.token import token_times
from tests.fixtures.engine import FAST_RETRY
from tests.fixtures.real_storage import start_real_gateway
from tests.fixtures.supabase import SupabaseUser, make_user
from tests.fixtures.supabase_remote import MemoryKeyring, session_storage, urandom_file
from tests.supabase_server import SupabaseTestServer

MiB = 1024 * 1024
TTL = 3
"""Seconds an access token lives in these tests."""
TUS_FROM = 64 * 1024
"""Files from this size go up through TUS here, so a sync of small files uses it too."""


@pytest.fixture(params=["test-server", "real-storage"])
def server(request: pytest.FixtureRequest) -> Iterator[SupabaseTestServer]:
    if request.param == "real-storage":
        hub = start_real_gateway(request.getfixturevalue("real_storage"), access_token_ttl=TTL)
    else:
        hub = SupabaseTestServer(seed=1234, access_token_ttl=TTL).start()
    try:
        yield hub
    finally:
        hub.stop()


def on_real_storage(server: SupabaseTestServer) -> bool:
    return server.gateway is not None


@pytest.fixture
def user(server: SupabaseTestServer) -> SupabaseUser:
    return make_user(server, "alice")


def settings_for(server: SupabaseTestServer) -> SupabaseSettings:
    return SupabaseSettings(url=server.url, anon_key=server.anon_key, requests_per_second=0)


def refreshes(server: SupabaseTestServer) -> list[int]:
    """Statuses of the refresh-token grants the server answered."""
    return [
        e.status for e in server.log.entries("POST", "/auth/v1/token") if "refresh_token" in e.query
    ]


def sleep_past_expiry(session: SupabaseSession) -> None:
    """A laptop asleep: the event loop frozen until the current token has expired."""
    times = token_times(session.authorization)
    assert times is not None
    time.sleep(max(0.0, times.expires_at - time.time() + 1.2))


def when_blob(remote: SupabaseRemote, number: int, action: Callable[[], None]) -> None:
    """Run ``action`` as the ``number``-th blob upload starts (a sync half done)."""
    put_blob = remote.put_blob
    count = 0

    async def counting(*args: Any, **kwargs: Any) -> str:
        nonlocal count
        count += 1
        if count == number:
            action()
        return await put_blob(*args, **kwargs)

    remote.put_blob = counting  # type: ignore[method-assign]


def make_tree(folder: Path, files: int) -> None:
    """``files`` files, every tenth one large enough for TUS."""
    for i in range(files):
        sub = folder / f"d{i % 12}"
        sub.mkdir(parents=True, exist_ok=True)
        size = TUS_FROM + 1000 + i if i % 10 == 0 else 150 + i
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))


async def assert_every_file_in_hub(remote: SupabaseRemote, folder: Path, tmp: Path) -> None:
    """The hub lists exactly the folder's files, and each one downloads with its hash."""
    local = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    entries = await remote.find(FindQuery())
    assert {e.relpath: e.sha256 for e in entries} == local
    for entry in entries:  # get_blob checks the SHA-256 of what it downloads
        await remote.get_blob(entry.key, entry.sha256, tmp / "check.bin")


def assert_clean(report: PassReport, journal: Journal, files: int) -> None:
    assert report.complete and not report.auth_needed, list(report.errors.items())[:5]
    root_id = report.root.id
    assert journal.error_rows(root_id) == {}
    assert journal.count_states(root_id).get("synced") == files


class Rig:
    """A journal, a signed-in remote and an engine, as the agent has them."""

    def __init__(self, journal: Journal, session: SupabaseSession) -> None:
        self.journal = journal
        self.remote = SupabaseRemote(
            session, resume_store=JournalResumeStore(journal), tus_threshold=TUS_FROM
        )
        self.engine = SyncEngine(journal, {"supabase": self.remote}, retry=FAST_RETRY, workers=8)

    async def close(self) -> None:
        self.engine.close()
        await self.remote.close()


async def signed_in(
    server: SupabaseTestServer,
    user: SupabaseUser,
    keyring: MemoryKeyring,
    clock: Callable[[], float] = time.time,
) -> SupabaseSession:
    return await SupabaseSession.sign_in(
        settings_for(server),
        session_storage(keyring, settings_for(server)),
        user.email,
        user.password,
        clock=clock,
    )


# -- the answers a refused token gets, route by route --------------------------------------


def _tus_metadata(uid: str) -> str:
    pairs = {"bucketName": "user-files", "objectName": f"{uid}/t.bin"}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("expired", '"exp" claim timestamp check failed'),
        ("bad signature", "signature verification failed"),
        ("malformed", "Invalid Compact JWS"),
    ],
)
def test_a_refused_token_gets_the_real_servers_answer_on_every_route(
    server: SupabaseTestServer, user: SupabaseUser, token: str, reason: str
) -> None:
    """Measured on supabase/storage v1.70.6; the test server must answer the same."""
    claims = {"sub": user.uid, "role": "authenticated", "aud": "authenticated"}
    good = jwt.encode({**claims, "exp": int(time.time()) + 600}, server.jwt_secret, "HS256")
    bad = {
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 60}, server.jwt_secret, "HS256"),
        "bad signature": jwt.encode({**claims, "exp": int(time.time()) + 600}, "x" * 40, "HS256"),
        "malformed": "not-a-jwt",
    }[token]
    s = f"{server.url}/storage/v1"
    key = f"{user.uid}/a.txt"
    denied = {"statusCode": "403", "code": "AccessDenied", "error": "Unauthorized"}
    no_bucket = {"statusCode": "404", "code": "NoSuchBucket", "error": "Bucket not found"}
    with httpx.Client(timeout=30, headers={"apikey": server.anon_key}) as http:

        def auth(t: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {t}"}

        put = http.post(f"{s}/object/user-files/{key}", headers=auth(good), content=b"hi")
        assert put.status_code == 200, put.text
        tus = {**auth(good), "Tus-Resumable": "1.0.0"}
        created = http.post(
            f"{s}/upload/resumable",
            headers={**tus, "Upload-Length": "10", "Upload-Metadata": _tus_metadata(user.uid)},
        )
        assert created.status_code == 201, created.text
        upload = created.headers["location"]
        h = auth(bad)
        answers = {
            "upload": http.post(f"{s}/object/user-files/{key}", headers=h, content=b"x"),
            "upsert": http.put(f"{s}/object/user-files/{key}", headers=h, content=b"x"),
            "download": http.get(f"{s}/object/user-files/{key}", headers=h),
            "download authenticated": http.get(
                f"{s}/object/authenticated/user-files/{key}", headers=h
            ),
            "info": http.get(f"{s}/object/info/user-files/{key}", headers=h),
            "info authenticated": http.get(
                f"{s}/object/info/authenticated/user-files/{key}", headers=h
            ),
            "list": http.post(
                f"{s}/object/list/user-files", headers=h, json={"prefix": user.uid, "limit": 2}
            ),
            "sign": http.post(
                f"{s}/object/sign/user-files/{key}", headers=h, json={"expiresIn": 60}
            ),
            "tus create": http.post(
                f"{s}/upload/resumable",
                headers={
                    **h,
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": "10",
                    "Upload-Metadata": _tus_metadata(user.uid),
                },
            ),
            "tus patch": http.patch(
                upload,
                headers={
                    **h,
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                content=b"01234",
            ),
        }
        head = http.head(upload, headers={**h, "Tus-Resumable": "1.0.0"})
        rest = http.get(f"{server.url}/rest/v1/file_metadata", headers=h)
    for route, response in answers.items():
        anonymous = route in ("download", "info")
        expected = no_bucket if anonymous else denied
        want = {**expected, "message": "Bucket not found" if anonymous else reason}
        assert (route, response.status_code, response.json()) == (route, 400, want)
    assert (head.status_code, head.content) == (400, b"")
    assert rest.status_code == 401
    assert rest.json()["code"] == ("PGRST303" if token == "expired" else "PGRST301")


# -- a sync across an expiry ------------------------------------------------------------------


@pytest.mark.parametrize("expiry", ["laptop sleeps past it", "server ends it early"])
async def test_300_files_sync_across_a_token_expiry(
    tmp_path: Path,
    server: SupabaseTestServer,
    user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    expiry: str,
) -> None:
    if expiry == "server ends it early" and on_real_storage(server):
        pytest.skip("the real server checks exp itself; it cannot be told to end a token early")
    docs = tmp_path / "docs"
    make_tree(docs, 300)
    journal = Journal(tmp_path / "journal.sqlite3")
    rig = Rig(journal, await signed_in(server, user, memory_keyring))
    try:
        if expiry == "laptop sleeps past it":
            when_blob(rig.remote, 150, lambda: sleep_past_expiry(rig.remote.session))
        else:
            server.auth.set_access_token_ttl(3600)
            when_blob(rig.remote, 150, server.auth.expire_access_tokens)
        root = journal.add_root(docs, "supabase")
        report = await rig.engine.sync_root(root)
        assert_clean(report, journal, 300)
        assert refreshes(server) and set(refreshes(server)) == {200}
        await assert_every_file_in_hub(rig.remote, docs, tmp_path)
    finally:
        await rig.close()
        journal.close()


async def test_revoked_session_pauses_with_sign_in_again_and_fails_no_file(
    tmp_path: Path, server: SupabaseTestServer, user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    """The session is revoked mid-sync (a password change elsewhere) as its token runs out."""
    docs = tmp_path / "docs"
    make_tree(docs, 40)
    journal = Journal(tmp_path / "journal.sqlite3")
    rig = Rig(journal, await signed_in(server, user, memory_keyring))

    def revoke_and_sleep() -> None:
        server.auth.revoke_refresh_tokens(user.uid)
        sleep_past_expiry(rig.remote.session)

    when_blob(rig.remote, 1, revoke_and_sleep)
    root = journal.add_root(docs, "supabase")
    try:
        report = await rig.engine.sync_root(root)
        assert report.auth_needed and "sign in again" in report.failure.reason
        assert journal.error_rows(root.id) == {}  # nothing is marked failed for it
    finally:
        await rig.close()
    again = Rig(journal, await signed_in(server, user, memory_keyring))  # hubsync login
    try:
        assert_clean(await again.engine.sync_root(root), journal, 40)
        await assert_every_file_in_hub(again.remote, docs, tmp_path)
    finally:
        await again.close()
        journal.close()


# -- one large upload across an expiry -----------------------------------------------------------


async def test_40_mb_tus_upload_across_an_expiry_resumes_from_the_server_offset(
    tmp_path: Path, server: SupabaseTestServer, user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    size = 40 * MiB
    sha = urandom_file(tmp_path / "big.bin", size)
    clock = SimpleNamespace(skew=0.0)
    session = await signed_in(server, user, memory_keyring, lambda: time.time() + clock.skew)
    remote = SupabaseRemote(session)
    chunks = 0

    def progress(_sent: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:  # the laptop sleeps between two chunks, and its clock jumps back:
            clock.skew = -3600.0  # the client cannot see that its token has run out
            sleep_past_expiry(remote.session)

    try:
        key = await remote.put_blob(
            tmp_path / "big.bin", sha, size, "big.bin", "video/mp4", progress
        )
        await remote.get_blob(key, sha, tmp_path / "back.bin")
    finally:
        await remote.close()
    resumable = "/storage/v1/upload/resumable/"
    patches = server.log.entries("PATCH", resumable)
    accepted = sum(e.bytes_in for e in patches if e.status == 204)
    refused = [e for e in patches if e.status != 204]
    assert [e.status for e in refused] == [400]  # the chunk after the expiry, once
    assert server.log.entries("HEAD", resumable)  # then the offset asked of the server
    assert accepted == size  # every byte stored once: resumed at the server's offset
    assert sum(e.bytes_in for e in patches) - size < TUS_CHUNK  # resent: under one chunk
    assert set(refreshes(server)) == {200}


async def test_tus_resume_and_download_with_an_expired_token(
    tmp_path: Path, server: SupabaseTestServer, user: SupabaseUser, memory_keyring: MemoryKeyring
) -> None:
    """HEAD of a stored upload (a bare 400) and GET/info ("Bucket not found") after expiry."""
    size = 2 * TUS_CHUNK + 1000
    sha = urandom_file(tmp_path / "big.bin", size)
    clock = SimpleNamespace(skew=0.0)
    session = await signed_in(server, user, memory_keyring, lambda: time.time() + clock.skew)
    remote = SupabaseRemote(session)

    class Interrupted(Exception):
        pass

    def stop_after_first_chunk(_sent: int) -> None:
        raise Interrupted

    try:
        with pytest.raises(Interrupted):
            await remote.put_blob(
                tmp_path / "big.bin", sha, size, "big.bin", "video/mp4", stop_after_first_chunk
            )
        sleep_past_expiry(remote.session)
        clock.skew = -3600.0  # the clock jumped back: the client cannot see the expiry coming
        key = await remote.put_blob(tmp_path / "big.bin", sha, size, "big.bin", "video/mp4")
        sleep_past_expiry(remote.session)
        await remote.get_blob(key, sha, tmp_path / "back.bin")
        assert (tmp_path / "back.bin").stat().st_size == size
        before = len(refreshes(server))
        with pytest.raises(NotFound):  # a bucket that is really missing: believed after one
            await remote.get_blob(key, sha, tmp_path / "x.bin", bucket="no-such-bucket")
        with pytest.raises(NotFound):  # ...and then at once
            await remote.get_blob(key, sha, tmp_path / "x.bin", bucket="no-such-bucket")
        assert len(refreshes(server)) == before + 1
    finally:
        await remote.close()
    patches = server.log.entries("PATCH", "/storage/v1/upload/resumable/")
    assert sum(e.bytes_in for e in patches if e.status == 204) == size
    assert set(refreshes(server)) == {200}


# -- a client clock that is off ------------------------------------------------------------------


@pytest.mark.parametrize("skew", [120, -120], ids=["2 min fast", "2 min slow"])
async def test_client_clock_two_minutes_off(
    tmp_path: Path,
    server: SupabaseTestServer,
    user: SupabaseUser,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    skew: int,
) -> None:
    """Signed in earlier; the agent restores the session on a machine whose clock is off.

    Fast, a token looks expired the moment it is issued: no refresh loop. Slow,
    an expired token looks valid: the server's refusal (whatever its wording)
    brings one refresh.
    """
    await (await signed_in(server, user, memory_keyring)).close()  # hubsync login

    def skewed() -> float:
        return time.time() + skew

    # supabase_auth reads the same wrong clock as the rest of the client
    monkeypatch.setattr(gotrue_client, "time", SimpleNamespace(time=skewed))
    docs = tmp_path / "docs"
    make_tree(docs, 60)
    journal = Journal(tmp_path / "journal.sqlite3")
    settings = settings_for(server)
    session = await SupabaseSession.restore(
        settings, session_storage(memory_keyring, settings), clock=skewed
    )
    rig = Rig(journal, session)
    started = time.monotonic()
    try:
        when_blob(rig.remote, 30, lambda: sleep_past_expiry(rig.remote.session))
        root = journal.add_root(docs, "supabase")
        assert_clean(await rig.engine.sync_root(root), journal, 60)
        await assert_every_file_in_hub(rig.remote, docs, tmp_path)
    finally:
        await rig.close()
        journal.close()
    # tokens refreshed on their own, at three quarters of their life
    lifetimes = int((time.monotonic() - started) / (TTL * 0.75))
    grants = refreshes(server)
    assert set(grants) == {200}
    # one per expiry (the sleep, the lifetimes, for a fast clock the restore), never a loop
    assert 1 <= len(grants) <= 3 + lifetimes, (grants, lifetimes)


def test_token_times_read_without_the_secret() -> None:
    claims = {"sub": str(uuid.uuid4()), "iat": 1000, "exp": 1060}
    token = jwt.encode(claims, "s" * 40, "HS256")
    times = token_times(f"Bearer {token}")
    assert times is not None and (times.issued_at, times.expires_at) == (1000, 1060)
    assert times.margin == 10
    assert token_times("Bearer not-a-jwt") is None


def _refusal(method: str, status: int, body: str) -> httpx.HTTPStatusError:
    request = httpx.Request(method, "http://hub/storage/v1/upload/resumable/x")
    response = httpx.Response(status, text=body, request=request)
    return httpx.HTTPStatusError("refused", request=request, response=response)


_DENIED = '{"statusCode":"403","code":"AccessDenied","error":"Unauthorized","message":"%s"}'


@pytest.mark.parametrize(
    ("error", "token_refused", "ambiguous"),
    [
        (_refusal("PATCH", 400, _DENIED % '\\"exp\\" claim timestamp check failed'), True, False),
        (_refusal("POST", 400, _DENIED % "signature verification failed"), True, False),
        (_refusal("POST", 400, _DENIED % "Invalid Compact JWS"), True, False),
        (
            _refusal("PATCH", 400, _DENIED % "new row violates row-level security policy"),
            False,
            False,
        ),
        (
            _refusal(
                "GET",
                400,
                '{"statusCode":"404","code":"NoSuchBucket","error":"Bucket not found","message":"Bucket not found"}',
            ),
            False,
            True,
        ),
        (_refusal("HEAD", 400, ""), False, True),
        (_refusal("HEAD", 404, ""), False, False),
        (_refusal("POST", 409, "The resource already exists"), False, False),
    ],
)
def test_refusals_are_recognised_however_worded(
    error: httpx.HTTPStatusError, token_refused: bool, ambiguous: bool
) -> None:
    assert is_jwt_failure(error) is token_refused
    assert may_hide_a_refused_token(error) is ambiguous
