"""``python -m agent`` is the ``hubsync`` command."""

from agent.cli import main

main()
