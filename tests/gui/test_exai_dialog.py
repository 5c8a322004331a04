""" "Process with EXAI…" (issue 6, acceptance 5): the dialog against the real agent
(``hubsync agent``, local hub) talking to the EXAI protocol test server."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
)
from pytestqt.qtbot import QtBot

from agent.exai import arguments
from gui import schema_form
from gui.agent_link import AgentLink
from gui.app import TrayApp
from gui.exai_dialog import ExaiDialog, close_exai_dialogs, open_exai_dialog
from gui.exai_text import explain, fold
from gui.schema_form import FormError, SchemaForm, classify
from tests.exai_server import TOOLS
from tests.gui.conftest import click, drop, rows, run_to_end
from tests.gui.exai_env import ExaiAgent, ExaiServerProcess

TOKEN = "gui-exai-token-0123456789"
QUESTION = "Summarise the quarterly numbers"


class UrlSink(QObject):
    """Receives what QDesktopServices would hand to the desktop."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@pytest.fixture(scope="module")
def exai_server() -> Iterator[ExaiServerProcess]:
    server = ExaiServerProcess(TOKEN, delay=0.4, progress_interval=0.1).start()
    yield server
    server.stop()


def start_agent(home: Path, server: ExaiServerProcess, token: str | None = None) -> ExaiAgent:
    return ExaiAgent(home, server, token=token).start()


@pytest.fixture
def agent(short_home: Path, exai_server: ExaiServerProcess) -> Iterator[ExaiAgent]:
    started = start_agent(short_home, exai_server)
    yield started
    started.stop()


def connect(qtbot: QtBot, agent: ExaiAgent) -> AgentLink:
    link = AgentLink(agent.paths.control_socket, agent_command=None)
    link.start()
    qtbot.waitUntil(lambda: link.connected and bool(link.methods), timeout=10_000)
    return link


@pytest.fixture
def link(qtbot: QtBot, qt_loop: qasync.QEventLoop, agent: ExaiAgent) -> Iterator[AgentLink]:
    connected = connect(qtbot, agent)
    yield connected
    run_to_end(qtbot, close_exai_dialogs())
    run_to_end(qtbot, connected.close())


@pytest.fixture
def urls() -> Iterator[UrlSink]:
    sink = UrlSink()
    QDesktopServices.setUrlHandler("file", sink, "open")  # type: ignore[arg-type]
    yield sink
    QDesktopServices.unsetUrlHandler("file")


@pytest.fixture
def notes(short_home: Path) -> Path:
    path = short_home / "Q3 notes.md"
    path.write_text("# Q3\nRevenue up 12%, costs flat.\n" * 50)
    return path


def process_rows(hub: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(hub / "hub.sqlite3")) as db:
        found = db.execute(
            "SELECT status, error_message, metadata FROM file_operations "
            "WHERE operation_type='process' ORDER BY rowid"
        ).fetchall()
    return [{"status": s, "error_message": e, "metadata": json.loads(m)} for s, e, m in found]


def dialog_for(
    qtbot: QtBot, link: AgentLink, source: Path | str | None, *, fails: bool = False
) -> ExaiDialog:
    """Open the dialog and wait for its tools (or, with ``fails``, for its error)."""
    dialog = open_exai_dialog(None, link, source=source)
    qtbot.waitUntil(lambda: bool(dialog.tools) or dialog.error_label.isVisible(), timeout=15_000)
    assert dialog.error_label.isVisible() is fails, dialog.error_label.text()
    return dialog


def run_tool(
    qtbot: QtBot, dialog: ExaiDialog, tool: str, question: str = QUESTION, **args: Any
) -> dict[str, Any]:
    dialog.select_tool(tool)
    assert dialog.form is not None
    for name, value in args.items():
        dialog.form.inputs[name].set_value(value)
    dialog.question.setPlainText(question)
    with qtbot.waitSignal(dialog.job_finished, timeout=20_000) as finished:
        click(dialog.run_button)
    job: dict[str, Any] = finished.args[0]
    return job


# -- against the real agent -------------------------------------------------------------------


def test_ask_about_a_file_watch_the_answer_stream_and_keep_the_result(
    qtbot: QtBot, link: AgentLink, agent: ExaiAgent, notes: Path, urls: UrlSink
) -> None:
    dialog = dialog_for(qtbot, link, notes)
    assert not dialog.error_label.isVisible(), dialog.error_label.text()
    names = [dialog.tool_combo.itemText(i) for i in range(dialog.tool_combo.count())]
    assert names == [t["name"] for t in TOOLS]

    dialog.select_tool("analyze_file")
    form = dialog.form
    assert form is not None and dialog.tool_description.text().startswith("Answer a question")
    file_field = form.filled["file_id"]
    assert file_field.isReadOnly() and file_field.text() == str(notes)
    assert form.filled["sha256"].isReadOnly() and not form.inputs  # nothing else to fill in
    assert dialog.question.isEnabled() and dialog.question_label.text() == "Question *"

    seen_while_running: list[str] = []
    states_shown: list[str] = []

    def answer_changed() -> None:
        if dialog.answer.toPlainText():
            seen_while_running.append(str((dialog.job or {}).get("state")))
            states_shown.append(dialog.state_label.text())

    dialog.answer.textChanged.connect(answer_changed)
    dialog.question.setPlainText(QUESTION)
    with qtbot.waitSignal(dialog.job_finished, timeout=20_000) as finished:
        click(dialog.run_button)
        qtbot.waitUntil(
            lambda: dialog.cancel_button.isEnabled() and not dialog.run_button.isEnabled()
        )
    job = finished.args[0]

    assert job["state"] == "completed", job
    assert seen_while_running and set(seen_while_running) <= {"running", "completed"}
    assert "running" in seen_while_running  # the text streamed in before the job ended
    assert states_shown[0] == "Asking EXAI (analyze_file)"
    log = dialog.progress_log.toPlainText()
    for expected in (
        "hashing Q3 notes.md",
        "asking EXAI (analyze_file)",
        "started",
        "working…",
        "saving the result",
    ):
        assert expected in log
    result = Path(job["result_path"])
    assert result.parent == agent.results_dir.resolve() and result.is_file()
    text = result.read_text("utf-8")
    assert QUESTION in text and text.startswith("# Streamed answer")
    assert dialog.answer_text() == text
    first = dialog.answer.document().firstBlock()  # rendered Markdown, not raw "# …"
    assert (first.text(), first.blockFormat().headingLevel()) == ("Streamed answer", 1)
    assert "`" not in dialog.answer.toPlainText() and QUESTION in dialog.answer.toPlainText()
    assert dialog.result_bar.label.text() == f"Saved as {result.name}"
    assert dialog.result_bar.label.toolTip() == str(result)
    assert job["file_ref"].startswith("user-files/")
    assert file_field.text() == str(notes)  # the user's path, not the hub's internal key
    assert file_field.toolTip() == f"In the hub as {job['file_ref']}"
    assert dialog.state_label.text().startswith("Done in")
    assert not dialog.error_label.isVisible() and not dialog.cancel_button.isEnabled()
    assert dialog.run_button.isEnabled()

    click(dialog.result_bar.open_button)
    click(dialog.result_bar.reveal_button)
    assert urls.urls == [QUrl.fromLocalFile(str(result)), QUrl.fromLocalFile(str(result.parent))]
    click(dialog.result_bar.copy_button)
    assert (
        QGuiApplication.clipboard().text() == text
        and dialog.result_bar.copy_button.text() == "Copied ✓"
    )

    qtbot.waitUntil(
        lambda: [r.text(0) for r in rows(dialog.past.tree)] == [result.name], timeout=5000
    )
    assert dialog.tabs.tabText(1) == "Past results (1)"
    past = rows(dialog.past.tree)[0]
    assert (past.text(1), past.text(2)) == ("analyze_file", "Q3 notes.md")
    dialog.past.tree.setCurrentItem(past)
    click(dialog.past.open_button)
    assert urls.urls[-1] == QUrl.fromLocalFile(str(result))
    assert agent.call("exai.jobs")[0]["state"] == "completed"


def test_schema_arguments_reach_the_tool_and_a_run_can_be_cancelled(
    qtbot: QtBot, link: AgentLink, agent: ExaiAgent, exai_server: ExaiServerProcess, notes: Path
) -> None:
    dialog = dialog_for(qtbot, link, notes)
    # slow_query's `seconds` (optional number) is the only argument the user fills in;
    # the server would take 60 s without it.
    job = run_tool(qtbot, dialog, "slow_query", seconds=0.5)
    assert job["state"] == "completed", job

    dialog.select_tool("slow_query")
    dialog.question.setPlainText(QUESTION)
    click(dialog.run_button)
    qtbot.waitUntil(lambda: "working…" in dialog.progress_log.toPlainText(), timeout=10_000)
    assert dialog.cancel_button.isEnabled()
    running = exai_server.stats()["requests"][-1]
    assert running[1] == "slow_query"
    with qtbot.waitSignal(dialog.job_finished, timeout=10_000) as finished:
        click(dialog.cancel_button)
    assert finished.args[0]["state"] == "cancelled"
    assert dialog.state_label.text() == "Cancelled" and not dialog.error_label.isVisible()
    assert dialog.result_bar.path is None and not dialog.result_bar.open_button.isEnabled()
    assert agent.call("exai.status")["running_jobs"] == 0
    assert exai_server.stats()["cancels"][-1] == running[0]  # EXAI was told, for that call
    assert [p.name for p in agent.results_dir.iterdir()] == [Path(job["result_path"]).name]
    rows = process_rows(agent.paths.default_local_hub)
    assert rows[-1]["status"] == "failed" and rows[-1]["error_message"] == "cancelled"
    assert {r["metadata"]["op_id"] for r in rows[-3:]} == {rows[-1]["metadata"]["op_id"]}
    hub_results = agent.paths.default_local_hub / "results"
    assert len([p for p in hub_results.rglob("*") if p.is_file()]) == 1  # the first run's


def test_a_failing_tool_and_missing_input_are_explained(
    qtbot: QtBot, link: AgentLink, agent: ExaiAgent, notes: Path
) -> None:
    dialog = dialog_for(qtbot, link, notes)
    job = run_tool(qtbot, dialog, "broken_query")
    assert job["state"] == "failed"
    assert dialog.error_label.isVisible()
    assert "provider exploded" in dialog.error_label.text()
    assert dialog.error_label.text().lower().count("failed") == 1  # said once
    assert dialog.state_label.text() == "Failed" and dialog.result_bar.path is None

    dialog.select_tool("analyze_file")
    dialog.question.setPlainText("   ")
    click(dialog.run_button)
    assert dialog.error_label.text() == "Write a question first."
    assert len(agent.call("exai.jobs")) == 1  # nothing was sent

    gone = open_exai_dialog(None, link, source=str(notes.parent / "gone.md"))
    qtbot.waitUntil(lambda: bool(gone.tools), timeout=10_000)
    gone.question.setPlainText(QUESTION)
    click(gone.run_button)
    qtbot.waitUntil(gone.error_label.isVisible, timeout=10_000)
    assert "gone.md: no such file" in gone.error_label.text()


def test_a_tool_that_outlives_the_servers_timeout_is_explained(
    qtbot: QtBot, qt_loop: qasync.QEventLoop, short_home: Path, notes: Path
) -> None:
    server = ExaiServerProcess(TOKEN, call_timeout=0.5).start()
    agent = start_agent(short_home, server)
    link = connect(qtbot, agent)
    try:
        dialog = dialog_for(qtbot, link, notes)
        job = run_tool(qtbot, dialog, "slow_query", seconds=5.0)
        assert job["state"] == "failed"
        message = dialog.error_label.text()
        assert "timed out" in message and "took too long" not in message, message  # once
    finally:
        run_to_end(qtbot, close_exai_dialogs())
        run_to_end(qtbot, link.close())
        agent.stop()
        server.stop()


def test_wrong_token_is_shown_with_the_agents_message(
    qtbot: QtBot,
    qt_loop: qasync.QEventLoop,
    short_home: Path,
    exai_server: ExaiServerProcess,
    notes: Path,
) -> None:
    agent = start_agent(short_home, exai_server, token="not-the-token")
    link = connect(qtbot, agent)
    try:
        dialog = dialog_for(qtbot, link, notes, fails=True)
        assert dialog.error_label.isVisible() and not dialog.tools
        message = dialog.error_label.text()
        assert message.startswith("EXAI rejected the token") and "refused" not in message
        assert "Settings → EXAI" in message
        assert "not-the-token" not in message
        assert not dialog.run_button.isEnabled()
    finally:
        run_to_end(qtbot, close_exai_dialogs())
        run_to_end(qtbot, link.close())
        agent.stop()


def test_exai_down_is_shown_and_tools_load_once_it_answers(
    qtbot: QtBot, qt_loop: qasync.QEventLoop, short_home: Path, notes: Path
) -> None:
    server = ExaiServerProcess(TOKEN).start()
    server.stop()  # its port is closed now
    agent = start_agent(short_home, server)
    link = connect(qtbot, agent)
    try:
        dialog = dialog_for(qtbot, link, notes, fails=True)
        message = dialog.error_label.text()
        assert message.startswith("cannot reach EXAI at") and f":{server.port}" in message
        assert "cannot be reached" not in message and "Is the EXAI server running?" in message
        assert not dialog.run_button.isEnabled() and dialog.reload_button.isEnabled()
    finally:
        run_to_end(qtbot, close_exai_dialogs())
        run_to_end(qtbot, link.close())
        agent.stop()


def test_a_large_answer_is_shown_completely(
    qtbot: QtBot, link: AgentLink, agent: ExaiAgent, notes: Path
) -> None:
    """How responsive the window stays meanwhile is measured by bench/bench_gui.py."""
    dialog = dialog_for(qtbot, link, notes)
    job = run_tool(qtbot, dialog, "huge_answer", size=2_000_000)
    assert job["state"] == "completed", job
    assert Path(job["result_path"]).stat().st_size == 2_000_000
    assert dialog.answer_text() == Path(job["result_path"]).read_text("utf-8")
    shown = dialog.answer.toPlainText().split("\n")  # folded: one 2 MB line would stall Qt
    assert len(shown) == 2000 and {len(line) for line in shown} == {1000}


def test_the_tray_menu_action_opens_the_dialog(
    qtbot: QtBot, tray_app: TrayApp, agent: ExaiAgent, notes: Path
) -> None:
    app = tray_app
    menu = app.tray.menu
    if not menu.exai_dialog_available:  # the wiring gui/app.py is meant to do
        menu.exai_dialog_available = True
        menu.exai_action.triggered.connect(lambda: open_exai_dialog(None, app.link))
    app.start()
    qtbot.waitUntil(lambda: app.state.connected and bool(app.state.status), timeout=10_000)
    menu.refresh()
    assert menu.exai_action.isEnabled()
    menu.exai_action.trigger()
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, ExaiDialog)]
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    dialog = dialogs[0]
    qtbot.waitUntil(lambda: bool(dialog.tools), timeout=10_000)
    assert (
        dialog.source_picker.edit.text() == "" and not dialog.run_button.isEnabled()
    )  # no file yet
    drop(dialog, [notes])
    assert dialog.source_picker.edit.text() == str(notes) and dialog.run_button.isEnabled()
    run_to_end(qtbot, close_exai_dialogs())


def test_opened_before_the_agent_answers_it_asks_again_once_connected(
    qtbot: QtBot,
    qt_loop: qasync.QEventLoop,
    short_home: Path,
    exai_server: ExaiServerProcess,
    notes: Path,
) -> None:
    agent = ExaiAgent(short_home, exai_server)
    link = AgentLink(agent.paths.control_socket, agent_command=None)
    link.start()
    try:
        dialog = dialog_for(qtbot, link, notes, fails=True)
        assert dialog.error_label.text().startswith("The HubSync agent is not running")
        agent.start()
        qtbot.waitUntil(lambda: bool(dialog.tools), timeout=15_000)
        assert not dialog.error_label.isVisible() and dialog.run_button.isEnabled()
    finally:
        run_to_end(qtbot, close_exai_dialogs())
        run_to_end(qtbot, link.close())
        agent.stop()


def test_closing_the_dialog_mid_run_releases_its_connection_and_the_job_finishes(
    qtbot: QtBot, link: AgentLink, agent: ExaiAgent, notes: Path
) -> None:
    dialog = dialog_for(qtbot, link, notes)
    dialog.select_tool("slow_query")
    dialog.form.inputs["seconds"].set_value(1.0)  # type: ignore[union-attr]
    dialog.question.setPlainText(QUESTION)
    click(dialog.run_button)
    qtbot.waitUntil(lambda: "started" in dialog.progress_log.toPlainText(), timeout=10_000)
    gone: list[bool] = []
    dialog.destroyed.connect(lambda: gone.append(True))
    dialog.close()
    qtbot.waitUntil(lambda: bool(gone), timeout=5000)  # deleted once its tasks ended
    qtbot.waitUntil(lambda: agent.call("exai.jobs")[0]["state"] == "completed", timeout=10_000)


# -- the form on its own ------------------------------------------------------------------------


def test_failures_are_explained_with_the_agents_message_said_once() -> None:
    cases = {
        ("auth", "bad token (close 4003: unauthorized)"): "EXAI refused HubSync's token. bad",
        ("auth", "EXAI rejected the token (close 4003)"): "EXAI rejected the token",
        ("transient", "EXAI tool slow_query timed out on the server: over 300 s"): "EXAI tool",
        ("timeout", "exai.tools did not answer within 60 s"): "exai.tools did not answer",
        ("timeout", "no answer"): "EXAI took too long. no answer",
        ("transient", "cannot reach EXAI at ws://127.0.0.1:9: refused"): "cannot reach EXAI",
        ("transient", "connection reset"): "EXAI cannot be reached. connection reset",
        ("permanent", "EXAI tool x failed: provider exploded"): "EXAI tool x failed",
        ("permanent", "provider exploded"): "The EXAI tool failed. provider exploded",
        ("bad_params", "/x/gone.md: no such file (give an absolute path)"): "/x/gone.md",
    }
    for (code, message), start in cases.items():
        shown = explain(code, message)
        assert shown.startswith(start), (code, shown)
        assert message in shown
    assert "Settings → EXAI" in explain("auth", "EXAI rejected the token")  # what to do stays


def test_long_lines_are_folded_for_display() -> None:
    assert fold("abcdef", 0, width=4) == ("abcd\nef", 2)
    assert fold("gh\nijklm", 2, width=4) == ("gh\nijkl\nm", 1)
    assert fold("xy", 4, width=4) == ("\nxy", 2)
    assert fold("", 3, width=4) == ("", 3)
    pieces, column, whole = [], 0, ""
    for chunk in ("a" * 7, "b\n" + "c" * 9, "d" * 3):
        folded, column = fold(chunk, column, width=4)
        pieces.append(folded)
        whole += chunk
    assert "".join(pieces) == fold(whole, 0, width=4)[0]  # streamed or whole: the same


def test_filled_in_names_match_the_agents() -> None:
    for name in ("FILE_REF_NAMES", "PATH_NAMES", "PATH_LIST_NAMES", "QUESTION_NAMES", "HASH_NAMES"):
        assert getattr(schema_form, name) == getattr(arguments, name), name


def test_the_form_follows_the_schema(qtbot: QtBot) -> None:
    schema = {
        "type": "object",
        "required": ["file_path", "prompt", "style", "depth"],
        "properties": {
            "file_path": {"type": "string"},
            "prompt": {"type": "string"},
            "style": {"type": "string", "enum": ["short", "long"]},
            "depth": {"type": "integer", "minimum": 1, "maximum": 5},
            "temperature": {"type": "number", "default": 0.2},
            "model": {"type": "string", "description": "Model name"},
            "system_instructions": {"type": "string"},
            "cite": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    form = SchemaForm(schema)
    qtbot.addWidget(form)
    roles = {spec.name: spec.role for spec in classify(schema)}
    assert roles["file_path"] == "file" and roles["prompt"] == "question"
    assert form.question_field is not None and form.question_field.name == "prompt"
    assert isinstance(form.filled["file_path"], QLineEdit) and form.filled["file_path"].isReadOnly()
    widgets = {name: type(field.widget) for name, field in form.inputs.items()}
    assert widgets == {
        "style": QComboBox,
        "depth": QSpinBox,
        "temperature": QDoubleSpinBox,
        "model": QLineEdit,
        "system_instructions": QPlainTextEdit,
        "cite": QCheckBox,
        "tags": QLineEdit,
    }
    depth = form.inputs["depth"].widget
    assert isinstance(depth, QSpinBox) and (depth.minimum(), depth.maximum()) == (1, 5)
    temperature = form.inputs["temperature"].widget
    assert isinstance(temperature, QDoubleSpinBox) and temperature.text() == "default (0.2)"

    with pytest.raises(FormError, match="required field: style"):
        form.arguments()  # the required enum has no default: it must be chosen
    form.inputs["style"].set_value("long")
    assert form.arguments() == {"style": "long", "depth": 1}  # untouched optional fields stay out

    form.inputs["temperature"].set_value(0.7)
    form.inputs["cite"].set_value(False)  # a choice the user made is sent, even "off"
    form.inputs["tags"].set_value(["q3", "finance"])
    form.inputs["model"].set_value("glm-4.5")
    assert form.arguments() == {
        "style": "long",
        "depth": 1,
        "temperature": 0.7,
        "cite": False,
        "tags": ["q3", "finance"],
        "model": "glm-4.5",
    }
    tags = form.inputs["tags"].widget
    assert isinstance(tags, QLineEdit)
    tags.setText('{"not": "a list"}')
    with pytest.raises(FormError, match="tags: expected a JSON array"):
        form.arguments()
    tags.setText("[unclosed")
    with pytest.raises(FormError, match="tags: not valid JSON"):
        form.arguments()


def test_a_tool_without_a_file_argument_cannot_run(qtbot: QtBot) -> None:
    form = SchemaForm({"type": "object", "properties": {"prompt": {"type": "string"}}})
    qtbot.addWidget(form)
    assert not form.takes_file and form.question_field is not None


def test_closing_the_dialog_at_once_leaves_no_work_unawaited(
    qtbot: QtBot, qt_loop: qasync.QEventLoop, tmp_path: Path
) -> None:
    """Regression: a task cancelled before it started dropped its coroutine unawaited
    ("coroutine 'PastResults._load' was never awaited")."""
    import gc
    import warnings

    async def never_started() -> None:
        raise AssertionError("runs only if the dialog stayed open")

    link = AgentLink(tmp_path / "no-agent.sock", agent_command=None)
    dialog = ExaiDialog(link)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dialog._spawn(never_started())
        dialog.done(0)  # closed before the loop ran anything
        qtbot.waitUntil(lambda: not dialog._tasks, timeout=5_000)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_ctrl_enter_in_the_question_runs_the_tool(
    qtbot: QtBot, link: AgentLink, agent: ExaiAgent, notes: Path
) -> None:
    dialog = dialog_for(qtbot, link, notes)
    dialog.select_tool("analyze_file")
    dialog.show()
    dialog.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=2000)
    dialog.question.setFocus()
    dialog.question.setPlainText(QUESTION)
    with qtbot.waitSignal(dialog.job_finished, timeout=20_000) as finished:
        QTest.keyClick(dialog.question, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert finished.args[0]["state"] == "completed"
    assert dialog.question.toPlainText() == QUESTION  # no new line typed into the question
