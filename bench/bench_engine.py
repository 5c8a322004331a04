"""Engine benchmarks, each a ratio against a peer measured in the same run.

    python bench/bench_engine.py [--dir DIR] [--small 10000] [--big-mib 1024] [--tree 100000]

- hashing: the engine's hashing (``hash_paths``: 2 worker processes for many files) vs
  ``sha256sum`` over the same files (10k files of 1-64 KiB and one 1 GiB file), page
  cache warm for both, and vs the CPU's own limit: ``openssl speed -evp sha256`` per
  core times the cores used (2 for many files, 1 for one file);
- no-change rescan of a 100k-file tree vs a bare ``os.scandir`` + ``lstat`` walk;
- initial sync of the 10k files to a local hub vs ``rclone copy`` to a local folder
  (skipped with a note when rclone is absent), and vs the least bare Python can do to
  write the same files in the hub's layout (a folder per blob) and in shared folders;
- memory: peak RSS of a process that tracks the 100k files, above its baseline.

Figures go to stdout; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.engine import SyncEngine  # noqa: E402
from sync.journal import Journal  # noqa: E402
from sync.passes.items import CHUNK_FILES  # noqa: E402
from sync.passes.transfer import hash_paths  # noqa: E402
from sync.remotes.local import LocalHub  # noqa: E402
from sync.workers import WorkerProcesses  # noqa: E402


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def make_small(folder: Path, count: int, rng: random.Random) -> None:
    if folder.exists() and sum(1 for _ in folder.rglob("*.bin")) == count:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(count):
        d = folder / f"d{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 64 * 1024)))


def make_big(path: Path, mib: int) -> None:
    if path.exists() and path.stat().st_size == mib * 1024 * 1024:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1024 * 1024))


def make_tree(folder: Path, count: int, state: Path) -> None:
    """The tree of ``count`` files, kept between runs with the journal (``state``) that
    tracks it; both are made again when the count differs."""
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    for i in range(count):
        d = folder / f"a{i % 50:02d}" / f"b{(i // 50) % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"n{i:06d}.txt").write_text(f"{i}\n")
    marker.write_text(str(count))


def cpu_sha256_rate() -> float | None:
    """Bytes per second one core hashes with SHA-256 (``openssl speed -evp sha256``, 16 KiB
    blocks): the CPU's own limit. None when openssl is absent or says something else."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    out = subprocess.run(
        [openssl, "speed", "-evp", "sha256", "-seconds", "1", "-bytes", "16384"],
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.MULTILINE)
    return None if match is None else float(match.group(1)) * 1000


def bench_hashing(files: list[Path], workers: int = 2) -> dict[str, float]:
    """The engine's hashing of ``files`` against ``sha256sum``, page cache warm for both.

    ``hubsync_s`` is the path of a hub without ingest (Supabase): the transfer's
    ``hash_paths`` on each chunk of ``CHUNK_FILES`` files in turn, with ``workers``
    hash threads and worker processes as the engine has (many files go to the
    processes, started within the timing).
    """
    total = sum(p.stat().st_size for p in files)
    listing = "\0".join(str(p) for p in files).encode()
    paths = [str(p) for p in files]

    def peer() -> None:
        subprocess.run(
            ["xargs", "-0", "sha256sum"], input=listing, check=True, stdout=subprocess.DEVNULL
        )

    def engine_path() -> None:
        async def run() -> None:
            processes = WorkerProcesses(workers)
            try:
                with ThreadPoolExecutor(workers) as pool:
                    for at in range(0, len(paths), CHUNK_FILES):
                        await hash_paths(processes, pool, paths[at : at + CHUNK_FILES])
            finally:
                processes.close()

        asyncio.run(run())

    peer()  # warm the page cache
    t_peer, t_ours = timed(peer), timed(engine_path)
    result = {"bytes": total, "sha256sum_s": t_peer, "hubsync_s": t_ours, "ratio": t_ours / t_peer}
    return result


def hashing_line(
    what: str, how: str, h: dict[str, float], cores: int, rate: float | None, target: float
) -> str:
    """One line of hashing figures: sha256sum, HubSync (done ``how``) and HubSync / the
    CPU's limit (``cores`` digesting at openssl's ``rate``)."""
    line = (
        f"hashing {what}: sha256sum {h['sha256sum_s']:.2f} s, hubsync {h['hubsync_s']:.2f} s "
        f"({how}), ratio to sha256sum {h['ratio']:.2f}"
    )
    if rate is None:
        return line + "; CPU limit not measured (openssl absent)"
    limit = h["bytes"] / (rate * cores)
    return (
        line + f"; CPU limit {limit:.3f} s (openssl {rate / 1e9:.2f} GB/s per core x {cores}), "
        f"hubsync / limit {h['hubsync_s'] / limit:.2f} (target <= {target})"
    )


def bare_walk(top: Path) -> int:
    n = 0
    stack = [os.fspath(top)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    e.stat(follow_symlinks=False)
                    n += 1
    return n


class PeakRss:
    """Samples this process's RSS in a thread (ru_maxrss is inherited across fork+exec,
    so a child started by a large parent cannot use it)."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self._proc.memory_info().rss)


def tracked_rescan(work: Path, tree: Path) -> None:
    """Child process: sync the tree once (if needed), then time no-change rescans and RSS."""
    import psutil

    work.mkdir(parents=True, exist_ok=True)
    journal = Journal(work / "journal.sqlite3")
    hub = LocalHub(work / "hub")
    engine = SyncEngine(journal, {"local": hub})
    root = journal.add_root(tree, "local")

    async def first() -> None:
        # The first sync of the tree, or (kept from an earlier run) a rescan: either way
        # the agent's life before a restart, which leaves a snapshot of the stat index.
        report = await engine.sync_root(root)
        assert report.complete, report.errors

    asyncio.run(first())
    journal.close()  # start the measured part from a cold journal connection
    journal = Journal(work / "journal.sqlite3")
    engine.journal = journal
    baseline = psutil.Process().memory_info().rss
    sampler = PeakRss()
    rescans = []
    for _ in range(3):
        start = time.perf_counter()
        report = asyncio.run(engine.sync_root(root))
        rescans.append(time.perf_counter() - start)
        assert report.hashed == 0 and report.recorded == 0
    peak = sampler.stop()
    # After a crash there is no snapshot of the stat index: the rows come from SQLite.
    journal.close()
    (work / "journal.sqlite3.stat").unlink()
    journal = Journal(work / "journal.sqlite3")
    engine.journal = journal
    start = time.perf_counter()
    asyncio.run(engine.sync_root(root))
    crash_rescan = time.perf_counter() - start
    print(
        json.dumps(
            {
                "rescan_s": min(rescans),
                "cold_rescan_s": rescans[0],
                "crash_rescan_s": crash_rescan,
                "tracked": report.scanned,
                "baseline_kib": baseline // 1024,
                "peak_kib": peak // 1024,
            }
        )
    )
    engine.close()
    asyncio.run(hub.close())
    journal.close()


def bench_rescan(work: Path, tree: Path) -> dict[str, float]:
    # The tree's inodes in the OS caches first, as the bare walk will find them: the
    # figure is the cost of opening the journal, not of the OS reading 100k inodes.
    bare_walk(tree)
    out = subprocess.run(
        [sys.executable, __file__, "--child-rescan", str(work), str(tree)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    child = json.loads(out.strip().splitlines()[-1])
    t_walk = timed(lambda: bare_walk(tree))
    return {
        "files": child["tracked"],
        "bare_walk_s": t_walk,
        "hubsync_rescan_s": child["rescan_s"],
        "ratio": child["rescan_s"] / t_walk,
        "cold_rescan_s": child["cold_rescan_s"],
        "cold_ratio": child["cold_rescan_s"] / t_walk,
        "crash_rescan_s": child["crash_rescan_s"],
        "crash_ratio": child["crash_rescan_s"] / t_walk,
        "rss_above_baseline_mib": (child["peak_kib"] - child["baseline_kib"]) / 1024,
        "peak_rss_mib": child["peak_kib"] / 1024,
        "bytes_per_tracked_file": (child["peak_kib"] - child["baseline_kib"])
        * 1024
        / child["tracked"],
    }


def bare_copy(files: list[Path], target: Path, per_blob_folder: bool) -> None:
    """The least a Python program can do to put ``files`` in a hub: read each file, make
    its folder, write a temp file and rename it into place, in two threads. No hashing,
    no database. ``per_blob_folder`` gives each file a folder of its own, as the hub
    layout ``{user}/{sha[:2]}/{sha}/{name}`` does; without it files share 100 folders,
    as rclone's copy of this corpus does."""
    tmp = target / ".tmp"
    tmp.mkdir(parents=True)

    def copy(part: list[tuple[int, Path]]) -> None:
        for i, src in part:
            with open(src, "rb", buffering=0) as f:
                data = f.read()
            name = f"{i:064x}"
            folder = (
                f"{target}/{name[-2:]}/{name}" if per_blob_folder else f"{target}/{i % 100:02x}"
            )
            try:
                os.mkdir(folder)
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
            except FileExistsError:
                pass
            part_path = f"{tmp}/{i}.part"
            fd = os.open(part_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(part_path, f"{folder}/{src.name}")

    from concurrent.futures import ThreadPoolExecutor

    numbered = list(enumerate(files))
    parts = [numbered[at : at + 64] for at in range(0, len(numbered), 64)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(copy, parts))


def bench_initial_sync(work: Path, small: Path, rounds: int = 3) -> dict[str, float | str]:
    """Best of ``rounds``, the tools taking turns, each run into a folder of its own.

    Nothing is deleted between runs: ext4 (without a journal, as here) slows inode
    allocation for a minute or more after a mass deletion (``recently_deleted``), which
    would charge one tool for the clean-up of another.
    """
    runs = iter(range(1_000_000))

    def ours() -> None:
        n = next(runs)
        journal = Journal(work / f"initial-{n}.sqlite3")
        hub = LocalHub(work / f"hub-initial-{n}")
        engine = SyncEngine(journal, {"local": hub})
        root = journal.add_root(small, "local")
        report = asyncio.run(engine.sync_root(root))
        assert report.complete and report.recorded > 0
        engine.close()
        asyncio.run(hub.close())
        journal.close()

    rclone = shutil.which("rclone")

    def peer() -> None:
        assert rclone is not None
        target = work / f"rclone-copy-{next(runs)}"
        subprocess.run([rclone, "copy", str(small), str(target)], check=True, capture_output=True)

    def peer_durable() -> None:
        peer()
        os.sync()  # what HubSync guarantees before it records a blob: it is on disk

    files = sorted(small.rglob("*.bin"))

    def floor(per_blob_folder: bool) -> Callable[[], object]:
        return lambda: bare_copy(files, work / f"floor-{next(runs)}", per_blob_folder)

    def floor_durable() -> None:
        bare_copy(files, work / f"floor-{next(runs)}", True)
        os.sync()

    contenders: dict[str, Callable[[], object]] = {
        "hubsync_s": ours,
        "layout_floor_s": floor(True),
        "flat_floor_s": floor(False),
        "layout_floor_sync_s": floor_durable,
    }
    if rclone is not None:
        contenders.update(rclone_s=peer, rclone_sync_s=peer_durable)
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, run in contenders.items():
            os.sync()  # no run pays for the writeback of the one before
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    result: dict[str, float | str] = dict(best)
    if rclone is None:
        result["rclone"] = "absent (apt-get install rclone): comparison skipped"
        return result
    result.update(
        ratio=best["hubsync_s"] / best["rclone_s"],
        ratio_sync=best["hubsync_s"] / best["rclone_sync_s"],
    )
    return result


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-rescan":
        tracked_rescan(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "bench" / ".corpus")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--tree", type=int, default=100_000)
    args = parser.parse_args()
    corpus: Path = args.dir
    rng = random.Random(7)
    small, big, tree = corpus / "small", corpus / "big" / "one.bin", corpus / "tree"
    print(f"corpus in {corpus} (kept between runs)")
    make_small(small, args.small, rng)
    make_big(big, args.big_mib)
    make_tree(tree, args.tree, corpus / "tree-state")
    work = Path(tempfile.mkdtemp(prefix="hubsync-bench-", dir=corpus))
    try:
        small_files = sorted(small.rglob("*.bin"))
        rate = cpu_sha256_rate()
        h_small = bench_hashing(small_files)
        h_big = bench_hashing([big])
        mib = h_small["bytes"] / 2**20
        many = f"hash_paths per chunk of {CHUNK_FILES}: 2 worker processes, started in the timing"
        print(
            hashing_line(
                f"{len(small_files)} small files ({mib:.0f} MiB)", many, h_small, 2, rate, 3
            )
        )
        # One digest cannot be split: one core's rate is the limit (a second thread only
        # reads ahead).
        one = "hash_paths: one thread digests, another reads 4 MiB ahead"
        print(hashing_line(f"one {args.big_mib} MiB file", one, h_big, 1, rate, 1.15))
        r = bench_rescan(corpus / "tree-state", tree)  # kept: the first sync of 100k files is slow
        print(
            f"no-change rescan of {r['files']:.0f} tracked files: bare walk {r['bare_walk_s']:.2f} s, "
            f"hubsync {r['hubsync_rescan_s']:.2f} s, ratio {r['ratio']:.2f} (target <= 1.3); "
            f"first rescan after a restart {r['cold_rescan_s']:.2f} s, "
            f"ratio {r['cold_ratio']:.2f}; after a crash (no snapshot of the stat index) "
            f"{r['crash_rescan_s']:.2f} s, ratio {r['crash_ratio']:.2f}"
        )
        print(
            f"memory tracking {r['files']:.0f} files: {r['rss_above_baseline_mib']:.1f} MiB above "
            f"baseline ({r['bytes_per_tracked_file']:.0f} bytes per file; target < 100 MB); "
            f"peak RSS {r['peak_rss_mib']:.1f} MiB (the baseline moves with what the process "
            "freed before it: compare peaks too)"
        )
        s = bench_initial_sync(work, small)
        if "ratio" in s:
            print(
                f"initial sync of {len(small_files)} files: rclone copy {s['rclone_s']:.2f} s, "
                f"hubsync {s['hubsync_s']:.2f} s, ratio {s['ratio']:.2f} (target < 1: faster); "
                f"rclone copy + sync (durable, as HubSync is) {s['rclone_sync_s']:.2f} s, "
                f"ratio {s['ratio_sync']:.2f} (target <= 1.0)"
            )
        else:
            print(
                f"initial sync of {len(small_files)} files: hubsync {s['hubsync_s']:.2f} s; {s['rclone']}"
            )
        print(
            f"  floor for the same files in bare Python (2 threads, no hashing, no database): "
            f"hub layout, a folder per blob {s['layout_floor_s']:.2f} s; "
            f"shared folders {s['flat_floor_s']:.2f} s; hubsync / hub-layout floor "
            f"{s['hubsync_s'] / s['layout_floor_s']:.2f} (target <= 2.0); hub layout + sync "
            f"(durable, as HubSync is) {s['layout_floor_sync_s']:.2f} s, hubsync / it "
            f"{s['hubsync_s'] / s['layout_floor_sync_s']:.2f}"  # type: ignore[operator]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
