"""The gateway mode of the test server in front of the real Storage server."""

from __future__ import annotations

import base64

import httpx
from supabase import ClientOptions, create_client

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
