"""The gateway mode of the test server in front of the real Storage server."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from storage3.exceptions import StorageApiError
from supabase import ClientOptions, create_client

from tests.fixtures.real_storage import RealStorage, start_real_gateway
from tests.fixtures.supabase import make_user
from tests.supabase_server import SupabaseTestServer


def test_signed_in_user_reaches_real_storage_through_gateway(
    real_gateway: SupabaseTestServer,
) -> None:
    user = make_user(real_gateway, "alice")
    with httpx.Client(timeout=30) as http:
        options = ClientOptions(httpx_client=http, auto_refresh_token=False)
        client = create_client(real_gateway.url, real_gateway.anon_key, options)
        client.auth.sign_in_with_password({"email": user.email, "password": user.password})
        bucket = client.storage.from_("user-files")
        bucket.upload(f"{user.uid}/aa/hello.txt", b"hello")
        assert bucket.download(f"{user.uid}/aa/hello.txt") == b"hello"


def test_tus_location_points_back_at_the_gateway(real_gateway: SupabaseTestServer) -> None:
    user = make_user(real_gateway, "alice")
    with httpx.Client(base_url=real_gateway.url, timeout=30) as http:
        session = http.post(
            "/auth/v1/token?grant_type=password",
            headers={"apikey": real_gateway.anon_key},
            json={"email": user.email, "password": user.password},
        ).json()
        meta = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}"
            for k, v in (("bucketName", "user-files"), ("objectName", f"{user.uid}/t.bin"))
        )
        created = http.post(
            "/storage/v1/upload/resumable",
            headers={
                "apikey": real_gateway.anon_key,
                "Authorization": f"Bearer {session['access_token']}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "3",
                "Upload-Metadata": meta,
            },
        )
        assert created.status_code == 201, created.text
        assert created.headers["Location"].startswith(
            f"{real_gateway.url}/storage/v1/upload/resumable/"
        )


def test_short_lived_tokens_of_the_gateway_expire_on_the_real_server(
    real_storage: RealStorage,
) -> None:
    # exp is whole seconds (issued second + TTL): 3 s leaves two to use the fresh token.
    server = start_real_gateway(real_storage, access_token_ttl=3)
    try:
        user = make_user(server, "alice")
        with httpx.Client(timeout=30) as http:
            options = ClientOptions(httpx_client=http, auto_refresh_token=False)
            client = create_client(server.url, server.anon_key, options)
            signed_in = client.auth.sign_in_with_password(
                {"email": user.email, "password": user.password}
            )
            assert signed_in.session is not None and signed_in.session.expires_at is not None
            bucket = client.storage.from_("user-files")
            bucket.upload(f"{user.uid}/fresh.txt", b"ok")
            # the token's remaining life, plus a second of exp granularity
            time.sleep(max(0.0, signed_in.session.expires_at - time.time()) + 1.1)
            with pytest.raises(StorageApiError) as refused:
                bucket.upload(f"{user.uid}/late.txt", b"late")
            assert refused.value.message == '"exp" claim timestamp check failed'
    finally:
        server.stop()


def test_added_round_trip_delays_every_request(real_gateway: SupabaseTestServer) -> None:
    real_gateway.faults.add_latency(0.02)
    with httpx.Client(base_url=real_gateway.url, timeout=30) as http:
        answer = http.get("/storage/v1/bucket", headers={"apikey": real_gateway.anon_key})
    assert answer.status_code == 400  # forwarded: the real server wants a token
    assert real_gateway.log.entries("GET", "/storage/v1/bucket")[0].duration >= 0.02


def test_gateway_answers_502_when_the_real_server_is_down() -> None:
    with SupabaseTestServer(storage_upstream="http://127.0.0.1:9") as server:
        answer = httpx.get(
            f"{server.url}/storage/v1/bucket", headers={"apikey": server.anon_key}, timeout=30
        )
    assert answer.status_code == 502
