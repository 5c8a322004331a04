"""What ``hubsync find`` asks of a hub, and the exact match both hubs apply.

A hub narrows the rows where the data is (SQL on the local hub, PostgREST
filters on Supabase) and then :meth:`FindQuery.matches` decides exactly, so
both hubs answer the same. Only the current version of each path is found:
the live ones, or with ``deleted`` the ones whose current version is a deletion.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sync.remotes.base import ManifestEntry


@dataclass(frozen=True, slots=True)
class FindQuery:
    pattern: str = ""
    """A glob on the file name, or on the whole relative path when it has a ``/``."""
    device: str = ""
    """A device id."""
    folder: str = ""
    """A folder as its device mirrors it: its path there (root_path)."""
    ext: str = ""
    """File type: the name's extension, without the dot."""
    larger: int | None = None
    smaller: int | None = None
    since_ns: int | None = None
    """Modified at or after (mtime, nanoseconds since the epoch)."""
    until_ns: int | None = None
    sha256: str = ""
    deleted: bool = False
    at: str = ""
    """An ISO time in UTC: the hub as it was then (versions recorded up to it)."""

    @property
    def on_path(self) -> bool:
        return "/" in self.pattern

    @property
    def suffix(self) -> str:
        return f".{self.ext.lower().lstrip('.')}" if self.ext else ""

    def matches(self, e: ManifestEntry) -> bool:
        if e.deleted != self.deleted:
            return False
        if self.device and e.device != self.device:
            return False
        if self.folder and e.root_path != self.folder:
            return False
        if self.sha256 and e.sha256 != self.sha256.lower():
            return False
        if self.suffix and not e.filename.lower().endswith(self.suffix):
            return False
        if self.larger is not None and e.size <= self.larger:
            return False
        if self.smaller is not None and e.size >= self.smaller:
            return False
        if self.since_ns is not None and e.mtime_ns < self.since_ns:
            return False
        if self.until_ns is not None and e.mtime_ns > self.until_ns:
            return False
        if self.pattern:
            subject = e.relpath if self.on_path else e.filename
            if not fnmatch.fnmatchcase(subject, self.pattern):
                return False
        return True

    def like(self) -> str | None:
        """A LIKE pattern (``%`` and ``_``) that every match's rel_path fits, for the
        hub to narrow with; None when the pattern narrows nothing."""
        if not self.pattern or self.pattern == "*":
            return None
        if any(c in self.pattern for c in "[]%_\\"):
            return None  # classes and LIKE's own wildcards: leave it to matches()
        body = self.pattern.replace("*", "%").replace("?", "_")
        return body if self.on_path else f"%{body}"
