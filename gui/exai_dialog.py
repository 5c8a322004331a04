""" "Process with EXAI…": ask an EXAI tool about one file and keep the answer.

The dialog lists the server's tools (``exai.tools``), builds the chosen tool's
argument form from its input schema (gui.schema_form), starts a job
(``exai.process``) and follows it live — stages, progress messages and the streamed
answer — on a control-API connection of its own that is subscribed to the
``exai.*`` events before the job starts, so nothing is missed. At the end it shows
the result file (open, copy, reveal in folder) or the agent's reason for the failure;
"Past results" lists what ``exai.results`` keeps.

Closing the dialog stops following, not the job: the agent finishes it and the tray
notifies. Every call runs as a task on the qasync loop; the Qt loop never waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from agent.control.client import AgentUnavailable
from agent.control.payloads import ExaiProcessParams
from agent.control.protocol import ControlError
from gui import fmt
from gui.agent_link import AgentLink
from gui.exai_answer import AnswerView, ResultBar
from gui.exai_job import CALL_TIMEOUT, FINAL_STATES, JobWatch, process_params, run_job
from gui.exai_results import PastResults
from gui.exai_source import SourcePicker, dropped_file, offers_files
from gui.exai_text import explain, failure, read_result
from gui.schema_form import FormError, SchemaForm, takes_file, tool_schema
from gui.widgets import close_on_escape_and_ctrl_w, muted

TOOLS_TIMEOUT = 60.0
"""``exai.tools`` may wait for the agent's connection attempts to EXAI (with backoff)."""
LOG_LINES = 500
ERROR_STYLE = "background: #fdecea; color: #8a1c14; padding: 6px; border-radius: 4px;"

log = logging.getLogger("hubsync.gui.exai")

_open_dialogs: set[ExaiDialog] = set()
_reader = ThreadPoolExecutor(1, thread_name_prefix="exai-result")
"""Reads result files off the Qt thread (a plain thread: qasync's default executor uses
QThreads, which Qt reports as still running when the process exits)."""


def open_exai_dialog(
    parent: QWidget | None, link: AgentLink, source: str | Path | None = None
) -> ExaiDialog:
    """Open a new dialog for ``source`` (an absolute local path or ``user-files/<key>``;
    ``None``: the user chooses a file) and bring it to the front."""
    dialog = ExaiDialog(link, None if source is None else str(source), parent)
    _open_dialogs.add(dialog)
    dialog.destroyed.connect(lambda: _open_dialogs.discard(dialog))
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


async def close_exai_dialogs() -> None:
    """Close every open dialog and wait until they stopped following their jobs."""
    await asyncio.gather(*(d.aclose() for d in list(_open_dialogs)), return_exceptions=True)


class ExaiDialog(QDialog):
    tools_loaded = Signal(list)
    job_finished = Signal(dict)
    """The job as it ended (completed, failed or cancelled)."""

    def __init__(
        self, link: AgentLink, source: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.link = link
        close_on_escape_and_ctrl_w(self, escape=False)
        self.source = source or ""
        self.tools: list[dict[str, Any]] = []
        self.form: SchemaForm | None = None
        self.job: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run_task: asyncio.Task[Any] | None = None
        self._tools_task: asyncio.Task[Any] | None = None
        self._closed = False
        self._started = 0.0
        self.setWindowTitle("Process with EXAI")
        self.setAcceptDrops(True)
        self.resize(700, 760)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_ask(), "Ask")
        self.past = PastResults(link, self._spawn)
        self.past.loaded.connect(
            lambda found: self.tabs.setTabText(1, f"Past results ({len(found)})")
        )
        self.tabs.addTab(self.past, "Past results")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        self._set_source(self.source)
        self._set_running(False)
        link.connection_changed.connect(self._connection_changed)
        self.load_tools()
        self.past.load()

    # -- building -----------------------------------------------------------------------------

    def _build_ask(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.source_picker = SourcePicker()
        self.source_picker.chosen.connect(self._set_source)
        layout.addWidget(self.source_picker)

        tool_row = QHBoxLayout()
        self.tool_combo = QComboBox()
        self.tool_combo.setMinimumWidth(260)
        self.tool_combo.currentIndexChanged.connect(self._tool_chosen)
        self.reload_button = QPushButton("Reload tools")
        self.reload_button.clicked.connect(self.load_tools)
        tool_row.addWidget(QLabel("Tool"))
        tool_row.addWidget(self.tool_combo, 1)
        tool_row.addWidget(self.reload_button)
        layout.addLayout(tool_row)
        self.tool_description = muted("Asking the agent for EXAI's tools…")
        layout.addWidget(self.tool_description)

        self.form_box = QGroupBox("Arguments")
        self.form_layout = QVBoxLayout(self.form_box)
        layout.addWidget(self.form_box)

        self.question_label = QLabel("Question")
        self.question = QPlainTextEdit()
        self.question.setPlaceholderText("What do you want to know about this file?")
        self.question.setFixedHeight(72)
        layout.addWidget(self.question_label)
        layout.addWidget(self.question)

        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.run_button.setToolTip("Ctrl+Enter")
        for keys in ("Ctrl+Return", "Ctrl+Enter"):  # also from inside the question box
            run = QShortcut(QKeySequence(keys), self)
            run.activated.connect(self._run_if_ready)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.state_label = QLabel("")
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.state_label, 1)
        layout.addLayout(run_row)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(6)
        self.busy.setTextVisible(False)
        layout.addWidget(self.busy)

        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        layout.addWidget(self.error_label)

        self.progress_log = QPlainTextEdit()
        self.progress_log.setReadOnly(True)
        self.progress_log.setMaximumBlockCount(LOG_LINES)
        self.progress_log.setFixedHeight(64)
        self.progress_log.setPlaceholderText("Progress")
        layout.addWidget(self.progress_log)
        self.answer = AnswerView()
        layout.addWidget(self.answer, 1)

        self.result_bar = ResultBar(self.answer.text)
        self.result_bar.failed.connect(self._show_error)
        layout.addWidget(self.result_bar)
        return page

    # -- the file -------------------------------------------------------------------------------

    def _set_source(self, source: str) -> None:
        self.source = source
        self.source_picker.show_source(source)
        name = source.rsplit("/", 1)[-1] if source else ""
        self.setWindowTitle(f"Process with EXAI — {name}" if name else "Process with EXAI")
        if self.form is not None:
            self.form.set_source(source)
        self._update_run_button()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self._running() and offers_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        dropped = dropped_file(event.mimeData())
        if dropped is not None and not self._running():
            self._set_source(str(dropped))
            event.acceptProposedAction()

    # -- tools and their form -------------------------------------------------------------------

    def load_tools(self) -> None:
        if self._tools_task is None or self._tools_task.done():
            self._tools_task = self._spawn(self._load_tools())

    async def _load_tools(self) -> None:
        self.reload_button.setEnabled(False)
        self.tool_description.setText("Asking the agent for EXAI's tools…")
        try:
            if self.link.methods and "exai.tools" not in self.link.methods:  # hello known
                self._show_error("This HubSync agent does not offer EXAI processing.")
                self.tool_description.setText("")
                return
            tools = await self.link.call("exai.tools", timeout=TOOLS_TIMEOUT)
        except (AgentUnavailable, ControlError) as exc:
            self._show_error(failure(exc))
            self.tool_description.setText("No tools: EXAI could not be asked.")
            return
        finally:
            self.reload_button.setEnabled(True)
        self._show_error(None)
        self._set_tools([t for t in tools if isinstance(t, dict) and t.get("name")])

    def _connection_changed(self, up: bool, _note: str) -> None:
        """Opened before the agent answered (or it restarted): ask again once it is back."""
        if up and not self.tools and not self._closed:
            self.load_tools()
            self.past.load()

    def _set_tools(self, tools: list[dict[str, Any]]) -> None:
        if tools and tools == self.tools:
            self.tools_loaded.emit(tools)
            return  # the same tools: keep the form and what the user typed in it
        previous = self.tool_combo.currentText()
        self.tools = tools
        self.tool_combo.blockSignals(True)
        self.tool_combo.clear()
        for tool in tools:
            self.tool_combo.addItem(str(tool["name"]))
        self.tool_combo.blockSignals(False)
        names = [str(t["name"]) for t in tools]
        if previous in names:
            index = names.index(previous)
        else:
            usable = [i for i, t in enumerate(tools) if takes_file(tool_schema(t))]
            index = usable[0] if usable else 0
        self.tool_combo.setCurrentIndex(index)
        self._tool_chosen(index)
        if not tools:
            self.tool_description.setText("EXAI offers no tools.")
        self.tools_loaded.emit(tools)

    def select_tool(self, name: str) -> None:
        self.tool_combo.setCurrentIndex(self.tool_combo.findText(name))

    @property
    def tool(self) -> dict[str, Any] | None:
        index = self.tool_combo.currentIndex()
        return self.tools[index] if 0 <= index < len(self.tools) else None

    def _tool_chosen(self, _index: int) -> None:
        if self.form is not None:
            self.form_layout.removeWidget(self.form)
            self.form.deleteLater()
            self.form = None
        tool = self.tool
        if tool is None:
            self._update_run_button()
            return
        self.tool_description.setText(str(tool.get("description") or ""))
        self.form = SchemaForm(tool_schema(tool))
        self.form.set_source(self.source)
        self.form_layout.addWidget(self.form)
        question = self.form.question_field
        self.question.setEnabled(question is not None)
        if question is None:
            self.question_label.setText("Question (this tool takes none)")
        else:
            named = "" if question.name == "question" else f" ({question.name})"
            self.question_label.setText(f"Question{named}{' *' if question.required else ''}")
            self.question.setToolTip(question.description)
        if not self.form.takes_file:
            self.tool_description.setText(
                f"{tool.get('description') or ''}\nThis tool takes no file, so HubSync cannot use it here."
            )
        self._update_run_button()

    # -- running --------------------------------------------------------------------------------

    def _running(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    def _update_run_button(self) -> None:
        ready = bool(self.source) and self.form is not None and self.form.takes_file
        self.run_button.setEnabled(ready and not self._running())

    def _set_running(self, running: bool) -> None:
        self.busy.setVisible(running)
        for widget in (
            self.tool_combo,
            self.reload_button,
            self.source_picker.choose_button,
            self.form_box,
            self.question,
        ):
            widget.setEnabled(not running)
        if not running and self.form is not None:
            self.question.setEnabled(self.form.question_field is not None)
        self.cancel_button.setEnabled(running and self.job is not None)
        self._update_run_button()

    def params(self) -> ExaiProcessParams:
        """What ``exai.process`` gets; FormError when something is missing."""
        return process_params(self.source, self.tool, self.form, self.question.toPlainText())

    def _run_if_ready(self) -> None:
        if self.run_button.isEnabled():
            self.run_button.click()

    def run(self) -> None:
        if self._running():
            return
        try:
            params = self.params()
        except FormError as exc:
            self._show_error(str(exc))
            return
        self._show_error(None)
        self.job = None
        self.progress_log.clear()
        self.answer.set_text("")
        self.result_bar.show_path(None)
        self._started = time.monotonic()
        self.state_label.setText("Starting…")
        self._run_task = self._spawn(self._run(params))
        self._set_running(True)

    async def _run(self, params: ExaiProcessParams) -> None:
        watch = JobWatch(self._job_changed, self._log, self.answer.append_chunk)
        try:
            final = await run_job(self.link.socket_path, params, watch)
        except (AgentUnavailable, ControlError) as exc:
            self._end_run(None, failure(exc))
            return
        except Exception as exc:  # a malformed answer must not leave the dialog "running"
            log.exception("following an EXAI job failed")
            self._end_run(None, f"HubSync could not follow this job: {exc!r}")
            return
        if final is None:
            self._end_run(
                None,
                "Lost the connection to the HubSync agent while EXAI was working. "
                "The job may still finish: see Past results.",
            )
        else:
            await self._finish(final)

    def _job_changed(self, job: dict[str, Any]) -> None:
        stage = str(job.get("stage") or "")
        shown = stage if job.get("state") == "running" and stage else str(job.get("state", ""))
        if stage and (self.job is None or stage != self.job.get("stage")):
            self._log(stage)
        if job.get("file_ref") and self.form is not None:
            self.form.show_file_ref(str(job["file_ref"]))
        self.job = job
        self.cancel_button.setEnabled(job.get("state") not in FINAL_STATES)
        self.state_label.setText(shown[:1].upper() + shown[1:])

    async def _finish(self, job: dict[str, Any]) -> None:
        state = job.get("state")
        elapsed = fmt.duration(time.monotonic() - self._started)
        if state == "completed" and job.get("result_path"):
            path = Path(str(job["result_path"]))
            try:
                text = await asyncio.get_running_loop().run_in_executor(_reader, read_result, path)
            except OSError as exc:
                text = ""
                self._show_error(f"The result was saved but cannot be read here: {exc.strerror}")
            if text:
                await self.answer.show_final(text, markdown=path.suffix.lower() == ".md")
            self.result_bar.show_path(path)
            self._end_run(f"Done in {elapsed}", None)
            self.past.load()
        elif state == "cancelled":
            self._end_run("Cancelled", None)
        else:
            self._end_run(
                "Failed",
                explain(
                    str(job.get("error_kind") or "error"),
                    str(job.get("error") or "no reason given"),
                ),
            )
        self.job_finished.emit(job)

    def _end_run(self, state: str | None, error: str | None) -> None:
        self.state_label.setText(state or "Failed")
        self._show_error(error)
        self._run_task = None
        self._set_running(False)

    def cancel(self) -> None:
        job = self.job
        if job is None or job.get("state") in FINAL_STATES:
            return
        self.cancel_button.setEnabled(False)
        self.state_label.setText("Cancelling…")
        self._spawn(self._cancel(str(job["id"])))

    async def _cancel(self, job_id: str) -> None:
        """The job's own event ends the run; only a failed call is shown from here."""
        try:
            await self.link.call("exai.cancel", {"job": job_id}, timeout=CALL_TIMEOUT)
        except (AgentUnavailable, ControlError) as exc:
            self._show_error(f"Could not cancel: {failure(exc)}")

    # -- output ---------------------------------------------------------------------------------

    def _log(self, message: str) -> None:
        if message:
            self.progress_log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {message}")

    def answer_text(self) -> str:
        return self.answer.text()

    def _show_error(self, message: str | None) -> None:
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))

    # -- life -------------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before it started never ran ``_guarded``: close ``coro``
        # (a no-op once it finished) so it is not dropped unawaited.
        task.add_done_callback(lambda _task: coro.close())
        return task

    async def _guarded(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` unless the dialog closed; its widgets are gone after that."""
        if self._closed:
            coro.close()
            return
        await coro

    def done(self, code: int) -> None:
        """Closing (Esc, the close button) stops following; the agent keeps the job."""
        super().done(code)
        self._shut()

    def _shut(self) -> asyncio.Future[Any]:
        """Cancel every task; the widgets are deleted once all of them ended."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        ended = asyncio.gather(*tasks, return_exceptions=True)
        ended.add_done_callback(lambda _f: self.deleteLater())
        return ended

    async def aclose(self) -> None:
        """Close and wait until every call and the job's event stream are released."""
        self.hide()
        await self._shut()
