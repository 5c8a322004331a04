"""Live watching of a root with watchdog, debounced and coalesced into path batches.

Events arrive on watchdog's thread and are handed to the event loop, where a
:class:`Debouncer` keeps, per root, the set of changed paths and when they
changed. A batch is ready when the root has been quiet for ``debounce``
seconds (so an editor's temp-file-and-rename save, or a ``git checkout`` of
thousands of files, becomes one pass), or when the oldest change waited
``max_delay`` (so a file that never stops changing is still looked at).

A file whose writer has closed it (inotify's close-after-write, watchdog's
``closed`` event; not a close after only reading) skips the debounce: it is
released once its size, mtime and inode held for ``settle`` (tens of ms), so
a saved file reaches the hub at once. Where close events do not exist (the
macOS and Windows observers, the polling observer) every change is debounced.

Watchdog 7 silently skips sub-folders it cannot watch when the inotify watch
limit is reached, so after start-up the watcher compares the kernel's own
count of watches (``/proc/self/fdinfo``) with the folders it should cover;
a shortfall, a queue overflow or a failure to start turn the root "degraded":
it is then kept in sync by periodic scans, and the status says why.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from sync.ignore import is_default_ignored

log = logging.getLogger("hubsync.watcher")


class ObserverLike(Protocol):
    def schedule(
        self, handler: FileSystemEventHandler, path: str, *, recursive: bool
    ) -> object: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


ObserverFactory = Callable[[], ObserverLike]


STRUCTURAL_DELAY_FACTOR = 10
"""Deletions wait for a quiet root up to this many ``max_delay``s (a long ``rm -rf``)."""

CLOSE_SETTLE = 0.05
"""Seconds a closed file's size, mtime and inode must hold before it is released."""

EDITOR_TEMP_NAMES = (".goutputstream-", "4913")
"""Names (prefixes) of editors' temp files that ``sync.ignore`` does not ignore:
gedit's save stream, vim's write-permission probe. They always take the debounce,
so only the file they are renamed over is synced."""


class Change(Enum):
    """What a watcher event says about a path."""

    EDITED = "edited"
    """Created or written: debounced."""
    CLOSED = "closed"
    """Closed after writing: released once it holds still (see :class:`Debouncer`)."""
    STRUCTURAL = "structural"
    """Deleted or moved: waits for the whole root to be quiet."""


Fingerprint = tuple[int, int, int]
"""(size, mtime_ns, inode) of a closed file."""


def _fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _fast_path_allowed(relpath: str) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    return not name.startswith(EDITOR_TEMP_NAMES) and not is_default_ignored(name)


@dataclass
class _RootQuiet:
    """Deletions and moves of one root, held until the whole root is quiet."""

    paths: set[str] = field(default_factory=set)
    first: float = 0.0


class Debouncer:
    """Changed paths, released in batches when they have settled.

    A changed file is released after it has been quiet for ``debounce``
    seconds; a file that keeps changing is released anyway after ``max_delay``
    (a growing log is still looked at; the engine retries it mid-write). Due
    times live in a heap with lazy invalidation, so a burst of 100k events costs
    O(log n) each. Deletions and moves wait until the *whole root* is quiet, so
    an ``rm -rf`` or a folder move reaches the engine as one batch (renames stay
    paired; a mass deletion is seen whole and held). Event-loop thread only.

    The fast path (:meth:`closed`): a file closed after writing is stat'ed at
    the close and again ``settle`` later; if size, mtime and inode held it is
    released then, without the debounce. Any later event for it — a write (a
    second writer still has it open), a rename or a deletion within the settle
    — or a changed stat sends it back to the debounce; editors' temp files and
    ignored names never take the fast path. (A second writer that stays open but
    idle through the settle is not seen: the file is synced as it is then, the
    engine's read guard keeps that copy consistent, and its next write and close
    sync it again.) So an atomic save (temp written, closed, renamed over the
    file) still reaches the engine once, as the file it replaced, after the
    debounce. A burst of closes (``cp -r``) is not one
    pass per file: the scheduler takes everything due at once, so what arrives
    while a pass runs becomes the next pass.
    """

    def __init__(
        self,
        debounce: float,
        max_delay: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        settle: float = CLOSE_SETTLE,
    ) -> None:
        self.debounce = debounce
        self.max_delay = max_delay
        self.settle = settle
        self._clock = clock
        self._pending: dict[tuple[str, str], tuple[float, float]] = {}
        """(root_id, relpath) → (first change, due time)."""
        self._closed: dict[tuple[str, str], tuple[Path, Fingerprint]] = {}
        """Pending paths on the fast path: where the file is and its stat at the close."""
        self._heap: list[tuple[float, str, str]] = []
        self._structural: dict[str, _RootQuiet] = {}
        self._last_event: dict[str, float] = {}
        self.first_seen: dict[tuple[str, str], float] = {}
        """(root_id, relpath) → wall time of its first unsynced change (latency figures)."""

    def add(self, root_id: str, relpath: str, *, structural: bool = False) -> None:
        now = self._clock()
        self._last_event[root_id] = now
        self.first_seen.setdefault((root_id, relpath), time.time())
        if structural:
            quiet = self._structural.get(root_id)
            if quiet is None:
                quiet = self._structural[root_id] = _RootQuiet(first=now)
            quiet.paths.add(relpath)
            if (root_id, relpath) in self._closed:
                self._debounce((root_id, relpath), now)
            return
        self._debounce((root_id, relpath), now)

    def closed(self, root_id: str, relpath: str, path: Path) -> None:
        """``relpath`` (at ``path``) was closed after writing: release it once it holds."""
        key = (root_id, relpath)
        fingerprint = _fingerprint(path) if _fast_path_allowed(relpath) else None
        if fingerprint is None:
            self.add(root_id, relpath)
            return
        now = self._clock()
        self._last_event[root_id] = now
        self.first_seen.setdefault(key, time.time())
        first = self._pending[key][0] if key in self._pending else now
        due = min(now + self.settle, first + self.max_delay)  # closed again and again: a log
        self._pending[key] = (first, due)
        self._closed[key] = (path, fingerprint)
        heapq.heappush(self._heap, (due, root_id, relpath))

    def _debounce(self, key: tuple[str, str], now: float) -> None:
        self._closed.pop(key, None)
        first = self._pending[key][0] if key in self._pending else now
        due = min(now + self.debounce, first + self.max_delay)
        self._pending[key] = (first, due)
        heapq.heappush(self._heap, (due, *key))

    def _quiet_due(self, root_id: str, quiet: _RootQuiet) -> float:
        cap = quiet.first + STRUCTURAL_DELAY_FACTOR * self.max_delay
        return min(self._last_event[root_id] + self.debounce, cap)

    def ready(self) -> dict[str, set[str]]:
        """Take the paths that are due now, by root."""
        now = self._clock()
        out: dict[str, set[str]] = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, root_id, relpath = heapq.heappop(heap)
            entry = self._pending.get((root_id, relpath))
            if entry is None or entry[1] != due:
                continue  # superseded by a later change of the same path
            key = (root_id, relpath)
            closed = self._closed.pop(key, None)
            if closed is not None and _fingerprint(closed[0]) != closed[1]:
                self._debounce(key, now)  # changed, renamed or gone within the settle
                continue
            del self._pending[key]
            out.setdefault(root_id, set()).add(relpath)
        for root_id, quiet in list(self._structural.items()):
            if self._quiet_due(root_id, quiet) <= now:
                del self._structural[root_id]
                out.setdefault(root_id, set()).update(quiet.paths)
        return out

    def next_due(self) -> float | None:
        """Seconds until the next batch may be due, or None when nothing waits."""
        dues = [self._quiet_due(rid, q) for rid, q in self._structural.items()]
        if self._heap:
            dues.append(self._heap[0][0])
        if not dues:
            return None
        return max(0.0, min(dues) - self._clock())

    def drop(self, root_id: str) -> None:
        self._pending = {k: v for k, v in self._pending.items() if k[0] != root_id}
        self._closed = {k: v for k, v in self._closed.items() if k[0] != root_id}
        self._heap = [e for e in self._heap if e[1] != root_id]
        heapq.heapify(self._heap)
        self._structural.pop(root_id, None)

    @property
    def queued(self) -> int:
        return len(self._pending) + sum(len(q.paths) for q in self._structural.values())

    def waiting(self) -> dict[str, set[str]]:
        """Every changed path not released yet, by root (a path changed many times, or
        both changed and moved, is there once)."""
        out: dict[str, set[str]] = {}
        for root_id, relpath in self._pending:
            out.setdefault(root_id, set()).add(relpath)
        for root_id, quiet in self._structural.items():
            out.setdefault(root_id, set()).update(quiet.paths)
        return out


class _Handler(FileSystemEventHandler):
    def __init__(
        self, root: Path, on_path: Callable[[str, Change], None], on_root: Callable[[str], None]
    ) -> None:
        self._root = os.fspath(root).rstrip(os.sep)
        self._prefix = self._root + os.sep
        self._on_path = on_path
        self._on_root = on_root

    def _rel(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if not text.startswith(self._prefix):
            return None
        rel = text[len(self._prefix) :]
        return rel.replace(os.sep, "/") if os.sep != "/" else rel

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's mtime moves with its entries, whose own events say more
        if event.event_type in ("deleted", "moved"):
            change = Change.STRUCTURAL
        elif event.event_type == "closed" and not event.is_directory:
            change = Change.CLOSED
        else:
            change = Change.EDITED
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            if os.fsdecode(path).rstrip(os.sep) == self._root:
                if event.event_type in ("deleted", "moved"):
                    self._on_root(f"the folder itself was {event.event_type}")
                continue
            rel = self._rel(path)
            if rel:
                self._on_path(rel, change)


class _OverflowSpotter(logging.Handler):
    """Watchdog only logs a kernel queue overflow; turn that log line into a rescan."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self._callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._callback()


class _ShutdownRaceFilter(logging.Filter):
    """Drop watchdog's ERROR for an event read while its emitter stops.

    watchdog 7 logs "queue_events() called when the thread is inactive" when the
    inotify thread reads one more event after ``stop()``; the event is dropped on
    purpose (we are stopping), so it is not an error worth a user's attention.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_ShutdownRaceFilter())


def inotify_watch_count() -> int | None:
    """How many inotify watches this process holds, as the kernel counts them (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    total = 0
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                total += sum(1 for line in info if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


class RootWatcher:
    """Watches one root; reports changed relative paths and trouble through callbacks."""

    def __init__(
        self,
        root: Path,
        on_path: Callable[[str, Change], None],
        on_trouble: Callable[[str], None],
        observer_factory: ObserverFactory = Observer,
    ) -> None:
        self.root = root
        self._on_path = on_path
        self._on_trouble = on_trouble
        self._factory = observer_factory
        self._observer: ObserverLike | None = None
        self.watches: int | None = None
        """Kernel watches this root holds (inotify), to compare with its folder count."""
        self._spotter = _OverflowSpotter(
            lambda: on_trouble("the change queue overflowed; rescanning")
        )

    def start(self) -> str | None:
        """Start watching; returns why the root is degraded, or None when fully watched."""
        observer = self._factory()
        before = inotify_watch_count()
        try:
            observer.schedule(
                _Handler(self.root, self._on_path, self._on_trouble),
                os.fspath(self.root),
                recursive=True,
            )
            observer.start()
        except OSError as exc:
            with contextlib.suppress(Exception):
                observer.stop()
            return _describe_watch_error(exc)
        after = inotify_watch_count()
        self.watches = None if before is None or after is None else after - before
        self._observer = observer
        logging.getLogger("watchdog").addHandler(self._spotter)
        return None

    def stop(self) -> None:
        logging.getLogger("watchdog").removeHandler(self._spotter)
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._observer is not None


def _describe_watch_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return (
            "the system's file-watch limit is reached (fs.inotify.max_user_watches); "
            "changes are found by periodic scans instead"
        )
    if exc.errno == errno.EMFILE:
        return "too many file watchers open (fs.inotify.max_user_instances); using periodic scans"
    if exc.errno == errno.ENOENT:
        return "the folder is gone (unplugged drive?); waiting for it to come back"
    return f"live watching is unavailable ({exc.strerror or exc}); using periodic scans"


def coverage_shortfall(folders: int, watches: int | None) -> str | None:
    """Why a root is not fully watched: fewer kernel watches than folders (inotify only)."""
    if watches is None or watches >= folders:
        return None
    return (
        "the system's file-watch limit is reached (fs.inotify.max_user_watches): "
        f"{folders - watches} folders are not watched; changes are found by periodic scans instead"
    )
