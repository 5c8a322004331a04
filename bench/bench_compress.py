"""Compressed history: storage saved on a text-heavy history, and what a restore costs.

    .venv/bin/python -m bench.bench_compress [--files 60] [--versions 10] [--rounds 3]
                                             [--supabase]

Builds a history from the repository's own sources and documents (Python modules,
Markdown, SQL, TOML): ``--files`` files, ``--versions`` versions each, every version
an edit of the one before (lines inserted, deleted, changed, moved, as a day of work
does). They go into a local hub the way the engine stores them (blob, then manifest
row); then the compaction step compresses every superseded version. Printed:

- storage of the history (bytes under the hub's ``user-files``) before and after, and
  the share saved (seed target > 20%); the codec mix;
- the time of the compaction (CPU-bound: zstd/gzip) and its throughput;
- the time to read back (hash-checked, as ``restore``/``get`` do) every superseded
  version, raw before and compressed after: the extra time of a restore;
- peak Python memory of a compaction round (tracemalloc) and the process's peak RSS;
- with ``--supabase``, compaction and restore times on the Supabase test server.

Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from sync.compaction import compact
from sync.history_store import packed_history
from sync.remotes.base import ManifestEntry, Remote
from sync.remotes.local import LocalHub
from sync.remotes.supabase import SupabaseRemote
from sync.remotes.supabase.session import SupabaseSession, SupabaseSettings

REPO = Path(__file__).resolve().parents[1]
PATTERNS = (
    "sync/**/*.py",
    "agent/**/*.py",
    "gui/**/*.py",
    "docs/**/*.md",
    "*.md",
    "resources/**/*.sql",
    "*.toml",
)


def sources(count: int) -> list[Path]:
    found = sorted({p for pattern in PATTERNS for p in REPO.glob(pattern) if p.is_file()})
    found = [p for p in found if 2_000 <= p.stat().st_size <= 200_000]
    rng = random.Random(16)
    rng.shuffle(found)
    return sorted(found[:count])


def edit(lines: list[str], rng: random.Random, pool: list[str]) -> list[str]:
    """One version's worth of edits: a few hunks of insertions, deletions, changes."""
    out = list(lines)
    for _ in range(rng.randint(2, 8)):
        if not out:
            out = pool[:20]
        at = rng.randrange(len(out))
        kind = rng.random()
        if kind < 0.35:  # new lines, taken from elsewhere in the corpus
            start = rng.randrange(max(1, len(pool) - 30))
            out[at:at] = pool[start : start + rng.randint(1, 25)]
        elif kind < 0.55:  # a few lines removed
            del out[at : at + rng.randint(1, 10)]
        elif kind < 0.85:  # lines changed: words swapped, renamed
            for i in range(at, min(len(out), at + rng.randint(1, 6))):
                words = out[i].split(" ")
                if len(words) > 2:
                    j = rng.randrange(len(words))
                    words[j] = rng.choice(("value", "result", "count", "path", "entry", "todo"))
                out[i] = " ".join(words)
        else:  # a block moved
            block = out[at : at + rng.randint(3, 20)]
            del out[at : at + len(block)]
            to = rng.randrange(len(out) + 1)
            out[to:to] = block
    return out


def build_history(files: list[Path], versions: int) -> list[tuple[str, list[bytes]]]:
    rng = random.Random(1603)
    pool = [line for f in files for line in f.read_text(errors="replace").splitlines(True)]
    history = []
    for f in files:
        lines = f.read_text(errors="replace").splitlines(True)
        texts = []
        for _ in range(versions):
            texts.append("".join(lines).encode())
            lines = edit(lines, rng, pool)
        history.append((str(f.relative_to(REPO)), texts))
    return history


async def store(
    hub: LocalHub, work: Path, history: list[tuple[str, list[bytes]]]
) -> list[ManifestEntry]:
    entries = []
    for relpath, texts in history:
        for version, data in enumerate(texts, 1):
            sha = hashlib.sha256(data).hexdigest()
            source = work / "src"
            source.write_bytes(data)
            known = await hub.find_blobs([sha])
            name = relpath.rsplit("/", 1)[-1]
            key = known.get(sha) or await hub.put_blob(source, sha, len(data), name, "text/plain")
            entry = ManifestEntry(
                device="bench", root_id="r", root_path="/bench", relpath=relpath, sha256=sha,
                size=len(data), mtime_ns=version, version=version, key=key,
                content_type="text/plain",
            )  # fmt: skip
            await hub.record([entry])
            entries.append(entry)
    return entries


def stored_bytes(hub: LocalHub) -> int:
    return sum(p.stat().st_size for p in (hub.root / "user-files").rglob("*") if p.is_file())


async def read_all(hub: Remote, entries: list[ManifestEntry], work: Path) -> float:
    """Seconds to read back (hash-checked) every entry once."""
    started = time.perf_counter()
    for e in entries:
        dest = work / "out"
        await hub.get_blob(e.key, e.sha256, dest)
        dest.unlink()
    return time.perf_counter() - started


async def main(files: int, versions: int, rounds: int) -> None:
    chosen = sources(files)
    history = build_history(chosen, versions)
    plain = sum(len(t) for _, texts in history for t in texts)
    print(
        f"history: {len(chosen)} files x {versions} versions from the repo, {plain:,} bytes of text"
    )
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        work = Path(tmp)
        hub = LocalHub(work / "hub")
        try:
            entries = await store(hub, work, history)
            old = [e for e in entries if e.version < versions]
            before = stored_bytes(hub)
            raw_reads = [await read_all(hub, old, work) for _ in range(rounds)]
            packed = packed_history(hub)
            assert packed is not None
            tracemalloc.start()
            started, cpu = time.perf_counter(), time.process_time()
            report = await compact(packed, max_blobs=10_000, max_bytes=1 << 40)
            took, cpu_took = time.perf_counter() - started, time.process_time() - cpu
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            after = stored_bytes(hub)
            packed_reads = [await read_all(hub, old, work) for _ in range(rounds)]
            for e in entries:  # every version still reads back byte for byte
                dest = work / "check"
                await hub.get_blob(e.key, e.sha256, dest)
                dest.unlink()
            codecs = {
                enc: len(list((hub.root / "user-files").rglob(f"*{suffix}")))
                for enc, suffix in (("zstd", ".zst"), ("gzip", ".gz"))
            }
            stats = await packed.stats()
        finally:
            await hub.close()
    saved = 1 - after / before
    raw_t, packed_t = statistics.median(raw_reads), statistics.median(packed_reads)
    per_raw, per_packed = raw_t / len(old) * 1e6, packed_t / len(old) * 1e6
    print(
        f"compaction: {report.compressed} versions compressed, {report.left_raw} left raw, "
        f"codecs {codecs}; {took:.2f} s wall, {cpu_took:.2f} s CPU, "
        f"{report.bytes_before / took / 1e6:.1f} MB/s of plaintext"
    )
    print(
        f"superseded versions alone: {stats.raw_bytes:,} -> {stats.stored_bytes:,} bytes "
        f"({stats.saved / max(1, stats.raw_bytes):.1%} smaller)"
    )
    print(
        f"restore of a superseded version (median of {rounds} reads of all {len(old)}): "
        f"raw {per_raw:.0f} us, compressed {per_packed:.0f} us, "
        f"extra {per_packed - per_raw:+.0f} us ({per_packed / per_raw:.2f}x)"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory: compaction peak {peak / 1e6:.1f} MB (tracemalloc), process peak RSS {rss:.0f} MB"
    )
    print(f"storage: history {before:,} -> {after:,} bytes, saved {saved:.1%} (target > 20%)")


async def on_supabase(files: int, versions: int, rounds: int) -> None:
    """The same history on the Supabase test server (its own process): what a read of
    a compressed version costs there (the raw object's 404, then the compressed one)."""
    from supabase_auth import AsyncMemoryStorage

    from bench.bench_supabase import EMAIL, PASSWORD, start_server

    history = build_history(sources(files), versions)
    proc, info = start_server(0.0)
    try:
        settings = SupabaseSettings(info["url"], info["anon"], requests_per_second=0)
        session = await SupabaseSession.sign_in(settings, AsyncMemoryStorage(), EMAIL, PASSWORD)
        remote = SupabaseRemote(session)
        with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
            work = Path(tmp)
            try:
                entries = await store(remote, work, history)
                old = [e for e in entries if e.version < versions]
                raw_reads = [await read_all(remote, old, work) for _ in range(rounds)]
                packed = packed_history(remote)
                assert packed is not None
                started = time.perf_counter()
                report = await compact(packed, max_blobs=10_000, max_bytes=1 << 40)
                took = time.perf_counter() - started
                packed_reads = [await read_all(remote, old, work) for _ in range(rounds)]
                stats = await packed.stats()
            finally:
                await remote.close()
    finally:
        proc.terminate()
        proc.wait()
    raw_t, packed_t = statistics.median(raw_reads), statistics.median(packed_reads)
    per_raw, per_packed = raw_t / len(old) * 1e3, packed_t / len(old) * 1e3
    print(
        f"supabase test server: {report.compressed} versions compressed in {took:.1f} s; "
        f"superseded {stats.raw_bytes:,} -> {stats.stored_bytes:,} bytes "
        f"({stats.saved / max(1, stats.raw_bytes):.1%} smaller); restore of a superseded "
        f"version raw {per_raw:.1f} ms, compressed {per_packed:.1f} ms "
        f"({per_packed / per_raw:.2f}x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--supabase", action="store_true", help="also on the test server")
    args = parser.parse_args()
    asyncio.run(main(args.files, args.versions, args.rounds))
    if args.supabase:
        asyncio.run(on_supabase(args.files, args.versions, args.rounds))
