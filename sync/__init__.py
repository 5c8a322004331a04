"""HubSync's sync engine as a library: journal, hashing, scanning, remotes, transfers.

Nothing in this package knows about Qt, file watchers or processes.
"""
