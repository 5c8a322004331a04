"""Entry point of the bundle's ``hubsync`` program (the console script ``agent.cli.main:main``)."""

import os
import sys

from sync.worker_main import WORKER_ARG

if sys.argv[1:] == [WORKER_ARG]:  # a worker process of this bundle (sync/workers.py)
    from sync.worker_main import serve

    serve(sys.stdin.buffer, sys.stdout.buffer)
    sys.exit(0)

# The bundle's programs are siblings: putting their folder first on PATH makes the tray
# start this bundle's agent, and autostart/desktop entries name these programs.
here = os.path.dirname(sys.executable)
os.environ["PATH"] = os.pathsep.join(p for p in (here, os.environ.get("PATH")) if p)

from agent.cli.main import main  # noqa: E402

main()
