"""HubSync's sync engine as a library. Nothing in this package knows about Qt, file
watchers or processes.

- :mod:`sync.engine`: :class:`SyncEngine`, which runs passes over mirrored folders;
- :mod:`sync.passes`: one pass, in phases (discover, transfer, record, delete);
  :mod:`sync.deletions`, :mod:`sync.renames`: what a pass decides, without I/O;
- :mod:`sync.journal`: the local SQLite journal, sole owner of its SQL and of each
  file's state (:class:`~sync.journal.FileState`);
- :mod:`sync.remotes`: the hubs (``local/``, ``supabase/``) behind
  :class:`~sync.remotes.base.Remote`;
- :mod:`sync.scan`, :mod:`sync.hashing`, :mod:`sync.transfer`, :mod:`sync.progress`,
  :mod:`sync.errors`: walking, hashing, retries, progress and error kinds;
- restore, pull, cache, find, reattach, policy, ignore...: the rest of the library.
"""
