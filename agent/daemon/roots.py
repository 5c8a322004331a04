"""The folders the agent runs: each watched, and one that goes away kept and looked for.

Watchdog reports on its own thread; every report is handed to the loop with
``call_soon_threadsafe`` before anything here is touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agent.daemon.runtime import RootRuntime
from agent.daemon.watcher import Change, Debouncer, ObserverFactory, RootWatcher
from sync.journal import Journal, Root

log = logging.getLogger("hubsync.agent")


class Roots:
    def __init__(
        self,
        journal: Journal,
        debouncer: Debouncer,
        observer_factory: ObserverFactory,
        *,
        publish: Callable[[str, Any], object],
        publish_status: Callable[[], None],
        wake: Callable[[], None],
    ) -> None:
        self._journal = journal
        self._debouncer = debouncer
        self._observer_factory = observer_factory
        self._publish = publish
        self._publish_status = publish_status
        self._wake = wake
        self.runtimes: dict[str, RootRuntime] = {}

    def start(self, root: Root) -> RootRuntime:
        """Run ``root`` from now on (on the loop): watched, or missing until it is back."""
        rt = RootRuntime(root)
        self.runtimes[root.id] = rt
        try:
            rt.inode = root.path.stat().st_ino
        except OSError:
            rt.missing = True
            return rt
        loop = asyncio.get_running_loop()

        def on_path(rel: str, change: Change, rid: str = root.id) -> None:
            loop.call_soon_threadsafe(self._changed, rid, rel, change)

        def on_trouble(reason: str, rid: str = root.id) -> None:
            loop.call_soon_threadsafe(self._trouble, rid, reason)

        rt.watcher = RootWatcher(root.path, on_path, on_trouble, self._observer_factory)
        reason = rt.watcher.start()
        if reason is not None:
            rt.watcher = None
            self.set_degraded(rt, reason)
        return rt

    def add(self, root: Root) -> None:
        if root.id not in self.runtimes:
            self.start(root)
            self._wake()

    def remove(self, root_id: str) -> None:
        rt = self.runtimes.pop(root_id, None)
        if rt is not None and rt.watcher is not None:
            rt.watcher.stop()
        self._debouncer.drop(root_id)

    def lose(self, rt: RootRuntime) -> None:
        """The folder is gone: stop watching, keep everything, look again every few seconds."""
        rt.missing = True
        if rt.watcher is not None:
            rt.watcher.stop()
            rt.watcher = None
        self._debouncer.drop(rt.root.id)
        self._publish_status()

    def present(self, rt: RootRuntime, *, look: bool) -> RootRuntime | None:
        """``rt`` if its folder is there (restarted when it came back), else None;
        ``look``: also check that a folder thought present is still the same one."""
        if look and not rt.missing and not rt.same_folder():
            log.warning("%s is gone (unplugged or moved); pausing it", rt.root.path)
            self.lose(rt)
        if not rt.missing:
            return rt
        if not rt.root.path.is_dir():
            return None
        self.remove(rt.root.id)
        back = self.start(rt.root)
        log.info("%s is back", back.root.path)
        return back

    def set_degraded(self, rt: RootRuntime, reason: str | None) -> None:
        if rt.degraded == reason:
            return
        rt.degraded = reason
        self._journal.set_root_flags(rt.root.id, degraded=reason)
        if reason:
            log.warning("%s is degraded: %s", rt.root.path, reason)
            self._publish(
                "error", {"root": str(rt.root.path), "kind": "degraded", "reason": reason}
            )
        self._publish_status()

    def stop_watching(self) -> None:
        for rt in self.runtimes.values():
            if rt.watcher is not None:
                rt.watcher.stop()

    def _changed(self, root_id: str, rel: str, change: Change) -> None:
        rt = self.runtimes.get(root_id)
        if rt is None:
            return
        if change is Change.CLOSED:
            self._debouncer.closed(root_id, rel, rt.root.path / rel)
        else:
            self._debouncer.add(root_id, rel, structural=change is Change.STRUCTURAL)
        self._wake()

    def _trouble(self, root_id: str, reason: str) -> None:
        rt = self.runtimes.get(root_id)
        if rt is not None:
            log.warning("%s: %s", rt.root.path, reason)
            rt.needs_full_scan = True
            self._wake()
