"""Downloads from Supabase resume with HTTP Range after an interruption, hash-checked whole.

The fast tests stop a download in this process (a cancelled task, like Ctrl-C); the slow
one kills ``hubsync get`` with SIGKILL in the middle of a 40 MB file (acceptance 2 of #15).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.cache import BlobCache
from sync.errors import IntegrityError
from sync.remotes.supabase import SupabaseRemote
from tests.fixtures.supabase import SupabaseUser
from tests.fixtures.supabase_remote import urandom_file
from tests.supabase_server import SupabaseTestServer
from tests.supabase_server.faults import LogEntry
from tests.test_hub_get import _supabase_home

pytest_plugins = ["tests.fixtures.supabase", "tests.fixtures.supabase_remote"]

OBJECTS = "/storage/v1/object/user-files/"


def _gets_since(server: SupabaseTestServer, since: float) -> list[LogEntry]:
    """Downloads the server started answering at or after ``since`` (the log of the
    stopped one may still arrive: the server notices the broken connection later)."""
    return [e for e in server.log.entries("GET", OBJECTS) if e.started >= since]


async def _stop_at_half(cache: BlobCache, remote: SupabaseRemote, key: str, sha: str) -> Path:
    part = cache.dir / "partial" / f"{sha}.part"
    task = asyncio.create_task(cache.download(remote, key, sha))
    size = 0
    while size < 1024 * 1024:
        if task.done():
            await task  # it failed: say why
            pytest.fail("the download finished before it could be stopped")
        await asyncio.sleep(0.02)
        size = part.stat().st_size if part.exists() else 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return part


async def test_a_stopped_download_resumes_with_a_range(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    size = 2 * 1024 * 1024
    sha = urandom_file(tmp_path / "big.bin", size)
    key = await hub_remote.put_blob(tmp_path / "big.bin", sha, size, "big.bin", "x/y")
    cache = BlobCache(tmp_path / "cache")
    supabase_server.faults.slow_body(2 * 1024 * 1024, prefix=OBJECTS)
    part = await _stop_at_half(cache, hub_remote, key, sha)
    kept = part.stat().st_size
    assert 0 < kept < size and part.with_suffix(".json").exists()
    supabase_server.faults.clear()
    cache.close()
    cache = BlobCache(tmp_path / "cache")  # a restart: the partial bytes are still there
    since = time.time()
    blob = await cache.download(hub_remote, key, sha)
    assert blob.read_bytes() == (tmp_path / "big.bin").read_bytes()
    (resumed,) = _gets_since(supabase_server, since)
    assert resumed.status == 206 and resumed.bytes_out == size - kept
    assert not part.exists() and not part.with_suffix(".json").exists()
    cache.close()


async def test_wrong_partial_bytes_are_caught_by_the_whole_hash_and_dropped(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    size = 2 * 1024 * 1024
    sha = urandom_file(tmp_path / "big.bin", size)
    key = await hub_remote.put_blob(tmp_path / "big.bin", sha, size, "big.bin", "x/y")
    cache = BlobCache(tmp_path / "cache")
    supabase_server.faults.slow_body(2 * 1024 * 1024, prefix=OBJECTS)
    part = await _stop_at_half(cache, hub_remote, key, sha)
    supabase_server.faults.clear()
    with open(part, "r+b") as f:  # a bit flipped on disk while it waited
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))
    with pytest.raises(IntegrityError):
        await cache.download(hub_remote, key, sha)
    assert not part.exists() and cache.lookup(sha) is None  # never served
    blob = await cache.download(hub_remote, key, sha)
    assert blob.read_bytes() == (tmp_path / "big.bin").read_bytes()
    cache.close()


async def test_the_test_server_answers_ranges_as_real_storage_does(
    hub_remote: SupabaseRemote, supabase_server: SupabaseTestServer, tmp_path: Path
) -> None:
    """Checked against storage-api v1.70.6 (/work/shared/real-storage): 206 with
    Content-Range and the ETag, 416 with a JSON error past the end, If-Range ignored."""
    sha = urandom_file(tmp_path / "f.bin", 100_000)
    key = await hub_remote.put_blob(tmp_path / "f.bin", sha, 100_000, "f.bin", "x/y")
    url = f"{supabase_server.url}/storage/v1/object/user-files/{key}"
    headers = hub_remote.session.headers()
    whole = await hub_remote.session.http.get(url, headers=headers)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    part = await hub_remote.session.http.get(
        url, headers={**headers, "Range": "bytes=60000-", "If-Range": '"other"'}
    )
    assert part.status_code == 206 and part.content == whole.content[60000:]
    assert part.headers["content-range"] == "bytes 60000-99999/100000"
    assert part.headers["etag"] == whole.headers["etag"]
    past = await hub_remote.session.http.get(url, headers={**headers, "Range": "bytes=100000-"})
    assert past.status_code == 416 and past.json()["code"] == "InvalidRange"


@pytest.mark.slow
def test_get_killed_at_half_fetches_under_60_percent_after_the_restart(
    tmp_path: Path, supabase_server: SupabaseTestServer, supabase_user: SupabaseUser
) -> None:
    size = 40 * 1024 * 1024
    a, _ = _supabase_home(tmp_path, supabase_server, supabase_user, "a", "laptop")
    b, b_env = _supabase_home(tmp_path, supabase_server, supabase_user, "b", "desk")
    docs = tmp_path / "docs"
    sha = urandom_file(docs / "big.bin", size)
    a("add", str(docs), "--hub", "supabase")
    a("sync", "--once")
    supabase_server.faults.slow_body(8 * 1024 * 1024, prefix=OBJECTS)
    part = tmp_path / "b" / "cache" / "blobs" / "partial" / f"{sha}.part"
    args = [sys.executable, "-m", "agent", "get", "laptop:docs/big.bin", "--to", str(tmp_path)]
    first = subprocess.Popen(args, env=b_env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not part.exists() or part.stat().st_size < size // 2:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    kept = part.stat().st_size
    supabase_server.faults.clear()
    since = time.time()
    b("get", "laptop:docs/big.bin", "--to", str(tmp_path))
    after = sum(e.bytes_out for e in _gets_since(supabase_server, since))
    print(f"kept {kept / size:.0%} of {size} bytes; fetched after the restart {after / size:.1%}")
    assert after < 0.6 * size and after == size - kept
    assert (tmp_path / "big.bin").read_bytes() == (docs / "big.bin").read_bytes()
