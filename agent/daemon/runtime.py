"""What the agent keeps per mirrored folder while it runs, and the timings it runs by."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.daemon.watcher import RootWatcher
from sync.journal import Root


@dataclass
class RootRuntime:
    root: Root
    watcher: RootWatcher | None = None
    degraded: str | None = None
    missing: bool = False
    inode: int = 0
    failures: int = 0
    """Passes in a row that the hub cut short (transient or sign-in)."""
    blocked_until: float = 0.0
    """No pass before this (monotonic) time: backoff after a cut-short pass."""
    needs_full_scan: bool = True
    last_full_scan: float = 0.0
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    deletions_due: float = 0.0
    """When (monotonic) deletions waiting for the folder to be quiet are judged; 0: none."""
    held_back: set[str] = field(default_factory=set)
    """Changed paths that came while the folder could not sync (paused, hub offline):
    its next full scan syncs them; until then they are shown as waiting."""

    def same_folder(self) -> bool:
        """Whether the folder at the root's path is still the one the agent started on."""
        try:
            return self.root.path.stat().st_ino == self.inode
        except OSError:
            return False

    def look_at_clock(self, now: float, scan_interval: float) -> None:
        """A full scan is due when the last is ``scan_interval`` old, or when deferred
        deletions are to be judged (the scan sees every deletion, also those unreported)."""
        if now - self.last_full_scan >= scan_interval:
            self.needs_full_scan = True
        if self.deletions_due and now >= self.deletions_due:
            self.deletions_due = 0.0
            self.needs_full_scan = True

    def set_paused(self, paused: bool) -> None:
        root = self.root
        self.root = Root(root.id, root.path, root.hub, paused, root.degraded)


@dataclass(frozen=True)
class Timings:
    debounce: float = 0.6
    max_delay: float = 8.0
    rescan_interval: float = 4 * 3600.0
    degraded_scan_interval: float = 60.0
    health_interval: float = 30.0
    deletion_settle: float = 10.0
    """Deletions wait until none new were seen this long (more than ``max_delay``: the
    watcher's batches of one ``rm -rf`` all arrive by then), then are judged together."""
    housekeeping: float = 60.0
    """Metrics go to the journal this often; after this long without a pass, the stat
    snapshot is refreshed (so a crash does not cost the next start a slow first rescan)."""
    disk_retry: float = 2.0
    """After the journal's disk was found full, the first wait before trying again
    (doubled each time it is still full, up to ``disk_retry_max``)."""
    disk_retry_max: float = 60.0

    def scan_interval(self, rt: RootRuntime) -> float:
        """How often a folder is scanned in full: often while its watching is degraded."""
        return self.degraded_scan_interval if rt.degraded else self.rescan_interval
