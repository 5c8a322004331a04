"""The Supabase test server, driven by the real clients (supabase-py, tuspy, httpx)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import jwt
import pytest
from postgrest import APIResponse, CountMethod
from postgrest.exceptions import APIError
from storage3.exceptions import StorageApiError
from supabase import AsyncClient, Client, ClientOptions, create_client
from supabase_auth.errors import AuthApiError
from tusclient.client import TusClient

from tests.supabase_server import CHUNK, SupabaseTestServer

if TYPE_CHECKING:
    from tests.fixtures.supabase import SupabaseUser

pytest_plugins = ["tests.fixtures.supabase"]

MiB = 1024 * 1024
SECRET = "standalone-secret-0123456789abcdef0123"


def headers(server: SupabaseTestServer, token: str | None = None) -> dict[str, str]:
    return {"apikey": server.anon_key, "Authorization": f"Bearer {token or server.anon_key}"}


def user_headers(server: SupabaseTestServer, user: SupabaseUser) -> dict[str, str]:
    return headers(server, server.auth.access_token(user.uid))


def records(response: APIResponse) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], response.data)


def signed_in(server: SupabaseTestServer, user: SupabaseUser, http: httpx.Client) -> Client:
    options = ClientOptions(httpx_client=http, auto_refresh_token=False)
    client = create_client(server.url, server.anon_key, options)
    client.auth.sign_in_with_password({"email": user.email, "password": user.password})
    return client


# -- auth ------------------------------------------------------------------


def test_password_sign_in_returns_gotrue_session(
    supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    session = supabase_client.auth.get_session()
    assert session is not None
    assert session.user.id == supabase_user.uid
    assert session.user.email == supabase_user.email
    assert session.token_type == "bearer"
    assert session.expires_at is not None and session.expires_at > time.time() + 3000
    user = supabase_client.auth.get_user()
    assert user is not None and user.user.id == supabase_user.uid


def test_a_stored_session_can_be_restored(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    session = supabase_client.auth.get_session()
    assert session is not None
    with httpx.Client() as http:
        options = ClientOptions(httpx_client=http, auto_refresh_token=False)
        fresh = create_client(supabase_server.url, supabase_server.anon_key, options)
        restored = fresh.auth.set_session(session.access_token, session.refresh_token)
        assert restored.user is not None and restored.user.id == supabase_user.uid
        claims = jwt.decode(session.access_token, options={"verify_signature": False})
        assert isinstance(claims["iat"], int) and claims["session_id"]


def test_wrong_password_is_invalid_credentials(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    with httpx.Client() as http:
        client = create_client(
            supabase_server.url, supabase_server.anon_key, ClientOptions(httpx_client=http)
        )
        with pytest.raises(AuthApiError) as err:
            client.auth.sign_in_with_password({"email": supabase_user.email, "password": "nope"})
        assert err.value.status == 400
        assert err.value.code == "invalid_credentials"
        # Without the API version header GoTrue answers in its legacy shape.
        legacy = http.post(
            f"{supabase_server.url}/auth/v1/token?grant_type=password",
            json={"email": supabase_user.email, "password": "nope"},
            headers={"apikey": supabase_server.anon_key},
        )
    assert legacy.status_code == 400
    assert legacy.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }


def test_refresh_token_rotates_and_reuse_ends_the_session(supabase_client: Client) -> None:
    first = supabase_client.auth.get_session()
    assert first is not None
    second = supabase_client.auth.refresh_session().session
    assert second is not None and second.refresh_token != first.refresh_token
    with pytest.raises(AuthApiError) as err:
        supabase_client.auth.refresh_session(first.refresh_token)
    assert str(err.value.code) == "refresh_token_already_used"
    # Reuse is treated as theft: the whole session, newest token included, is gone.
    with pytest.raises(AuthApiError) as err:
        supabase_client.auth.refresh_session(second.refresh_token)
    assert str(err.value.code) == "refresh_token_not_found"


def test_sign_out_and_revocation_invalidate_refresh_tokens(
    supabase_server: SupabaseTestServer,
    supabase_client: Client,
    supabase_user: SupabaseUser,
) -> None:
    with httpx.Client() as http:
        other = signed_in(supabase_server, supabase_user, http)
        assert supabase_server.auth.active_sessions(supabase_user.uid) == 2
        session = other.auth.get_session()
        assert session is not None
        other.auth.sign_out({"scope": "local"})
        assert supabase_server.auth.active_sessions(supabase_user.uid) == 1
        with pytest.raises(AuthApiError):
            other.auth.refresh_session(session.refresh_token)
    assert supabase_server.auth.revoke_refresh_tokens(supabase_user.uid) == 1
    with pytest.raises(AuthApiError) as err:
        supabase_client.auth.refresh_session()
    assert str(err.value.code) == "refresh_token_not_found"


def test_api_key_is_required(supabase_server: SupabaseTestServer) -> None:
    missing = httpx.get(f"{supabase_server.url}/rest/v1/file_metadata")
    assert missing.status_code == 401
    assert missing.json()["message"] == "No API key found in request"
    forged = httpx.get(f"{supabase_server.url}/rest/v1/file_metadata", headers={"apikey": "x.y.z"})
    assert forged.status_code == 401
    assert forged.json()["message"] == "Invalid API key"
    in_query = httpx.get(
        f"{supabase_server.url}/rest/v1/file_metadata",
        params={"apikey": supabase_server.service_key, "select": "*"},
    )
    assert in_query.status_code == 200 and in_query.json() == []


def test_keys_are_hs256_jwts_with_roles(supabase_server: SupabaseTestServer) -> None:
    for key, role in (
        (supabase_server.anon_key, "anon"),
        (supabase_server.service_key, "service_role"),
    ):
        claims = jwt.decode(key, supabase_server.jwt_secret, algorithms=["HS256"])
        assert claims["role"] == role


def test_expired_and_forged_tokens_get_the_real_error_shapes(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    expired = supabase_server.auth.access_token(supabase_user.uid, ttl=-10)
    url = f"{supabase_server.url}/storage/v1/object/user-files/{supabase_user.uid}/a.txt"
    r = httpx.post(url, content=b"x", headers=headers(supabase_server, expired))
    assert r.status_code == 400
    assert r.json()["statusCode"] == "403"
    assert r.json()["message"] == '"exp" claim timestamp check failed'
    rest = httpx.get(
        f"{supabase_server.url}/rest/v1/file_metadata", headers=headers(supabase_server, expired)
    )
    assert rest.status_code == 401 and rest.json()["code"] == "PGRST303"
    forged = jwt.encode(
        {"sub": supabase_user.uid, "role": "authenticated"},
        "not-the-project-secret-0123456789abcdef",
        "HS256",
    )
    r = httpx.post(url, content=b"x", headers=headers(supabase_server, forged))
    assert r.json()["statusCode"] == "403"
    assert r.json()["message"] == "signature verification failed"
    user = httpx.get(
        f"{supabase_server.url}/auth/v1/user", headers=headers(supabase_server, expired)
    )
    assert user.status_code == 403 and user.json()["error_code"] == "bad_jwt"


# -- storage -----------------------------------------------------------------


def test_upload_download_upsert_and_duplicate(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    bucket = supabase_client.storage.from_("user-files")
    key = f"{supabase_user.uid}/docs/a b (1).txt"
    bucket.upload(key, b"one", {"content-type": "text/plain"})
    assert bucket.download(key) == b"one"
    with pytest.raises(StorageApiError) as err:
        bucket.upload(key, b"two", {"content-type": "text/plain"})
    assert (err.value.status, err.value.code) == ("409", "Duplicate")
    bucket.upload(key, b"two", {"content-type": "text/plain", "upsert": "true"})
    assert bucket.download(key) == b"two"
    bucket.update(key, b"three", {"content-type": "text/markdown"})
    info = bucket.info(key)
    assert info["size"] == 5
    assert info["content_type"] == "text/markdown"
    assert info["etag"] == '"' + hashlib.md5(b"three").hexdigest() + '"'
    assert bucket.exists(key)
    assert not bucket.exists(f"{supabase_user.uid}/docs/missing.txt")
    stored = supabase_server.storage.get("user-files", key)
    assert stored is not None and stored.owner == supabase_user.uid
    assert len(supabase_server.log.uploads("user-files", key)) == 3


def test_head_list_remove_move_copy_and_signed_urls(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    bucket = supabase_client.storage.from_("user-files")
    uid = supabase_user.uid
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        bucket.upload(f"{uid}/{name}", name.encode(), {"content-type": "text/plain"})
    listing = bucket.list(uid)
    assert [(e["name"], e["id"] is None) for e in listing] == [
        ("a.txt", False),
        ("b.txt", False),
        ("sub", True),
    ]
    assert [e["name"] for e in bucket.list(uid, {"search": "A."})] == ["a.txt"]
    assert supabase_client.storage.from_("no-such-bucket").list(uid) == []
    head = httpx.head(
        f"{supabase_server.url}/storage/v1/object/user-files/{uid}/a.txt",
        headers=user_headers(supabase_server, supabase_user),
    )
    assert head.status_code == 200 and head.headers["content-length"] == "5"
    missing = httpx.head(
        f"{supabase_server.url}/storage/v1/object/user-files/{uid}/zz.txt",
        headers=user_headers(supabase_server, supabase_user),
    )
    assert missing.status_code == 400 and missing.content == b""
    bucket.move(f"{uid}/a.txt", f"{uid}/moved.txt")
    bucket.copy(f"{uid}/b.txt", f"{uid}/copied.txt")
    assert bucket.download(f"{uid}/copied.txt") == b"b.txt"
    signed = bucket.create_signed_url(f"{uid}/moved.txt", 60)["signedURL"]
    assert signed is not None
    assert httpx.get(signed).content == b"a.txt"
    removed = bucket.remove([f"{uid}/moved.txt", f"{uid}/never.txt"])
    assert [r["name"] for r in removed] == [f"{uid}/moved.txt"]
    assert supabase_server.storage.keys("user-files") == [
        f"{uid}/b.txt",
        f"{uid}/copied.txt",
        f"{uid}/sub/c.txt",
    ]


@pytest.mark.parametrize("name", ["café.txt", "a#b.txt", "100%.txt", "x[1].txt", "tab\\x.txt"])
def test_invalid_keys_are_rejected(
    supabase_client: Client, supabase_user: SupabaseUser, name: str
) -> None:
    with pytest.raises(StorageApiError) as err:
        supabase_client.storage.from_("user-files").upload(
            f"{supabase_user.uid}/{name}", b"x", {"content-type": "text/plain"}
        )
    assert (err.value.status, err.value.code) == ("400", "InvalidKey")


def test_allowed_key_characters_round_trip(
    supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    bucket = supabase_client.storage.from_("user-files")
    key = f"{supabase_user.uid}/a b!'()*&$@=;:+,?-_.txt"
    bucket.upload(key, b"ok", {"content-type": "text/plain"})
    assert bucket.download(key) == b"ok"


def test_users_are_isolated_and_service_role_is_not(
    supabase_server: SupabaseTestServer,
    supabase_client: Client,
    supabase_user: SupabaseUser,
    supabase_user_b: SupabaseUser,
) -> None:
    key = f"{supabase_user.uid}/secret.txt"
    supabase_client.storage.from_("user-files").upload(key, b"mine", {"content-type": "text/plain"})
    with httpx.Client() as http:
        bob = signed_in(supabase_server, supabase_user_b, http).storage.from_("user-files")
        with pytest.raises(StorageApiError) as err:
            bob.download(key)
        assert (err.value.status, err.value.code) == ("404", "not_found")
        assert not bob.exists(key)
        with pytest.raises(StorageApiError) as err:
            bob.upload(key, b"theirs", {"content-type": "text/plain", "upsert": "true"})
        assert err.value.status == "403"
        with pytest.raises(StorageApiError):
            bob.upload("no-folder.txt", b"x", {"content-type": "text/plain"})
        assert bob.list(supabase_user.uid) == []
        assert bob.remove([key]) == []
        admin = create_client(
            supabase_server.url,
            supabase_server.service_key,
            ClientOptions(httpx_client=http, auto_refresh_token=False),
        )
        assert admin.storage.from_("user-files").download(key) == b"mine"


def test_bucket_size_limit_and_mime_types(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    supabase_server.storage.create_bucket(
        "small", file_size_limit=1000, allowed_mime_types=["image/*"]
    )
    bucket = supabase_client.storage.from_("small")
    with pytest.raises(StorageApiError) as err:
        bucket.upload(f"{supabase_user.uid}/big.png", b"x" * 1001, {"content-type": "image/png"})
    assert (err.value.status, err.value.code) == ("413", "Payload too large")
    with pytest.raises(StorageApiError) as err:
        bucket.upload(f"{supabase_user.uid}/a.txt", b"x", {"content-type": "text/plain"})
    assert (err.value.status, err.value.code) == ("415", "invalid_mime_type")
    bucket.upload(f"{supabase_user.uid}/ok.png", b"x" * 1000, {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as err:
        supabase_client.storage.from_("nope").upload(
            f"{supabase_user.uid}/a.txt", b"x", {"content-type": "text/plain"}
        )
    assert err.value.status == "404"


def test_bucket_admin_needs_service_role(
    supabase_server: SupabaseTestServer, supabase_client: Client
) -> None:
    assert supabase_client.storage.list_buckets() == []
    with pytest.raises(StorageApiError) as err:
        supabase_client.storage.create_bucket("mine")
    assert err.value.status == "403"
    with httpx.Client() as http:
        admin = create_client(
            supabase_server.url, supabase_server.service_key, ClientOptions(httpx_client=http)
        )
        names = {b.id for b in admin.storage.list_buckets()}
        assert names == {"user-files", "results", "generated-files"}
        admin.storage.create_bucket("extra", options={"public": False, "file_size_limit": 10})
        assert admin.storage.get_bucket("extra").file_size_limit == 10
        admin.storage.delete_bucket("extra")


async def test_async_client_storage_and_tables(
    supabase_server: SupabaseTestServer,
    async_supabase_client: AsyncClient,
    supabase_user: SupabaseUser,
) -> None:
    key = f"{supabase_user.uid}/async.bin"
    await async_supabase_client.storage.from_("results").upload(
        key, b"\x00\x01", {"content-type": "application/octet-stream"}
    )
    assert await async_supabase_client.storage.from_("results").download(key) == b"\x00\x01"
    await (
        async_supabase_client.table("hubsync_devices")
        .upsert({"device_id": "laptop", "name": "Laptop"}, on_conflict="user_id,device_id")
        .execute()
    )
    rows = records(await async_supabase_client.table("hubsync_devices").select("*").execute())
    assert [(r["device_id"], r["user_id"]) for r in rows] == [("laptop", supabase_user.uid)]


# -- TUS -----------------------------------------------------------------------


def tus(server: SupabaseTestServer, user: SupabaseUser) -> TusClient:
    return TusClient(
        f"{server.url}/storage/v1/upload/resumable", headers=user_headers(server, user)
    )


def payload(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def tus_meta(user: SupabaseUser, name: str) -> dict[str, str]:
    return {
        "bucketName": "user-files",
        "objectName": f"{user.uid}/{name}",
        "contentType": "application/octet-stream",
        "cacheControl": "3600",
    }


def test_tus_upload_in_6_mib_chunks(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    data = payload(2 * CHUNK + 12345)
    uploader = tus(supabase_server, supabase_user).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK, metadata=tus_meta(supabase_user, "big.bin")
    )
    uploader.upload()
    stored = supabase_server.storage.get("user-files", f"{supabase_user.uid}/big.bin")
    assert stored is not None and stored.data == data
    patches = supabase_server.log.entries("PATCH", "/storage/v1/upload/resumable")
    assert [p.bytes_in for p in patches] == [CHUNK, CHUNK, 12345]


def test_tus_resume_from_head_offset(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    data = payload(3 * CHUNK + 10)
    key = f"{supabase_user.uid}/resume.bin"
    first = tus(supabase_server, supabase_user).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=CHUNK,
        metadata=tus_meta(supabase_user, "resume.bin"),
    )
    first.upload(stop_at=CHUNK)  # the client "dies" after one chunk
    assert supabase_server.storage.get("user-files", key) is None
    assert len(supabase_server.tus.pending()) == 1
    supabase_server.restart()  # connections dropped; upload state survives
    supabase_server.log.clear()
    second = tus(supabase_server, supabase_user).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK, url=first.url
    )
    assert second.offset == CHUNK
    second.upload()
    stored = supabase_server.storage.get("user-files", key)
    assert stored is not None and stored.data == data
    assert supabase_server.log.bytes_in("/storage/v1/upload") == len(data) - CHUNK


def test_tus_takes_any_chunk_size_and_rejects_wrong_offsets(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    """As the real server (file backend): 1 MiB chunks are fine, a wrong offset is 409."""
    data = payload(2 * MiB + 7)
    uploader = tus(supabase_server, supabase_user).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=MiB,
        metadata=tus_meta(supabase_user, "odd.bin"),
    )
    uploader.upload_chunk()  # type: ignore[no-untyped-call]
    assert uploader.offset == MiB
    patch_headers = {
        **user_headers(supabase_server, supabase_user),
        "Tus-Resumable": "1.0.0",
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "5",
    }
    wrong = httpx.patch(str(uploader.url), content=b"x", headers=patch_headers)
    assert wrong.status_code == 409
    head = httpx.head(
        str(uploader.url),
        headers={**user_headers(supabase_server, supabase_user), "Tus-Resumable": "1.0.0"},
    )
    assert head.headers["Upload-Offset"] == str(MiB)
    uploader.upload()  # type: ignore[no-untyped-call]
    stored = supabase_server.storage.get("user-files", f"{supabase_user.uid}/odd.bin")
    assert stored is not None and stored.data == data


def test_tus_create_errors(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    supabase_client.storage.from_("user-files").upload(
        f"{supabase_user.uid}/exists.bin", b"x", {"content-type": "application/octet-stream"}
    )
    base = f"{supabase_server.url}/storage/v1/upload/resumable"
    h = {**user_headers(supabase_server, supabase_user), "Tus-Resumable": "1.0.0"}

    def create(
        bucket: str, name: str, length: int, upsert: bool = False, auth: dict[str, str] = h
    ) -> httpx.Response:
        def enc(v: str) -> str:
            return base64.b64encode(v.encode()).decode()

        meta = f"bucketName {enc(bucket)},objectName {enc(f'{supabase_user.uid}/{name}')}"
        extra = {"x-upsert": "true"} if upsert else {}
        return httpx.post(
            base, headers={**auth, **extra, "Upload-Length": str(length), "Upload-Metadata": meta}
        )

    assert create("user-files", "exists.bin", 10).status_code == 409
    assert create("user-files", "exists.bin", 10, upsert=True).status_code == 201
    assert create("nope", "a.bin", 10).status_code == 404
    assert create("user-files", "huge.bin", 51 * MiB).status_code == 413
    assert create("user-files", "bad#name.bin", 10).status_code == 400
    expired = supabase_server.auth.access_token(supabase_user.uid, ttl=-5)
    late = {**headers(supabase_server, expired), "Tus-Resumable": "1.0.0"}
    refused = create("user-files", "late.bin", 10, auth=late)
    assert refused.status_code == 400  # as the real server: 400, the 403 is in the body
    assert refused.json() == {
        "statusCode": "403",
        "code": "AccessDenied",
        "error": "Unauthorized",
        "message": '"exp" claim timestamp check failed',
    }


async def wait_until_busy(server: SupabaseTestServer, busy: bool) -> None:
    for _ in range(250):
        pending = server.tus.pending()
        if pending and pending[0].busy == busy:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("upload never reached the expected state")


async def test_tus_busy_upload_gets_409_and_a_broken_chunk_is_kept(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    data = payload(2 * CHUNK)
    uploader = tus(supabase_server, supabase_user).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=CHUNK,
        metadata=tus_meta(supabase_user, "busy.bin"),
    )
    uploader.set_url(uploader.create_url())
    url = str(uploader.url)
    h = {
        **user_headers(supabase_server, supabase_user),
        "Tus-Resumable": "1.0.0",
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
    }
    never = asyncio.Event()

    async def stalled_body() -> AsyncIterator[bytes]:
        yield data[:MiB]
        await never.wait()
        yield data[MiB:CHUNK]

    async with httpx.AsyncClient() as http:
        first = asyncio.create_task(http.patch(url, content=stalled_body(), headers=h))
        await wait_until_busy(supabase_server, True)
        second = await http.patch(url, content=data[:CHUNK], headers=h)
        assert second.status_code == 409
        first.cancel()  # the first client dies mid-chunk
        with pytest.raises(asyncio.CancelledError):
            await first
        await wait_until_busy(supabase_server, False)
        head = await http.head(url, headers=h)
        assert head.headers["Upload-Offset"] == str(MiB)  # what arrived of the chunk stays
        for offset in (MiB, MiB + CHUNK):
            r = await http.patch(
                url,
                content=data[offset : offset + CHUNK],
                headers={**h, "Upload-Offset": str(offset)},
            )
            assert r.status_code == 204
    stored = supabase_server.storage.get("user-files", f"{supabase_user.uid}/busy.bin")
    assert stored is not None and stored.data == data


# -- PostgREST ---------------------------------------------------------------


def test_rest_insert_select_filters_and_order(supabase_client: Client) -> None:
    table = supabase_client.table("hubsync_manifest")
    rows = [
        {
            "device_id": "d1",
            "root_id": "r",
            "rel_path": f"f{i}.txt",
            "sha256": f"{i:064x}",
            "size": i * 10,
            "version": 1,
            "deleted": i == 3,
        }
        for i in range(5)
    ]
    inserted = records(table.insert(rows).execute())
    assert [r["id"] for r in inserted] == [1, 2, 3, 4, 5]
    assert inserted[0]["recorded_at"] and inserted[0]["mtime_ns"] == 0
    got = (
        table.select("rel_path,size")
        .gte("size", 10)
        .lt("size", 40)
        .order("size", desc=True)
        .execute()
    )
    assert got.data == [
        {"rel_path": "f3.txt", "size": 30},
        {"rel_path": "f2.txt", "size": 20},
        {"rel_path": "f1.txt", "size": 10},
    ]
    assert [
        r["rel_path"]
        for r in records(table.select("rel_path").in_("rel_path", ["f0.txt", "f4.txt"]).execute())
    ] == [
        "f0.txt",
        "f4.txt",
    ]
    assert len(table.select("id").is_("storage_key", "null").execute().data) == 5
    assert [
        r["rel_path"] for r in records(table.select("rel_path").eq("deleted", True).execute())
    ] == ["f3.txt"]
    assert len(table.select("id").like("rel_path", "f%.txt").neq("size", 0).execute().data) == 4
    page = table.select("size", count=CountMethod.exact).order("size").limit(2).offset(1).execute()
    assert page.data == [{"size": 10}, {"size": 20}] and page.count == 5
    single = table.select("size").eq("rel_path", "f2.txt").single().execute()
    assert single.data == {"size": 20}
    either = table.select("size").or_("size.eq.0,size.eq.40").order("size").execute()
    assert either.data == [{"size": 0}, {"size": 40}]


def test_rest_upsert_update_delete(supabase_client: Client, supabase_user: SupabaseUser) -> None:
    table = supabase_client.table("file_metadata")
    row = {
        "id": "6a0f3c1e-2b4d-5e6f-8a9b-0c1d2e3f4a5b",
        "file_id": f"{supabase_user.uid}/aa/x",
        "filename": "x",
        "file_size": 1,
    }
    first = records(table.upsert(row, on_conflict="id").execute())[0]
    second = records(table.upsert({**row, "file_size": 2}, on_conflict="id").execute())[0]
    assert first["created_at"] == first["updated_at"]  # one now() per statement
    assert second["id"] == first["id"] and second["file_size"] == 2
    assert second["updated_at"] >= first["updated_at"]
    ignored = table.upsert({**row, "file_size": 3}, on_conflict="id", ignore_duplicates=True)
    assert ignored.execute().data == []
    updated = records(table.update({"access_count": 5}).eq("file_id", row["file_id"]).execute())
    assert updated[0]["access_count"] == 5
    with pytest.raises(APIError) as err:
        table.insert(row).execute()
    assert err.value.code == "23505"
    with pytest.raises(APIError) as err:
        table.delete().execute()
    assert err.value.code == "21000"
    assert len(table.delete().eq("file_id", row["file_id"]).execute().data) == 1
    assert table.select("*").execute().data == []


def test_rest_constraints_and_unknown_things(supabase_client: Client) -> None:
    with pytest.raises(APIError) as err:
        supabase_client.table("file_operations").insert({"operation_type": "fly"}).execute()
    assert err.value.code == "23514"
    with pytest.raises(APIError) as err:
        supabase_client.table("file_metadata").insert({"filename": "no id"}).execute()
    assert err.value.code == "23502"
    with pytest.raises(APIError) as err:
        supabase_client.table("nope").select("*").execute()
    assert err.value.code == "PGRST205"
    with pytest.raises(APIError) as err:
        supabase_client.table("file_metadata").insert({"file_id": "a", "bogus": 1}).execute()
    assert err.value.code == "PGRST204"
    with pytest.raises(APIError) as err:
        supabase_client.table("hubsync_manifest").insert(
            [
                {"device_id": "d", "root_id": "r", "rel_path": "p", "sha256": "s"},
                {"device_id": "d", "root_id": "r", "rel_path": "p", "sha256": "s"},
            ]
        ).execute()
    assert err.value.code == "23505"
    # The failed batch left nothing behind: statements are atomic.
    assert supabase_client.table("hubsync_manifest").select("id").execute().data == []


def test_rest_row_level_security(
    supabase_server: SupabaseTestServer,
    supabase_client: Client,
    supabase_user: SupabaseUser,
    supabase_user_b: SupabaseUser,
) -> None:
    supabase_client.table("file_operations").insert({"operation_type": "upload"}).execute()
    with pytest.raises(APIError) as err:
        supabase_client.table("file_operations").insert(
            {"operation_type": "upload", "user_id": supabase_user_b.uid}
        ).execute()
    assert err.value.code == "42501"
    assert "row-level security" in str(err.value.message)
    with httpx.Client() as http:
        bob = signed_in(supabase_server, supabase_user_b, http)
        assert bob.table("file_operations").select("*").execute().data == []
        assert (
            bob.table("file_operations")
            .update({"status": "failed"})
            .eq("operation_type", "upload")
            .execute()
            .data
            == []
        )
        admin = create_client(
            supabase_server.url,
            supabase_server.service_key,
            ClientOptions(httpx_client=http, auto_refresh_token=False),
        )
        rows = records(admin.table("file_operations").select("user_id,status").execute())
        assert rows == [{"user_id": supabase_user.uid, "status": "pending"}]


# -- faults ----------------------------------------------------------------------


def test_fail_and_throttle_faults(supabase_server: SupabaseTestServer) -> None:
    url = f"{supabase_server.url}/auth/v1/settings"
    h = headers(supabase_server)
    supabase_server.faults.fail(2, status=502, prefix="/auth")
    assert [httpx.get(url, headers=h).status_code for _ in range(3)] == [502, 502, 200]
    supabase_server.faults.fail(1, status=500, methods=("POST",))
    assert httpx.get(url, headers=h).status_code == 200  # only POSTs match
    supabase_server.faults.throttle(1, retry_after=7)
    throttled = httpx.get(url, headers=h)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    supabase_server.faults.clear()
    supabase_server.faults.seed(42)
    supabase_server.faults.fail(rate=0.3)
    first = [httpx.get(url, headers=h).status_code for _ in range(40)]
    supabase_server.faults.clear()
    supabase_server.faults.seed(42)
    supabase_server.faults.fail(rate=0.3)
    again = [httpx.get(url, headers=h).status_code for _ in range(40)]
    assert first == again and 5 <= first.count(503) <= 20


def test_drop_faults_and_latency(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    bucket = supabase_client.storage.from_("user-files")
    key = f"{supabase_user.uid}/dropped.txt"
    supabase_server.faults.drop(1, prefix="/storage/v1/object/user-files")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # closed or reset
        bucket.upload(key, b"a", {"content-type": "text/plain"})
    assert supabase_server.storage.get("user-files", key) is None
    supabase_server.faults.drop(1, after_handling=True, prefix="/storage/v1/object/user-files")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # closed or reset
        bucket.upload(key, b"a", {"content-type": "text/plain"})
    assert supabase_server.storage.get("user-files", key) is not None  # stored, answer lost
    with pytest.raises(StorageApiError) as err:  # so the retry sees a duplicate
        bucket.upload(key, b"a", {"content-type": "text/plain"})
    assert err.value.status == "409"
    supabase_server.faults.add_latency(0.2, prefix="/storage")
    started = time.monotonic()
    bucket.download(key)
    assert time.monotonic() - started >= 0.2
    faults = [e.fault for e in supabase_server.log.entries(prefix="/storage")]
    assert faults[:2] == ["drop", "drop_after"]


def test_stalled_requests_time_out_and_stop_stays_fast(
    supabase_server: SupabaseTestServer,
) -> None:
    url = f"{supabase_server.url}/auth/v1/settings"
    supabase_server.faults.stall(1, seconds=5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=headers(supabase_server), timeout=0.3)
    assert httpx.get(url, headers=headers(supabase_server)).status_code == 200
    supabase_server.faults.stall(1, seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=headers(supabase_server), timeout=0.3)
    started = time.monotonic()
    supabase_server.stop()  # a handler still stalled must not hold up shutdown
    assert time.monotonic() - started < 3


def test_open_connections_show_a_closed_pool(supabase_server: SupabaseTestServer) -> None:
    url = f"{supabase_server.url}/auth/v1/settings"
    with httpx.Client() as http:
        for _ in range(3):
            assert http.get(url, headers=headers(supabase_server)).status_code == 200
        assert supabase_server.open_connections() == 1  # one kept-alive connection
    for _ in range(100):
        if supabase_server.open_connections() == 0:
            break
        time.sleep(0.02)
    assert supabase_server.open_connections() == 0


def test_forced_token_expiry_then_refresh(
    supabase_server: SupabaseTestServer, supabase_client: Client, supabase_user: SupabaseUser
) -> None:
    bucket = supabase_client.storage.from_("user-files")
    key = f"{supabase_user.uid}/t.txt"
    bucket.upload(key, b"t", {"content-type": "text/plain"})
    supabase_server.auth.expire_access_tokens()
    with pytest.raises(StorageApiError) as err:
        supabase_client.storage.from_("user-files").download(key)
    # As the real server: a download with a bad token is anonymous, and anon sees no bucket.
    assert (err.value.status, err.value.message) == ("404", "Bucket not found")
    supabase_client.auth.refresh_session()
    assert supabase_client.storage.from_("user-files").download(key) == b"t"


def test_short_access_token_ttl(
    supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    # GoTrue's exp is whole seconds (issued second + TTL), so a 1 s token may already be
    # expired a moment after it is issued: 2 s leaves at least one second to use it.
    supabase_server.auth.set_access_token_ttl(2)
    session = supabase_server.auth.password_grant(supabase_user.email, supabase_user.password)
    assert session["expires_in"] == 2
    h = headers(supabase_server, session["access_token"])
    url = f"{supabase_server.url}/rest/v1/file_metadata"
    assert httpx.get(url, headers=h).status_code == 200
    time.sleep(max(0.0, session["expires_at"] - time.time()) + 1.1)
    assert httpx.get(url, headers=h).json()["code"] == "PGRST303"


# -- standalone ------------------------------------------------------------


def test_standalone_command_prints_url_and_keys() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.supabase_server",
            "--port",
            str(port),
            "--jwt-secret",
            SECRET,
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(3))
            assert lines["SUPABASE_URL"] == f"http://127.0.0.1:{port}"
            claims = jwt.decode(lines["SUPABASE_ANON_KEY"], SECRET, algorithms=["HS256"])
            assert claims["role"] == "anon"
            r = httpx.get(
                f"{lines['SUPABASE_URL']}/storage/v1/bucket",
                headers={
                    "apikey": lines["SUPABASE_ANON_KEY"],
                    "Authorization": f"Bearer {lines['SUPABASE_SERVICE_ROLE_KEY']}",
                },
            )
            assert {b["id"] for b in r.json()} == {"user-files", "results", "generated-files"}
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
