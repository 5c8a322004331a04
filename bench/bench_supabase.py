"""Supabase remote throughput against the Supabase test server, compared with curl.

    .venv/bin/python -m bench.bench_supabase [--size-mb 200] [--files 2000] [--rps 0]
        [--real] [--delay-ms 0,20]

``--real``: Storage is the real Supabase Storage server (../shared/real-storage,
started for the run, file backend) behind the test server's gateway mode, as
Kong routes it; auth and REST stay on the test server. ``--delay-ms`` adds that
much round trip to every request in the gateway (a laptop on Wi-Fi sees ~20 ms);
each figure below is measured once per delay, curl going through the same gateway.

1. One large file through ``SupabaseRemote.put_blob`` (TUS, 6 MiB chunks,
   hashed while read, size checked afterwards, file_metadata row) versus
   ``curl`` sending the same bytes to the same TUS endpoint (create + one
   PATCH per 6 MiB chunk on one connection). Prints both throughputs and the
   ratio (remote / curl; the budget is >= 0.8).
2. Many small files (default 2,000 x 16 KiB): one batched ``find_blobs``, then
   ``put_blob`` for each with 8 in flight, then ``record`` of all manifest rows.
   Prints files/s.

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

from supabase_auth import AsyncMemoryStorage

from sync.remotes.base import ManifestEntry
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import TUS_CHUNK, SupabaseSession, SupabaseSettings
from tests.fixtures.real_storage import start_real_storage, stop_real_storage

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
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, upstream, secret, str(delay)],
        cwd=root,
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


async def remote_upload(remote: SupabaseRemote, path: Path, sha: str, size: int) -> float:
    started = time.perf_counter()
    await remote.put_blob(path, sha, size, "bench.bin", "application/octet-stream")
    return time.perf_counter() - started


def curl_upload(
    url: str, anon: str, token: str, uid: str, path: Path, size: int, work: Path
) -> float:
    """The same bytes to the same TUS endpoint with curl, chunk files prepared untimed."""
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
            "objectName": f"{uid}/curl/bench.bin",
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
    if not locations:
        raise RuntimeError(f"curl could not create the upload: {created.stdout[:300]}")
    location = locations[0]
    args = ["curl", "-sS", "-o", "/dev/null"]
    for n, chunk in enumerate(chunks):
        if n:
            args.append("--next")
        args += [
            "-o",
            "/dev/null",
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
    subprocess.run(args, check=True)
    return time.perf_counter() - started


async def small_files(remote: SupabaseRemote, work: Path, count: int, size: int) -> float:
    files = []
    for i in range(count):
        data = os.urandom(size)
        path = work / f"small{i:05d}.bin"
        path.write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    sem = asyncio.Semaphore(8)

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
            for _ in range(args.rounds):  # alternate, so neither side always goes first
                remote_times.append(await remote_upload(remote, big, sha, size))
                rss_remote = peak_rss_mb()
                curl_times.append(
                    await asyncio.to_thread(
                        curl_upload, info["url"], info["anon"], token, info["uid"], big, size, cwork
                    )
                )
            t_remote, t_curl = statistics.median(remote_times), statistics.median(curl_times)
            shutil.rmtree(cwork)
            big.unlink()
            mb = size / 1e6
            print(f"large file: {args.size_mb} MiB, median of {args.rounds} alternating rounds")
            print(f"  remote (tuspy over httpx): {t_remote:6.2f} s  {mb / t_remote:7.1f} MB/s")
            print(f"  curl (same TUS endpoint):  {t_curl:6.2f} s  {mb / t_curl:7.1f} MB/s")
            print(f"  ratio remote/curl throughput: {t_curl / t_remote:.2f} (target >= 0.90)")
            print(f"  peak RSS: {rss_before:.0f} MB before, {rss_remote:.0f} MB after the upload")
            small = work / "small"
            small.mkdir()
            t_small = await small_files(remote, small, args.files, 16 * 1024)
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
    parser.add_argument("--rps", type=float, default=0.0, help="client request limit (0: off)")
    parser.add_argument("--real", action="store_true", help="the real Storage server")
    parser.add_argument("--delay-ms", default="0", help="added round trips, e.g. 0,20")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
