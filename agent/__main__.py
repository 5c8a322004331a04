"""``python -m agent`` is the ``hubsync`` command."""

from agent.cli.main import main

main()
