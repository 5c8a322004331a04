"""One download from the hub at a time (``hub.get`` / ``hub.pull``), with its progress bar.

The call runs on a connection of its own (``AgentLink.call_alone``): Cancel hangs it
up and the agent stops the download. Progress comes as ``hub_download`` events of the
same ``source``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from agent.control.client import AgentUnavailable
from agent.control.protocol import ControlError
from gui import fmt
from gui.agent_link import AgentLink, describe

DOWNLOAD_TIMEOUT = 24 * 3600.0
"""A pull answers when every file is here; progress comes as events meanwhile."""
STEPS = 1000


def fraction(event: dict[str, Any]) -> float:
    """How far a download is: by bytes, or by files where the cache served them."""
    if event.get("state") == "done":
        return 1.0
    by_bytes = event["bytes_done"] / event["bytes_total"] if event.get("bytes_total") else 0.0
    by_files = event["files_done"] / event["files_total"] if event.get("files_total") else 0.0
    return min(1.0, max(by_bytes, by_files))


class DownloadPanel(QWidget):
    """A progress bar and a Cancel button, shown while a download runs."""

    finished = Signal(str)
    """A line for the user: what came of the download (done, cancelled, failed)."""

    def __init__(self, link: AgentLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.bar = QProgressBar()
        self.bar.setRange(0, STEPS)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.source = ""
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        link.hub_download.connect(self._on_event)
        self.hide()

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(
        self,
        method: str,
        params: dict[str, Any],
        what: str,
        done: Callable[[dict[str, Any]], str],
    ) -> None:
        """Run ``method``; ``done`` turns its result into the line ``finished`` says."""
        self.source = str(params["source"])
        self._cancelled = False
        self.bar.setRange(0, 0)  # busy until the agent says how much there is
        self.bar.setFormat(what)
        self.cancel_button.setEnabled(True)
        self.show()
        self._task = self.link.spawn(self._run(method, params, what, done))

    def cancel(self) -> None:
        if self.busy and self._task is not None:
            self._cancelled = True
            self.cancel_button.setEnabled(False)
            self._task.cancel()

    async def _run(
        self,
        method: str,
        params: dict[str, Any],
        what: str,
        done: Callable[[dict[str, Any]], str],
    ) -> None:
        try:
            result = await self.link.call_alone(method, params, timeout=DOWNLOAD_TIMEOUT)
        except asyncio.CancelledError:
            if not self._cancelled:
                raise  # the tray is closing
            line = f"{what}: cancelled. What was already downloaded is kept."
        except (AgentUnavailable, ControlError) as exc:
            line = f"{what} failed: {describe(exc)}"
        else:
            self.bar.setRange(0, STEPS)
            self.bar.setValue(STEPS)
            line = done(result)
        self.hide()
        self.source = ""
        self._task = None  # not busy any more, as ``finished`` is told
        self.finished.emit(line)

    def _on_event(self, event: dict[str, Any]) -> None:
        if not self.busy or event.get("source") != self.source:
            return  # another download (another window, the CLI)
        self.bar.setRange(0, STEPS)
        self.bar.setValue(round(fraction(event) * STEPS))
        files = ""
        if int(event.get("files_total") or 0) > 1:
            files = f"{fmt.count(event.get('files_done'))} of {fmt.count(event.get('files_total'))} files · "
        self.bar.setFormat(
            f"{files}{fmt.size(event.get('bytes_done'))} of {fmt.size(event.get('bytes_total'))}"
        )
