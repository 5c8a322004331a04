"""Start time of the ``hubsync`` CLI: the commands a user (and the test suite) runs most.

Each command runs ``--runs`` times in a fresh process on a local hub in a throwaway
HUBSYNC_HOME; the best wall time and the best CPU time (user+sys, less noisy on a
loaded machine) are printed, with the modules of the Supabase client that got loaded
(none is the goal for local-only commands).

    python bench/bench_cli_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("supabase", "supabase_auth", "tusclient", "postgrest", "storage3", "realtime")


def _run(env: dict[str, str], args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``hubsync`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent", *args], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _heavy_loaded(env: dict[str, str], args: list[str]) -> list[str]:
    """Which Supabase-client packages the command imports."""
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['hubsync', *{args!r}]\n"
        "try:\n    runpy.run_module('agent', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
    )
    return list(eval(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        home, folder = Path(tmp) / "home", Path(tmp) / "docs"
        folder.mkdir()
        for i in range(20):
            (folder / f"note{i}.txt").write_text(f"note {i}\n")
        env = {**os.environ, "HUBSYNC_HOME": str(home)}
        env.pop("SUPABASE_URL", None)
        env.pop("SUPABASE_ANON_KEY", None)
        _run(env, ["add", str(folder)])  # the journal and the local hub exist from here on
        commands = {
            "--help": ["--help"],
            "status": ["status"],
            "add DIR": ["add", str(folder)],
            "sync --once": ["sync", "--once"],
        }
        print(f"{'command':<14} {'best wall s':>11} {'best cpu s':>10}  supabase modules")
        for label, args in commands.items():
            timings = [_run(env, args) for _ in range(runs)]
            wall = min(t[0] for t in timings)
            cpu = min(t[1] for t in timings)
            heavy = _heavy_loaded(env, args)
            print(f"{label:<14} {wall:>11.3f} {cpu:>10.3f}  {', '.join(heavy) or 'none'}")
        print(f"(best of {runs}; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
