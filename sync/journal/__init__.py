"""The local SQLite journal: what HubSync knows about every mirrored file.

The only owner of SQL on the journal and of file state. One writer connection,
owned by the engine; WAL with ``synchronous=NORMAL``. Changes are grouped into
transactions per batch (never one fsync per file), and every batch is applied
after the hub accepted it, so a crash anywhere leaves a journal that the next
pass repairs by repeating idempotent steps.

- :mod:`.states`: :class:`FileState` and the moves allowed between states;
- :mod:`.records`: the typed rows handed in and out;
- :mod:`.schema`: tables and migrations; :mod:`.store`: the connection;
- :mod:`.files`: file rows and their changes of state; :mod:`.roots`: mirrored
  folders; :mod:`.hubs`: hub identity and known blobs; :mod:`.issues`: skipped
  items and failure groups; :mod:`.log`: versions and the operations log;
  :mod:`.resume`: resumable uploads;
- :mod:`.stat_index`, :mod:`.stat_snapshot`: the in-memory view a rescan compares
  with, and its snapshot file.
"""

from sync.journal.issues import GROUP_PATHS, OPEN, RESOLVED, RESOLVED_BY_USER, WHOLE_FOLDER
from sync.journal.log import LogJournal
from sync.journal.records import (
    Blob,
    DiskStat,
    ErrorGroup,
    Failure,
    FileRow,
    FileStat,
    HubVersion,
    Logged,
    Recording,
    Root,
    Skipped,
    SyncedFile,
    Tombstone,
    VersionRow,
)
from sync.journal.resume import JournalResumeStore, ResumeJournal
from sync.journal.roots import RootsJournal
from sync.journal.schema import SCHEMA_VERSION
from sync.journal.states import FileState, IllegalTransition


class Journal(RootsJournal, LogJournal, ResumeJournal):
    """All reads and writes of the journal go through here."""


__all__ = [
    "GROUP_PATHS",
    "OPEN",
    "RESOLVED",
    "RESOLVED_BY_USER",
    "SCHEMA_VERSION",
    "WHOLE_FOLDER",
    "Blob",
    "DiskStat",
    "ErrorGroup",
    "Failure",
    "FileRow",
    "FileStat",
    "FileState",
    "HubVersion",
    "IllegalTransition",
    "Journal",
    "JournalResumeStore",
    "Logged",
    "Recording",
    "Root",
    "Skipped",
    "SyncedFile",
    "Tombstone",
    "VersionRow",
]
