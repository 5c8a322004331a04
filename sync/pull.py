"""Bringing another device's folder (or this one's) from the hub onto this machine.

A hub whose blobs lie on this machine (the local hub, sync.remotes.base.LocalBlobs)
is read where its blobs lie: each one is hashed while it is copied into place, with
no copy into the download cache (on the same disk a cached copy would save nothing,
and a second write of every byte made pulls several times slower than ``cp -r``);
the cache gets a hard link to the blob instead (sync.cache.BlobCache.link_in), which
serves the next pull of that content as a cache hit.
Other hubs come through the download cache (hash-checked before it is admitted),
which also serves when the folder's hub cannot be reached (sync.routing). Every file
lands with :func:`sync.restore.place_in`, which never overwrites a different local
file and gives a file its name only once its bytes are checked; paths that would
go through a symbolic link are refused. The files are made durable together at the
end (one ``syncfs``), not with an fsync each.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import cast

from sync import safe_paths
from sync.cache import BlobCache
from sync.durable import make_durable
from sync.errors import PermanentError
from sync.find import FindQuery
from sync.reads import ReadRecorder
from sync.remotes.base import LocalBlobs, ManifestEntry, ProgressFn, Remote
from sync.restore import Placing, already_there, place_in
from sync.routing import CACHE, NowhereToRead, Served, fetch_routed

FOLDER_BATCH = 64
"""Files of one folder written in one trip to a thread, under one folder fd."""
THREADS = min(8, os.cpu_count() or 1)
"""Threads copying blobs where they lie: one per core (the kernel's part of a copy
runs without the GIL), a few more do not help."""


class PullError(PermanentError):
    pass


@dataclass(frozen=True, slots=True)
class Pulled:
    relpath: str
    path: Path
    identical: bool
    kept_both: bool
    source: str
    """``cache``, or the kind of hub the bytes came from (sync.routing)."""
    offline: bool
    """Served by another hub than the folder's, which could not be reached."""


def _checked(relpath: str) -> str:
    """``relpath`` as a hub path may be written below a folder: no empty, ``.`` or
    ``..`` part (links on the way are refused by :func:`sync.restore.place_in`)."""
    if any(p in ("", ".", "..") for p in relpath.split("/")):
        raise PullError(f"refusing the path {relpath!r}")
    return relpath


@dataclass(frozen=True, slots=True)
class _Job:
    index: int
    entry: ManifestEntry
    name: str
    """Where it goes below the destination (``relpath``, or the file name when flat)."""


class _Unreadable(Exception):
    """The hub's blob could not be read where it lies: the routed read tries again."""


async def pull_entries(
    remote: Remote | None,
    cache: BlobCache,
    entries: list[ManifestEntry],
    dest: Path,
    progress: Callable[[ManifestEntry], None] | None = None,
    *,
    fallbacks: Sequence[Remote] = (),
    moved: ProgressFn | None = None,
    flat: bool = False,
    in_flight: int = 8,
    offline: tuple[str, str] = ("", ""),
) -> list[Pulled]:
    """Each entry to ``dest/relpath`` (``dest/filename`` when ``flat``); results in the
    order of the entries. From a :class:`LocalBlobs` hub the blobs are copied where they
    lie, a folder's files at a time on a thread per core; otherwise (and when such a
    blob cannot be read) through the cache and :func:`sync.routing.fetch_routed`,
    ``in_flight`` files at a time. ``progress`` is called per file, ``moved`` with the
    bytes copied or downloaded; ``remote`` None with ``offline`` = (hub, why): the
    folder's hub is not connected (sync.routing). Every read is recorded on its hub
    (sync.reads). The first failure stops the rest and is raised once the files under
    way are done."""
    jobs = [_Job(i, e, _checked(e.filename if flat else e.relpath)) for i, e in enumerate(entries)]
    out: list[Pulled | None] = [None] * len(entries)
    written: list[Path] = []
    reads = ReadRecorder()
    run = _Run(out, written, reads, progress)
    try:
        if jobs:
            await asyncio.to_thread(_prepare, dest)
        routed = jobs
        if isinstance(remote, LocalBlobs):
            routed = await _pull_in_place(remote, cache, jobs, dest, moved, run)
        if routed and not run.failed:
            await _pull_routed(
                remote, cache, routed, dest, fallbacks, moved, in_flight, offline, run
            )
    except OSError as exc:
        raise PullError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        # The bookkeeping (two databases) is CPU while the sync of the files mostly waits
        # for the disk: they overlap.
        await asyncio.gather(
            reads.flush(),
            asyncio.to_thread(cache.admit_linked, run.linked),
            _make_durable(dest, written, run),
        )
    if run.failed:
        raise run.failed[0]
    return [p for p in out if p is not None]


@dataclass
class _Run:
    """What one pull has done so far; results are taken on the event loop only."""

    out: list[Pulled | None]
    written: list[Path]
    reads: ReadRecorder
    progress: Callable[[ManifestEntry], None] | None
    failed: list[BaseException] = field(default_factory=list)
    linked: list[tuple[str, int, str | Path]] = field(default_factory=list)
    """Cache entries made as links to a local hub's blobs (sync.cache.BlobCache.admit_linked)."""

    def done(
        self,
        job: _Job,
        pulled: Pulled,
        hub: Remote | None,
        started: float,
        finished: float = 0.0,
    ) -> None:
        """``hub``: the one that served the read (sync.reads)."""
        self.out[job.index] = pulled
        if not pulled.identical:
            self.written.append(pulled.path)
        self.reads.add(hub, pulled.source, pulled.offline, job.entry, started, finished)
        if self.progress is not None:
            self.progress(job.entry)


def _prepare(dest: Path) -> None:
    if dest.is_symlink():
        raise PullError(f"refusing to write through the symbolic link {dest}")
    dest.mkdir(parents=True, exist_ok=True)  # the folder named is trusted (sync.safe_paths)


def _folders(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """The jobs by destination folder, at most FOLDER_BATCH at a time."""
    by_folder: dict[str, list[_Job]] = {}
    for job in jobs:
        by_folder.setdefault(job.name.rpartition("/")[0], []).append(job)
    for group in by_folder.values():
        for at in range(0, len(group), FOLDER_BATCH):
            yield group[at : at + FOLDER_BATCH]


@dataclass(frozen=True, slots=True)
class _InPlace:
    """What the threads of one pull from a LocalBlobs hub share."""

    hub: LocalBlobs
    kind: str
    cache: BlobCache
    cached: dict[str, Path]
    """The content the cache has (sync.cache.BlobCache.peek_many), by SHA-256."""
    dest: Path
    moved: ProgressFn | None
    stop: threading.Event
    linking: list[bool] = field(default_factory=lambda: [True])
    """Cache entries are made as hard links to the hub's blobs until one cannot be."""


_Landed = tuple[Pulled, str | Path, bool]
"""A file placed: what the pull reports, the blob it was copied from, and whether the
cache got a new entry linked to it."""


async def _pull_in_place(
    remote: Remote,
    cache: BlobCache,
    jobs: list[_Job],
    dest: Path,
    moved: ProgressFn | None,
    run: _Run,
) -> list[_Job]:
    """Copy the blobs of ``remote`` (a LocalBlobs hub) where they lie into ``dest``, a
    folder's batch per trip to a thread; returns the jobs whose blob could not be read
    (for the routed read).

    Content the cache has is copied from there (a hit); content the destination holds
    already is a hit too (nothing is read). Each blob copied from the hub becomes a cache
    entry linked to it (sync.cache.BlobCache.link_in), so a second pull of the same
    content, into any folder, is served from the cache."""
    cached = await asyncio.to_thread(cache.peek_many, [job.entry.sha256 for job in jobs])
    shared = _InPlace(
        cast(LocalBlobs, remote),
        remote.kind,
        cache,
        cached,
        dest,
        moved if moved is None else _serialized(moved),  # called from each thread
        threading.Event(),
    )
    unreadable: list[_Job] = []
    linked = run.linked
    hits = misses = served_bytes = 0
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(THREADS, thread_name_prefix="hubsync-pull") as pool:
        batches = [
            loop.run_in_executor(pool, _land_folder, shared, batch) for batch in _folders(jobs)
        ]
        try:
            for next_done in asyncio.as_completed(batches):
                started, results = await next_done
                finished = time.time()  # one time for the batch's reads (sync.reads)
                for job, result in results:
                    if isinstance(result, _Unreadable):
                        unreadable.append(job)
                    elif isinstance(result, BaseException):
                        shared.stop.set()
                        run.failed.append(result)
                    else:  # (written even when another file failed meanwhile)
                        pulled, blob, new_link = result
                        if pulled.identical or pulled.source == CACHE:
                            hits += 1
                            served_bytes += job.entry.size
                        else:
                            misses += 1
                        if new_link:
                            linked.append((job.entry.sha256, job.entry.size, blob))
                        run.done(job, pulled, remote, started, finished)
        finally:
            shared.stop.set()
            await asyncio.gather(*batches, return_exceptions=True)
            cache.count(hits=hits, misses=misses, bytes_served=served_bytes)
    return unreadable


def _serialized(moved: ProgressFn) -> ProgressFn:
    lock = threading.Lock()

    def locked(n: int) -> None:
        with lock:
            moved(n)

    return locked


def _land_folder(
    shared: _InPlace, jobs: list[_Job]
) -> tuple[float, list[tuple[_Job, _Landed | BaseException]]]:
    """Copy, hash-checked, the blobs of ``jobs`` (all of one folder) below the
    destination under one fd of that folder (runs in a thread); (when it started,
    each result)."""
    started = time.time()
    folders = PurePosixPath(jobs[0].name).parts[:-1]
    folder = shared.dest.joinpath(*folders)
    try:
        dir_fd = safe_paths.open_dir(shared.dest, folders)
    except OSError as exc:
        error = PullError(f"cannot write {folder}: {exc.strerror or exc}")
        return started, [(job, error) for job in jobs]
    except PermanentError as exc:  # a symbolic link on the way (sync.safe_paths)
        return started, [(job, PullError(str(exc))) for job in jobs]
    results: list[tuple[_Job, _Landed | BaseException]] = []
    try:
        there = set(os.listdir(dir_fd))  # one listing, not a stat per file (most are new)
        for job in jobs:
            if shared.stop.is_set():
                break
            results.append((job, _land_one(shared, dir_fd, folder, job, there)))
    finally:
        os.close(dir_fd)
    return started, results


def _land_one(
    shared: _InPlace, dir_fd: int, folder: Path, job: _Job, there: set[str]
) -> _Landed | BaseException:
    entry = job.entry
    name = job.name.rpartition("/")[2]
    blob: str | Path | None = shared.cached.get(entry.sha256)
    source = CACHE if blob is not None else shared.kind
    try:
        if blob is None:
            blob = shared.hub.blob_path(entry.key)
        item = Placing(blob, entry.sha256, entry.mtime_ns, entry.version)
        path, identical, kept_both = place_in(
            dir_fd,
            folder,
            name,
            item,
            durable=False,
            verify=True,  # a cache entry too: it may be a link to a hub's blob
            moved=shared.moved,
            absent=name not in there,
            size=entry.size,
        )
    except OSError as exc:
        if blob is not None and exc.filename == os.fspath(blob):
            return _Unreadable(exc)  # a drive unplugged, a share gone: routed instead
        return PullError(f"cannot write {folder / name}: {exc.strerror or exc}")
    except PermanentError as exc:
        return PullError(str(exc))
    except Exception as exc:
        return exc
    new_link = False
    if source != CACHE and not identical and shared.linking[0]:
        try:
            new_link = shared.cache.link_in(blob, entry.sha256)
        except OSError:
            shared.linking[0] = False  # the cache is on another file system: no links
    return Pulled(entry.relpath, path, identical, kept_both, source, False), blob, new_link


async def _pull_routed(
    remote: Remote | None,
    cache: BlobCache,
    jobs: list[_Job],
    dest: Path,
    fallbacks: Sequence[Remote],
    moved: ProgressFn | None,
    in_flight: int,
    offline: tuple[str, str],
    run: _Run,
) -> None:
    """Each job through the cache (sync.routing), ``in_flight`` at a time."""
    todo = iter(jobs)

    async def worker() -> None:
        for job in todo:
            if run.failed:
                return
            started = time.time()
            try:
                pulled = await asyncio.to_thread(_in_place_already, dest, job)
                if pulled is not None:  # nothing to read: a hit, as if the cache had it
                    cache.count(hits=1, bytes_served=job.entry.size)
                    run.done(job, pulled, remote, started)
                    continue
                served = await fetch_routed(
                    cache, remote, job.entry, fallbacks, moved, offline=offline
                )
                pulled = await asyncio.to_thread(_land, served, dest, job)
            except NowhereToRead as exc:
                run.failed.append(PullError(exc.message))
                return
            except Exception as exc:
                run.failed.append(exc)
                return
            run.done(job, pulled, served.remote, started)

    await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, len(jobs))))))


def _in_place_already(dest: Path, job: _Job) -> Pulled | None:
    """The job's content as it is already in ``dest`` (sync.restore.already_there)."""
    *folders, name = PurePosixPath(job.name).parts
    entry = job.entry
    try:
        dir_fd = safe_paths.open_dir(dest, folders, create=False)
    except (OSError, PermanentError):
        return None  # not there yet, or _land says why
    try:
        path = already_there(dir_fd, dest.joinpath(*folders), name, entry.sha256, entry.version)
    finally:
        os.close(dir_fd)
    if path is None:
        return None
    return Pulled(entry.relpath, path, True, path.name != name, CACHE, False)


def _land(served: Served, dest: Path, job: _Job) -> Pulled:
    *folders, name = PurePosixPath(job.name).parts
    entry = job.entry
    item = Placing(served.path, entry.sha256, entry.mtime_ns, entry.version)
    try:
        dir_fd = safe_paths.open_dir(dest, folders)
        try:
            path, identical, kept_both = place_in(
                dir_fd,
                dest.joinpath(*folders),
                name,
                item,
                durable=False,
                verify=served.source == CACHE,  # may be a link to a local hub's blob
                size=entry.size,
            )
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise PullError(f"cannot write {dest / job.name}: {exc.strerror or exc}") from None
    except PermanentError as exc:  # a symbolic link on the way (sync.safe_paths)
        raise PullError(str(exc)) from None
    return Pulled(entry.relpath, path, identical, kept_both, served.source, served.offline)


async def _make_durable(dest: Path, written: list[Path], run: _Run) -> None:
    """The files written, on disk before the pull says it is done: one ``syncfs`` of
    their file system (an fsync each where there is none)."""
    if not written:
        return
    try:
        await asyncio.to_thread(make_durable, dest, written)
    except OSError as exc:
        run.failed.append(PullError(f"cannot write {dest}: {exc.strerror or exc}"))


async def folder_entries(
    remote: Remote, device: str, folder: str, at: str = ""
) -> list[ManifestEntry]:
    """The files of one device's folder as the hub records them (as they were
    at ``at``, an ISO time in UTC, when given)."""
    return await remote.find(FindQuery(device=device, folder=folder, at=at))


async def file_version(
    remote: Remote, device: str, root_id: str, relpath: str, at: str = ""
) -> ManifestEntry:
    """The current version of one file of a device's folder (the one current at
    ``at``, an ISO time, when given); PullError when there is none with content."""
    versions = await remote.history(device, root_id, relpath)
    if at:
        when = datetime.fromisoformat(at)
        versions = [v for v in versions if _recorded(v) <= when]
    if not versions:
        raise PullError(f"the hub has no version of {relpath}" + (f" at {at}" if at else ""))
    newest = versions[-1]
    if newest.deleted:
        raise PullError(
            f"{relpath} was deleted (version {newest.version}); --at an earlier time gets it"
        )
    return newest


def _recorded(entry: ManifestEntry) -> datetime:
    when = datetime.fromisoformat(entry.recorded_at.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


__all__ = ["PullError", "Pulled", "file_version", "folder_entries", "pull_entries"]
