"""One request sequence sent to the test server and to the real Storage server.

Raw httpx, so nothing in between smooths the answers over. Every step's
status, body ``statusCode``/``code``/``error`` (and, where they matter, the
TUS headers and the field names of list/info entries) must agree, so the test
server cannot drift from the real one again. The real one is reached through
the gateway mode, as a Supabase project's Kong would route it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from tests.fixtures.real_storage import RealStorage, start_real_gateway
from tests.fixtures.supabase import make_user
from tests.supabase_server import SupabaseTestServer

Summary = dict[str, Any]


@dataclass
class Ctx:
    """What the steps need: who is who on one server, and what earlier steps learned."""

    server: SupabaseTestServer
    http: httpx.Client
    a: str = ""
    b: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    learned: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        headers = {"apikey": self.server.anon_key, **extra}
        if who != "none":
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return headers


def _token(ctx: Ctx, uid: str, *, exp_in: int, secret: str | None = None) -> str:
    claims = {
        "sub": uid,
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + exp_in,
    }
    return jwt.encode(claims, secret or ctx.server.jwt_secret, algorithm="HS256")


def _sign_in(ctx: Ctx, name: str) -> tuple[str, str]:
    user = make_user(ctx.server, name)
    answer = ctx.http.post(
        "/auth/v1/token?grant_type=password",
        headers={"apikey": ctx.server.anon_key},
        json={"email": user.email, "password": user.password},
    )
    answer.raise_for_status()
    return user.uid, str(answer.json()["access_token"])


def prepare(ctx: Ctx) -> None:
    ctx.a, ctx.tokens["alice"] = _sign_in(ctx, "alice")
    ctx.b, ctx.tokens["bob"] = _sign_in(ctx, "bob")
    ctx.tokens["service"] = ctx.server.service_key
    ctx.tokens["anon"] = ctx.server.anon_key
    ctx.tokens["expired"] = _token(ctx, ctx.a, exp_in=-120)
    ctx.tokens["badsig"] = _token(ctx, ctx.a, exp_in=600, secret="x" * 40)


def _meta(bucket: str, key: str) -> str:
    pairs = (("bucketName", bucket), ("objectName", key), ("contentType", "text/plain"))
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs)


def _tus_path(ctx: Ctx, label: str) -> str:
    location = ctx.learned[label]
    return location[location.index("/storage/v1/") :]


Request = Callable[[Ctx], httpx.Response]


def upload(who: str, key: str, data: bytes = b"hello", **extra: str) -> Request:
    def send(ctx: Ctx) -> httpx.Response:
        path = f"/storage/v1/object/user-files/{key.format(a=ctx.a, b=ctx.b)}"
        headers = ctx.headers(who, **{"Content-Type": "text/plain", **extra})
        return ctx.http.post(path, headers=headers, content=data)

    return send


def call(
    method: str,
    who: str,
    path: str,
    body: Any = None,
    **extra: str,
) -> Request:
    def send(ctx: Ctx) -> httpx.Response:
        url = "/storage/v1/" + path.format(a=ctx.a, b=ctx.b)
        kwargs: dict[str, Any] = {"headers": ctx.headers(who, **extra)}
        if body is not None:
            kwargs["json"] = json.loads(
                json.dumps(body).replace("{a}", ctx.a).replace("{b}", ctx.b)
            )
        return ctx.http.request(method, url, **kwargs)

    return send


def signed(label: str, token_suffix: str = "") -> Request:
    def send(ctx: Ctx) -> httpx.Response:
        return ctx.http.get("/storage/v1" + ctx.learned[label] + token_suffix)

    return send


def tus_create(who: str, key: str, length: int = 10, **extra: str) -> Request:
    def send(ctx: Ctx) -> httpx.Response:
        headers = ctx.headers(
            who,
            **{
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(length),
                "Upload-Metadata": _meta("user-files", key.format(a=ctx.a, b=ctx.b)),
                **extra,
            },
        )
        return ctx.http.post("/storage/v1/upload/resumable", headers=headers)

    return send


def tus(method: str, who: str, label: str, data: bytes = b"", **extra: str) -> Request:
    def send(ctx: Ctx) -> httpx.Response:
        headers = ctx.headers(who, **{"Tus-Resumable": "1.0.0", **extra})
        content = data if method == "PATCH" else None
        return ctx.http.request(method, _tus_path(ctx, label), headers=headers, content=content)

    return send


OCTETS = "application/offset+octet-stream"


@dataclass(frozen=True)
class Step:
    label: str
    request: Request
    learn: str | None = None  # remember the Location (TUS) or signedURL under this label
    entries: bool = False  # compare the field names of the answer's entries too
    tus_headers: bool = False  # compare which TUS headers the answer carries


STEPS: tuple[Step, ...] = (
    Step("upload own", upload("alice", "{a}/c/one.txt")),
    Step("upload again", upload("alice", "{a}/c/one.txt")),
    Step("upload again x-upsert", upload("alice", "{a}/c/one.txt", **{"x-upsert": "true"})),
    Step("bob uploads own", upload("bob", "{b}/c/bob.txt")),
    Step("upload into bob's folder", upload("alice", "{b}/c/evil.txt")),
    Step("upload without Authorization", upload("none", "{a}/c/x.txt")),
    Step("upload anon", upload("anon", "{a}/c/x.txt")),
    Step("upload expired token", upload("expired", "{a}/c/x.txt")),
    Step("upload bad signature", upload("badsig", "{a}/c/x.txt")),
    Step("upload invalid key", upload("alice", "{a}/c/bad%23name.txt")),
    Step("upload missing bucket", call("POST", "alice", "object/nope/{a}/x.txt")),
    Step("upload service anywhere", upload("service", "{a}/s/svc.txt")),
    Step("PUT creates a missing key", call("PUT", "alice", "object/user-files/{a}/c/put.txt")),
    Step("download own", call("GET", "alice", "object/user-files/{a}/c/one.txt")),
    Step(
        "download authenticated",
        call("GET", "alice", "object/authenticated/user-files/{a}/c/one.txt"),
    ),
    Step("download missing", call("GET", "alice", "object/user-files/{a}/c/missing.txt")),
    Step("download bob's", call("GET", "alice", "object/user-files/{b}/c/bob.txt")),
    Step("download expired token", call("GET", "expired", "object/user-files/{a}/c/one.txt")),
    Step("download bad signature", call("GET", "badsig", "object/user-files/{a}/c/one.txt")),
    Step(
        "download authenticated, expired token",
        call("GET", "expired", "object/authenticated/user-files/{a}/c/one.txt"),
    ),
    Step(
        "info authenticated, expired token",
        call("GET", "expired", "object/info/authenticated/user-files/{a}/c/one.txt"),
    ),
    Step("download without Authorization", call("GET", "none", "object/user-files/{a}/c/one.txt")),
    Step("info own", call("GET", "alice", "object/info/user-files/{a}/c/one.txt"), entries=True),
    Step("info missing", call("GET", "alice", "object/info/user-files/{a}/c/missing.txt")),
    Step("info bob's", call("GET", "alice", "object/info/user-files/{b}/c/bob.txt")),
    Step("info expired token", call("GET", "expired", "object/info/user-files/{a}/c/one.txt")),
    Step("HEAD own", call("HEAD", "alice", "object/user-files/{a}/c/one.txt")),
    Step("HEAD missing", call("HEAD", "alice", "object/user-files/{a}/c/missing.txt")),
    Step(
        "list with prefix",
        call("POST", "alice", "object/list/user-files", {"prefix": "{a}/c"}),
        entries=True,
    ),
    Step(
        "list folders",
        call("POST", "alice", "object/list/user-files", {"prefix": "{a}"}),
        entries=True,
    ),
    Step("list without prefix", call("POST", "alice", "object/list/user-files", {"limit": 10})),
    Step("list bob's folder", call("POST", "alice", "object/list/user-files", {"prefix": "{b}/c"})),
    Step("list missing bucket", call("POST", "alice", "object/list/nope", {"prefix": "{a}"})),
    Step(
        "list expired token", call("POST", "expired", "object/list/user-files", {"prefix": "{a}"})
    ),
    Step(
        "list without Authorization",
        call("POST", "none", "object/list/user-files", {"prefix": "{a}"}),
    ),
    Step(
        "sign own",
        call("POST", "alice", "object/sign/user-files/{a}/c/one.txt", {"expiresIn": 60}),
        learn="signed",
    ),
    Step(
        "sign missing",
        call("POST", "alice", "object/sign/user-files/{a}/c/missing.txt", {"expiresIn": 60}),
    ),
    Step(
        "sign bob's",
        call("POST", "alice", "object/sign/user-files/{b}/c/bob.txt", {"expiresIn": 60}),
    ),
    Step("fetch signed URL", signed("signed")),
    Step("fetch signed URL, bad token", signed("signed", "x")),
    Step("TUS options", call("OPTIONS", "none", "upload/resumable"), tus_headers=True),
    Step("TUS create own", tus_create("alice", "{a}/t/ten.txt"), learn="tus", tus_headers=True),
    Step("TUS create existing key", tus_create("alice", "{a}/c/one.txt")),
    Step(
        "TUS create existing key x-upsert",
        tus_create("alice", "{a}/c/one.txt", **{"x-upsert": "true"}),
        tus_headers=True,
    ),
    Step("TUS create in bob's folder", tus_create("alice", "{b}/t/evil.txt")),
    Step("TUS create without Authorization", tus_create("none", "{a}/t/x.txt")),
    Step("TUS create expired token", tus_create("expired", "{a}/t/x.txt")),
    Step("TUS create bad signature", tus_create("badsig", "{a}/t/x.txt")),
    Step("TUS create too large", tus_create("alice", "{a}/t/huge.bin", length=60 * 1024**2)),
    Step("TUS HEAD new", tus("HEAD", "alice", "tus"), tus_headers=True),
    Step(
        "TUS PATCH without content type",
        tus("PATCH", "alice", "tus", b"abc", **{"Upload-Offset": "0"}),
    ),
    Step(
        "TUS PATCH wrong offset",
        tus("PATCH", "alice", "tus", b"abc", **{"Upload-Offset": "5", "Content-Type": OCTETS}),
    ),
    Step(
        "TUS PATCH 3 bytes",
        tus("PATCH", "alice", "tus", b"abc", **{"Upload-Offset": "0", "Content-Type": OCTETS}),
        tus_headers=True,
    ),
    Step("TUS HEAD by bob", tus("HEAD", "bob", "tus"), tus_headers=True),
    Step(
        "TUS PATCH by bob",
        tus("PATCH", "bob", "tus", b"def", **{"Upload-Offset": "3", "Content-Type": OCTETS}),
    ),
    Step(
        "TUS PATCH expired token",
        tus("PATCH", "expired", "tus", b"def", **{"Upload-Offset": "3", "Content-Type": OCTETS}),
    ),
    Step("TUS HEAD expired token", tus("HEAD", "expired", "tus")),
    Step(
        "TUS PATCH rest",
        tus("PATCH", "alice", "tus", b"defghij", **{"Upload-Offset": "3", "Content-Type": OCTETS}),
        tus_headers=True,
    ),
    Step("download TUS object", call("GET", "alice", "object/user-files/{a}/t/ten.txt")),
    Step("TUS create another", tus_create("alice", "{a}/t/two.txt"), learn="tus2"),
    Step("TUS DELETE by bob", tus("DELETE", "bob", "tus2")),
    Step("TUS DELETE by anon", tus("DELETE", "anon", "tus2")),
    Step("TUS HEAD by anon", tus("HEAD", "anon", "tus2"), tus_headers=True),
    Step("TUS DELETE own", tus("DELETE", "alice", "tus2")),
    Step("TUS HEAD deleted", tus("HEAD", "alice", "tus2")),
    Step(
        "TUS PATCH after the end",
        tus("PATCH", "alice", "tus", b"k", **{"Upload-Offset": "10", "Content-Type": OCTETS}),
    ),
    Step("buckets as a user", call("GET", "alice", "bucket")),
    Step("a bucket as a user", call("GET", "alice", "bucket/user-files")),
    Step("create a bucket as a user", call("POST", "alice", "bucket", {"name": "mine"})),
    Step(
        "copy own",
        call(
            "POST",
            "alice",
            "object/copy",
            {
                "bucketId": "user-files",
                "sourceKey": "{a}/c/put.txt",
                "destinationKey": "{a}/c/cp.txt",
            },
        ),
    ),
    Step(
        "copy into bob's folder",
        call(
            "POST",
            "alice",
            "object/copy",
            {
                "bucketId": "user-files",
                "sourceKey": "{a}/c/put.txt",
                "destinationKey": "{b}/c/cp.txt",
            },
        ),
    ),
    Step(
        "move own",
        call(
            "POST",
            "alice",
            "object/move",
            {
                "bucketId": "user-files",
                "sourceKey": "{a}/c/cp.txt",
                "destinationKey": "{a}/c/mv.txt",
            },
        ),
    ),
    Step(
        "move missing",
        call(
            "POST",
            "alice",
            "object/move",
            {
                "bucketId": "user-files",
                "sourceKey": "{a}/c/cp.txt",
                "destinationKey": "{a}/c/mv2.txt",
            },
        ),
    ),
    Step(
        "delete bob's as alice",
        call("DELETE", "alice", "object/user-files", {"prefixes": ["{b}/c/bob.txt"]}),
    ),
    Step("download bob's as bob", call("GET", "bob", "object/user-files/{b}/c/bob.txt")),
    Step(
        "delete own",
        call("DELETE", "alice", "object/user-files", {"prefixes": ["{a}/c/one.txt"]}),
        entries=True,
    ),
    Step(
        "delete missing",
        call("DELETE", "alice", "object/user-files", {"prefixes": ["{a}/c/one.txt"]}),
    ),
    Step("download deleted", call("GET", "alice", "object/user-files/{a}/c/one.txt")),
)


def summarize(step: Step, response: httpx.Response) -> Summary:
    summary: Summary = {"status": response.status_code}
    try:
        body = response.json() if response.content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        summary |= {k: body.get(k) for k in ("statusCode", "code", "error") if k in body}
    if step.entries:
        entries = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
        summary["fields"] = sorted({name for entry in entries for name in entry})
    if step.tus_headers:
        summary["tus"] = {
            name: response.headers.get(name)
            for name in ("Upload-Offset", "Upload-Length", "Tus-Extension", "Tus-Version")
            if name in response.headers
        }
        for name in ("Upload-Offset", "Upload-Length"):
            if name in summary["tus"]:
                summary["tus"][name] = "present"
    return summary


def run(ctx: Ctx) -> list[Summary]:
    prepare(ctx)
    results = []
    for step in STEPS:
        response = step.request(ctx)
        if step.learn == "signed" and response.is_success:
            ctx.learned[step.learn] = str(response.json()["signedURL"])
        elif step.learn and "Location" in response.headers:
            ctx.learned[step.learn] = response.headers["Location"]
        results.append(summarize(step, response))
    return results


@pytest.fixture
def both_servers(
    real_storage: RealStorage,
) -> Iterator[tuple[SupabaseTestServer, SupabaseTestServer]]:
    test_server = SupabaseTestServer(seed=1).start()
    real = start_real_gateway(real_storage)
    try:
        yield test_server, real
    finally:
        real.stop()
        test_server.stop()


def test_test_server_answers_as_the_real_storage_server(
    both_servers: tuple[SupabaseTestServer, SupabaseTestServer],
) -> None:
    outcomes = []
    for server in both_servers:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            outcomes.append(run(Ctx(server, http)))
    ours, real = outcomes
    assert len(STEPS) >= 40
    differences = [
        f"{step.label}: test server {json.dumps(mine)} / real {json.dumps(theirs)}"
        for step, mine, theirs in zip(STEPS, ours, real, strict=True)
        if mine != theirs
    ]
    assert not differences, "\n".join(differences)
