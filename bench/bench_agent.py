"""Agent benchmarks: save-to-hub latency and the cost of an idle agent.

    python bench/bench_agent.py latency [--saves 200] [--atomic 20] [--burst 10000]
    python bench/bench_agent.py idle [--files 100000] [--seconds 60]

``latency`` runs a real ``hubsync agent`` on a local hub, saves files one after
another (a new file every 0.25 s, each written and closed, as a person or an
editor would) and measures, per file, the time from the write until the hub's
manifest has it: the close-after-write fast path (a short settle, no debounce),
targets p50 <= 0.3 s, p95 <= 0.6 s, and the agent's CPU time per save. Then
``--atomic`` editor-style atomic saves (temp file written, renamed over the
file, one a second): a rename takes the debounce, so ~debounce + a pass is
expected there. Then ``--burst`` files copied in at once (``cp -r``): how long
until all are in the hub and in how many passes (they must coalesce). ``idle``
lets the agent watch a tree of N files and measures its CPU use and RSS over a
quiet minute; the limit beside it is one core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from agent.control.client import call_sync

ROOT = Path(__file__).resolve().parent.parent


def start_agent(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HUBSYNC_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "agent"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sock = home / "run" / "agent.sock"
    while not sock.exists():
        if proc.poll() is not None:
            raise SystemExit("agent failed to start")
        time.sleep(0.05)
    return proc


def add_root(home: Path, folder: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "agent", "add", str(folder)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "HUBSYNC_HOME": str(home)},
        capture_output=True,
    )


def _percentiles(lat: list[float]) -> tuple[float, float, float]:
    lat = sorted(lat)
    return statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], lat[-1]


def _wait_arrived(arrived: dict[str, float], names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(n not in arrived for n in names) and time.monotonic() < deadline:
        time.sleep(0.05)


def latency(saves: int, atomic: int, burst: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    docs = home / "docs"
    docs.mkdir()
    add_root(home, docs)
    agent = start_agent(home)
    hub_db = home / "data" / "hub" / "hub.sqlite3"
    written: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not hub_db.exists():
            time.sleep(0.01)
        db = sqlite3.connect(f"file:{hub_db}?mode=ro", uri=True)
        while not done.is_set():
            for (rel,) in db.execute("SELECT rel_path FROM hubsync_manifest"):
                arrived.setdefault(rel, time.perf_counter())
            time.sleep(0.005)
        db.close()

    proc = psutil.Process(agent.pid)
    try:
        time.sleep(1.0)
        poller = threading.Thread(target=watch)
        poller.start()
        cpu0 = sum(proc.cpu_times()[:2])
        for i in range(saves):
            name = f"note{i:04d}.md"
            (docs / name).write_text(f"# note {i}\n" + "text " * 200)
            written[name] = time.perf_counter()
            time.sleep(0.25)
        _wait_arrived(arrived, list(written), 30)
        cpu_per_save = (sum(proc.cpu_times()[:2]) - cpu0) / saves
        atomic_written: dict[str, float] = {}
        for i in range(atomic):
            name = f"atomic{i:04d}.md"
            temp = docs / f".goutputstream-{i:06d}"
            temp.write_text(f"# atomic {i}\n" + "text " * 200)
            os.replace(temp, docs / name)
            atomic_written[name] = time.perf_counter()
            time.sleep(1.0)
        _wait_arrived(arrived, list(atomic_written), 30)
        burst_src = home / "burst-src"
        for i in range(burst):
            d = burst_src / f"d{i % 20:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}.txt").write_text(f"burst file {i}\n")
        burst_names = [f"burst/d{i % 20:02d}/f{i:05d}.txt" for i in range(burst)]
        burst_wall = time.time()
        burst_t0 = time.perf_counter()
        if burst:
            subprocess.run(["cp", "-r", str(burst_src), str(docs / "burst")], check=True)
            _wait_arrived(arrived, burst_names, 600)
        burst_passes = [
            p
            for p in call_sync("activity", {"limit": 200}, socket_path=home / "run" / "agent.sock")[
                "passes"
            ]
            if p["ts"] >= burst_wall and p["recorded"]
        ]
        done.set()
        poller.join()
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(home, ignore_errors=True)
    lat = [arrived[n] - t for n, t in written.items() if n in arrived]
    p50, p95, top = _percentiles(lat)
    print(
        f"closed file -> in the hub, {len(lat)}/{saves} saves: p50 {p50:.3f} s, "
        f"p95 {p95:.3f} s, max {top:.3f} s (targets p50 <= 0.3 s, p95 <= 0.6 s); "
        f"agent CPU {cpu_per_save * 1000:.1f} ms per save (user+sys, 0.25 s apart)"
    )
    if atomic:
        lat = [arrived[n] - t for n, t in atomic_written.items() if n in arrived]
        p50, p95, top = _percentiles(lat)
        print(
            f"atomic save (temp + rename, debounced) -> in the hub, {len(lat)}/{atomic}: "
            f"p50 {p50:.3f} s, p95 {p95:.3f} s, max {top:.3f} s (debounce 0.6 s + a pass)"
        )
    if burst:
        got = [arrived[n] for n in burst_names if n in arrived]
        last = max(got) - burst_t0 if got else float("nan")
        print(
            f"burst of {burst} files (cp -r): {len(got)}/{burst} in the hub after {last:.2f} s, "
            f"in {len(burst_passes)} passes (must coalesce: a handful, not one per file)"
        )


def idle(files: int, seconds: float) -> None:
    home = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    tree = home / "tree"
    for i in range(files):
        d = tree / f"a{i % 50:02d}" / f"b{(i // 50) % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"n{i:06d}.txt").write_text(str(i))
    add_root(home, tree)
    subprocess.run(
        [sys.executable, "-m", "agent", "sync", "--once"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "HUBSYNC_HOME": str(home)},
        capture_output=True,
    )
    agent = start_agent(home)
    try:
        proc = psutil.Process(agent.pid)
        time.sleep(10)  # start-up: reconciliation scan of the tree
        cpu0 = sum(proc.cpu_times()[:2])
        time.sleep(seconds)
        cpu = (sum(proc.cpu_times()[:2]) - cpu0) / seconds
        rss = proc.memory_info().rss / 2**20
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"idle agent watching {files} files for {seconds:.0f} s: CPU {cpu * 100:.2f}% of one core "
        f"(target < 1%), RSS {rss:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--saves", type=int, default=200)
    lat.add_argument("--atomic", type=int, default=20)
    lat.add_argument("--burst", type=int, default=10_000)
    idl = sub.add_parser("idle")
    idl.add_argument("--files", type=int, default=100_000)
    idl.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.which == "latency":
        latency(args.saves, args.atomic, args.burst)
    else:
        idle(args.files, args.seconds)


if __name__ == "__main__":
    main()
