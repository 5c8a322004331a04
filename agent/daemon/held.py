"""The user's answer to a held deletion: bring the files back, or delete them in the hub.

A deletion that looks like an accident is held by the engine. The tray offers
both answers; each runs in the background, one at a time per folder, between
passes. Applying deletes exactly the files the user was shown (by count: if more
were held since, the user is asked to look again); bringing back restores the
held files that are still missing, never over a file that is there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from agent.context import Context
from agent.control.payloads import ActivityItem
from agent.control.protocol import ControlError
from agent.control.server import ControlServer
from agent.daemon.runtime import RootRuntime
from sync.errors import SyncError
from sync.restore import RestoreError, restore_file


class HeldHost(Protocol):
    """What answering needs from the service: its folders, the pass lock, the tray."""

    @property
    def ctx(self) -> Context: ...
    @property
    def runtimes(self) -> Mapping[str, RootRuntime]: ...
    @property
    def pass_lock(self) -> asyncio.Lock: ...
    @property
    def server(self) -> ControlServer: ...
    @property
    def activity(self) -> deque[ActivityItem]: ...
    def publish_status(self) -> None: ...
    def wake(self) -> None: ...


log = logging.getLogger("hubsync.agent")

CONFLICT = "conflict"


class HeldDeletions:
    def __init__(self, agent: HeldHost) -> None:
        self.agent = agent
        self._busy: dict[str, asyncio.Task[None]] = {}
        """root id → the answer being carried out."""

    def busy(self, root_id: str) -> bool:
        return root_id in self._busy

    def apply(self, root_id: str, expected: int | None) -> int:
        """Delete the held files in the hub; ``expected``: how many the user was shown."""
        rt, held = self._held(root_id)
        if expected is not None and expected != len(held):
            raise ControlError(
                CONFLICT, f"{len(held)} deletions are held now, not {expected}: look again"
            )
        if held:
            self._start(rt, lambda: self._apply(rt, held))
        return len(held)

    def bring_back(self, root_id: str) -> int:
        """Restore the held files from the hub into the folder."""
        rt, held = self._held(root_id)
        if held:
            self._start(rt, lambda: self._bring_back(rt, held))
        return len(held)

    async def aclose(self) -> None:
        tasks = list(self._busy.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _held(self, root_id: str) -> tuple[RootRuntime, list[str]]:
        rt = self.agent.runtimes[root_id]
        if self.busy(root_id):
            raise ControlError(CONFLICT, "the last answer for this folder is still under way")
        if rt.missing or not rt.root.path.is_dir():
            raise ControlError(
                "unavailable", f"{rt.root.path} is not there (is its drive plugged in?)"
            )
        return rt, self.agent.ctx.journal.held(root_id)

    def _start(self, rt: RootRuntime, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        root_id = rt.root.id

        async def run() -> None:
            try:
                async with self.agent.pass_lock:  # between passes, never during one
                    await work()
            except Exception:  # reported; the deletions stay held for another try
                log.exception("answering the held deletions of %s failed", rt.root.path)
            finally:
                self._busy.pop(root_id, None)
                self.agent.publish_status()

        self._busy[root_id] = asyncio.create_task(run())
        self.agent.publish_status()

    async def _apply(self, rt: RootRuntime, held: list[str]) -> None:
        report = await self.agent.ctx.engine.apply_held(rt.root, held)
        errors = report.shown_errors()
        for kind, reason in errors.values():
            self.agent.server.publish(
                "error", {"root": str(rt.root.path), "kind": kind, "reason": reason}
            )
        self._tell(
            {
                "ts": time.time(),
                "root": str(rt.root.path),
                "kind": "sync",
                "deleted": report.deleted,
                "errors": len(errors),
            }
        )

    async def _bring_back(self, rt: RootRuntime, held: list[str]) -> None:
        ctx, root = self.agent.ctx, rt.root
        remote = ctx.remotes.get(root.hub)
        restored, failed = 0, 0
        there: list[str] = []
        for rel in held:
            if (root.path / rel).exists() or (root.path / rel).is_symlink():
                there.append(rel)  # back already: never written over
                continue
            if remote is None:
                failed += 1
                continue
            try:
                await restore_file(ctx.journal, remote, ctx.cache, root, rel)
                restored += 1
            except (RestoreError, SyncError) as exc:
                failed += 1
                log.warning("could not bring back %s/%s: %s", root.path, rel, exc.message)
        if there:
            # Back already: synced as they are now, so the answer ends with nothing held
            # (not with a banner offering to delete files that are there).
            try:
                await ctx.engine.sync_root(root, paths=there, settle=False)
            except SyncError as exc:
                log.warning("could not sync the files back in %s: %s", root.path, exc.message)
        log.info(
            "brought back %d held files in %s (%d there already, %d failed)",
            restored,
            root.path,
            len(there),
            failed,
        )
        self._tell(
            {
                "ts": time.time(),
                "root": str(rt.root.path),
                "kind": "restore",
                "restored": restored,
                "errors": failed,
            }
        )
        rt.needs_full_scan = True  # the files are back: the next pass sees them

    def _tell(self, item: ActivityItem) -> None:
        self.agent.activity.appendleft(item)
        self.agent.server.publish("activity", item)
        self.agent.wake()
