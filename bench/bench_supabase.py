"""Supabase remote throughput against the Supabase test server, compared with curl.

    .venv/bin/python bench/bench_supabase.py [--size-mb 200] [--files 2000] [--rps 0]
        [--rounds 3] [--real] [--delay-ms 0,20]

``--real``: Storage is the real Supabase Storage server (../shared/real-storage,
started for the run, file backend) behind the test server's gateway mode, as
Kong routes it; auth and REST stay on the test server. ``--delay-ms`` adds that
much round trip to every request in the gateway (a laptop on Wi-Fi sees ~20 ms);
each figure below is measured once per delay, curl going through the same gateway.

1. One large file through ``SupabaseRemote.put_blob`` (TUS, 6 MiB chunks,
   hashed while read, size checked afterwards, file_metadata row) versus
   ``curl`` sending the same bytes to the same TUS endpoint (create + one
   PATCH per 6 MiB chunk on one connection), alternating for ``--rounds``
   rounds, each upload to an object of its own (the real server refuses a second
   TUS upload to a finished object with 409) and each answer's status checked.
   Prints both throughputs and the ratio of HubSync's throughput to curl's
   (above 1: HubSync faster; the target is >= 0.9).
2. Many small files (default 2,000 x 16 KiB): one batched ``find_blobs``, then
   ``put_blob`` for each with ``--in-flight`` at once (default: the engine's
   ``SupabaseRemote.parallel_uploads``), then ``record`` of all manifest rows.
   Prints files/s; the target is that 20 ms keeps >= 60% of the 0 ms figure.
   Each put_blob is an upload, then a wait for its grouped file_metadata write
   (a look-up by hash, then an insert: two round trips, one group at a time),
   so files/s at a given delay grows with the files in flight.

The server runs in its own process so it does not share our GIL. ``--rps 0``
lifts the client-side request limit (the config default is 20 requests/s,
which by itself caps small files at ~10/s: one upload plus one metadata row).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fixtures, when run as a script

from supabase_auth import AsyncMemoryStorage  # noqa: E402

from sync.remotes.base import ManifestEntry  # noqa: E402
from sync.remotes.supabase import SupabaseRemote  # noqa: E402
from sync.remotes.supabase.session import TUS_CHUNK, SupabaseSession, SupabaseSettings  # noqa: E402
from tests.fixtures.real_storage import start_real_storage, stop_real_storage  # noqa: E402

MiB = 1024 * 1024
EMAIL, PASSWORD = "bench@example.com", "bench-password-1"

SERVER = f"""
import json, sys
from tests.supabase_server import SupabaseTestServer
upstream, secret, delay = sys.argv[1] or None, sys.argv[2] or None, float(sys.argv[3])
server = SupabaseTestServer(
    upload_limit=4 * 1024**3, storage_upstream=upstream, jwt_secret=secret
).start()
if delay:
    server.faults.add_latency(delay)
uid = server.create_user({EMAIL!r}, {PASSWORD!r})
print(json.dumps({{"url": server.url, "anon": server.anon_key, "uid": uid}}), flush=True)
sys.stdin.read()
server.stop()
"""


def start_server(
    delay: float, upstream: str = "", secret: str = ""
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The test server in its own process (a gateway to ``upstream`` when given)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, upstream, secret, str(delay)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info: dict[str, str] = json.loads(proc.stdout.readline())
    return proc, info


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def remote_upload(
    remote: SupabaseRemote, path: Path, sha: str, size: int, name: str
) -> float:
    """put_blob raises unless every request succeeded and the stored size matches."""
    started = time.perf_counter()
    await remote.put_blob(path, sha, size, name, "application/octet-stream")
    return time.perf_counter() - started


def http_statuses(headers: str) -> list[int]:
    """The status of each response in curl's ``-i``/``-D -`` output (``100 Continue`` too)."""
    return [
        int(line.split()[1])
        for line in headers.splitlines()
        if line.startswith("HTTP/") and len(line.split()) > 1
    ]


def check_statuses(what: str, statuses: list[int], expected: int) -> None:
    final = [code for code in statuses if code >= 200]
    if len(final) != expected or any(not 200 <= code < 300 for code in final):
        raise RuntimeError(f"curl {what}: HTTP statuses {final}, expected {expected} x 2xx")


def curl_upload(
    url: str, anon: str, token: str, uid: str, path: Path, size: int, work: Path, name: str
) -> float:
    """The same bytes to the same TUS endpoint with curl, chunk files prepared untimed;
    ``name`` is a fresh object name (a finished object refuses another upload)."""
    chunks: list[Path] = []
    with open(path, "rb") as src:
        for i in range(0, size, TUS_CHUNK):
            chunk = work / f"chunk{i // TUS_CHUNK:04d}"
            chunk.write_bytes(src.read(TUS_CHUNK))
            chunks.append(chunk)
    auth = ["-H", f"Authorization: Bearer {token}", "-H", f"apikey: {anon}"]
    tus = ["-H", "Tus-Resumable: 1.0.0", "-H", "Expect:"]
    metadata = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {
            "bucketName": "user-files",
            "objectName": f"{uid}/curl/{name}",
            "contentType": "application/octet-stream",
        }.items()
    )
    started = time.perf_counter()
    created = subprocess.run(
        [
            "curl",
            "-sS",
            "-i",
            "-X",
            "POST",
            *auth,
            *tus,
            "-H",
            f"Upload-Length: {size}",
            "-H",
            f"Upload-Metadata: {metadata}",
            "-H",
            "x-upsert: true",
            f"{url}/storage/v1/upload/resumable",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    locations = [
        line.split(":", 1)[1].strip()
        for line in created.stdout.splitlines()
        if line.lower().startswith("location:")
    ]
    check_statuses("creating the upload", http_statuses(created.stdout), 1)
    if not locations:
        raise RuntimeError(f"curl could not create the upload: {created.stdout[:300]}")
    location = locations[0]
    args = ["curl", "-sS"]
    for n, chunk in enumerate(chunks):
        if n:
            args.append("--next")
        args += [
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-X",
            "PATCH",
            *auth,
            *tus,
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            f"Upload-Offset: {n * TUS_CHUNK}",
            "--data-binary",
            f"@{chunk}",
            location,
        ]
    sent = subprocess.run(args, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    check_statuses("sending the chunks", http_statuses(sent.stdout), len(chunks))
    return elapsed


async def small_files(
    remote: SupabaseRemote, work: Path, count: int, size: int, in_flight: int
) -> float:
    files = []
    for i in range(count):
        data = os.urandom(size)
        path = work / f"small{i:05d}.bin"
        path.write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    sem = asyncio.Semaphore(in_flight)

    async def push(path: Path, sha: str) -> str:
        async with sem:
            return await remote.put_blob(path, sha, size, path.name, "application/octet-stream")

    started = time.perf_counter()
    known = await remote.find_blobs([sha for _, sha in files])
    keys = await asyncio.gather(*(push(p, s) for p, s in files if s not in known))
    entries = [
        ManifestEntry("bench-dev", "bench-root", str(work), p.name, s, size, 0, 1, k)
        for (p, s), k in zip(files, keys, strict=True)
    ]
    await remote.record(entries)
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> None:
    real = None
    base = Path(tempfile.mkdtemp(prefix="hubsync-bench-rs-", dir="/tmp"))
    try:
        if args.real:
            limit = str(max(args.size_mb * MiB * 2, 50 * MiB))
            real = start_real_storage(base, REAL_STORAGE_FILE_SIZE_LIMIT=limit)
        for delay_ms in (float(d) for d in args.delay_ms.split(",")):
            where = "real Storage via the gateway" if real else "test server"
            print(f"== {where}, added round trip {delay_ms:g} ms")
            upstream, secret = (real.url, real.jwt_secret) if real else ("", "")
            await run_once(args, delay_ms / 1000, upstream, secret)
    finally:
        if real is not None:
            stop_real_storage(base)
        shutil.rmtree(base, ignore_errors=True)


async def run_once(args: argparse.Namespace, delay: float, upstream: str, secret: str) -> None:
    proc, info = start_server(delay, upstream, secret)
    work = Path(tempfile.mkdtemp(prefix="hubsync-bench-"))
    try:
        settings = SupabaseSettings(info["url"], info["anon"], requests_per_second=args.rps)
        session = await SupabaseSession.sign_in(settings, AsyncMemoryStorage(), EMAIL, PASSWORD)
        remote = SupabaseRemote(session)
        try:
            size = args.size_mb * MiB
            big = work / "big.bin"
            sha = random_file(big, size)
            rss_before = peak_rss_mb()
            token = session.authorization.removeprefix("Bearer ")
            cwork = work / "curl"
            cwork.mkdir()
            remote_times: list[float] = []
            curl_times: list[float] = []
            for n in range(args.rounds):  # alternate, so neither side always goes first
                name = f"bench-{delay * 1000:g}ms-{n}.bin"
                remote_times.append(await remote_upload(remote, big, sha, size, name))
                rss_remote = peak_rss_mb()
                curl_times.append(
                    await asyncio.to_thread(
                        curl_upload,
                        *(info["url"], info["anon"], token, info["uid"], big, size, cwork, name),
                    )
                )
            t_remote, t_curl = statistics.median(remote_times), statistics.median(curl_times)
            shutil.rmtree(cwork)
            big.unlink()
            mb = size / 1e6
            print(f"large file: {args.size_mb} MiB, median of {args.rounds} alternating rounds")
            print(f"  remote (tuspy over httpx): {t_remote:6.2f} s  {mb / t_remote:7.1f} MB/s")
            print(f"  curl (same TUS endpoint):  {t_curl:6.2f} s  {mb / t_curl:7.1f} MB/s")
            print(
                f"  ratio remote/curl throughput: {t_curl / t_remote:.2f} "
                "(above 1: HubSync faster; target >= 0.90)"
            )
            print(f"  peak RSS: {rss_before:.0f} MB before, {rss_remote:.0f} MB after the upload")
            small = work / "small"
            small.mkdir()
            t_small = await small_files(remote, small, args.files, 16 * 1024, args.in_flight)
            print(
                f"small files: {args.files} x 16 KiB in {t_small:.2f} s = "
                f"{args.files / t_small:.0f} files/s (rps limit: {args.rps or 'off'})"
            )
            print(f"peak RSS: {peak_rss_mb():.0f} MB")
        finally:
            await remote.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=SupabaseRemote.parallel_uploads,
        help="small files put at once (default: what the engine uses for this hub)",
    )
    parser.add_argument("--rps", type=float, default=0.0, help="client request limit (0: off)")
    parser.add_argument("--real", action="store_true", help="the real Storage server")
    parser.add_argument("--delay-ms", default="0", help="added round trips, e.g. 0,20")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
