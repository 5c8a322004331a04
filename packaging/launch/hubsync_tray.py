"""Entry point of the bundle's ``hubsync-tray`` program (the GUI script ``gui.app:main``)."""

import os
import sys

# The tray starts the agent as ``hubsync agent`` found on PATH (gui/agent_link.py): this
# bundle's own ``hubsync`` must be the one it finds, even when the tray runs from a menu.
here = os.path.dirname(sys.executable)
os.environ["PATH"] = os.pathsep.join(p for p in (here, os.environ.get("PATH")) if p)

from gui.app import main  # noqa: E402

sys.exit(main())
