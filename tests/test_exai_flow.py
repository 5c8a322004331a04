"""Processing files with EXAI end to end: the real local hub, the protocol test server,
the results folder and the ``process`` rows (issue 6, acceptance 1-4)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli.exai import exai_app
from agent.config import Config
from agent.control.client import ControlClient
from agent.control.protocol import ControlError, Event
from agent.control.server import ControlServer
from agent.exai.arguments import build_arguments, map_path
from agent.exai.client import ExaiClient
from agent.exai.errors import (
    ExaiAuthError,
    ExaiError,
    ExaiTimeout,
    ExaiToolError,
    ExaiUnavailable,
)
from agent.exai.flow import HubRef, process_file
from agent.exai.jobs import ExaiJobs
from agent.exai.results import default_results_dir, result_stem, write_result
from agent.exai.server_files import answered_path, download_destination, download_to_server
from agent.exai.settings import ExaiSettings
from agent.exai.tools import ToolInfo
from agent.platform.paths import resolve_paths
from sync.remotes.local import LocalHub
from tests.exai_server import TOOLS, ExaiTestServer

pytest_plugins = ["tests.fixtures.exai"]

QUESTION = "Summarise"


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def process_rows(hub: LocalHub) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(hub.root / "hub.sqlite3")) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM file_operations WHERE operation_type='process' ORDER BY rowid"
        ).fetchall()
    return [{**dict(r), "metadata": json.loads(r["metadata"])} for r in rows]


def metadata_buckets(hub: LocalHub) -> list[str]:
    with closing(sqlite3.connect(hub.root / "hub.sqlite3")) as db:
        return sorted(r[0] for r in db.execute("SELECT bucket_id FROM file_metadata"))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in files_under(root) if p.is_file()}


def text_of(path: str | Path) -> str:
    return Path(path).read_text("utf-8")


def resolved(path: Path) -> Path:
    return path.resolve()


def size_of(path: Path) -> int:
    return path.stat().st_size


def is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LocalHub]:
    local = LocalHub(tmp_path / "hub")
    yield local
    await local.close()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "notes.pdf"
    path.write_bytes(b"%PDF-1.4 quarterly notes\n" * 100)
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


# -- acceptance 1: the happy path -----------------------------------------------------------


async def test_process_local_file_end_to_end(
    hub: LocalHub,
    exai_server: ExaiTestServer,
    exai_client: ExaiClient,
    notes: Path,
    results: Path,
) -> None:
    exai_server.tool_delay = 0.05
    stages: list[str] = []
    progress: list[str] = []
    outcome = await process_file(
        hub,
        exai_client,
        notes,
        QUESTION,
        "analyze_file",
        results,
        on_stage=stages.append,
        on_progress=progress.append,
    )
    sha = sha_of(notes)
    # the answer is in the results folder ...
    assert outcome.result_path.parent == resolved(results)
    assert re.fullmatch(r"notes\.pdf\.analyze_file\.\d{8}T\d{6}Z\.md", outcome.result_path.name)
    assert outcome.result_path.read_text("utf-8") == outcome.result.content
    assert QUESTION in outcome.result.content
    # ... and in the results bucket, byte for byte; the file itself is in user-files
    stored = hub.root / "results" / outcome.result_key
    assert stored.read_bytes() == outcome.result_path.read_bytes()
    assert await hub.find_blobs([sha]) == {sha: outcome.file_ref.removeprefix("user-files/")}
    assert metadata_buckets(hub) == ["results", "user-files"]
    # EXAI got the hub reference, the hash (against its cache) and the question
    assert exai_server.calls == [
        ("analyze_file", {"file_id": outcome.file_ref, "question": QUESTION, "sha256": sha})
    ]
    assert outcome.file_ref.startswith(f"user-files/local/{sha[:2]}/{sha}/")
    # the process rows: pending -> processing -> completed, one op_id, timings, result key
    rows = process_rows(hub)
    assert [r["status"] for r in rows] == ["pending", "processing", "completed"]
    assert {r["metadata"]["op_id"] for r in rows} == {outcome.op_id}
    done = rows[-1]
    assert done["file_id"] == outcome.file_ref.removeprefix("user-files/")
    assert done["error_message"] is None and done["completed_at"] and done["started_at"]
    assert done["duration_ms"] >= 50  # the tool took 50 ms
    assert done["metadata"]["result_key"] == f"results/{outcome.result_key}"
    assert done["metadata"]["tool"] == "analyze_file"
    assert done["bytes"] == size_of(notes)
    assert stages[0].startswith("hashing") and progress[0] == "started"


async def test_structured_answer_is_written_as_json(
    hub: LocalHub, exai_client: ExaiClient, notes: Path, results: Path
) -> None:
    outcome = await process_file(hub, exai_client, notes, "Entities", "extract_json", results)
    assert outcome.result_path.suffix == ".json"
    assert json.loads(outcome.result_path.read_text("utf-8"))["entities"] == ["alpha", "beta"]
    assert process_rows(hub)[-1]["metadata"]["content_type"] == "json"


async def test_hub_reference_is_processed_without_upload(
    hub: LocalHub, exai_server: ExaiTestServer, exai_client: ExaiClient, notes: Path, results: Path
) -> None:
    sha = sha_of(notes)
    key = await hub.put_blob(notes, sha, size_of(notes), notes.name, "application/pdf")
    outcome = await process_file(
        hub, exai_client, f"user-files/{key}", QUESTION, "analyze_file", results
    )
    assert outcome.file_ref == f"user-files/{key}" and outcome.sha256 == sha
    assert exai_server.calls[0][1]["file_id"] == f"user-files/{key}"
    assert [r["file_id"] for r in process_rows(hub)] == [key, key, key]


async def test_path_only_tools_read_the_file_through_a_shared_disk(
    hub: LocalHub, exai_server: ExaiTestServer, exai_client: ExaiClient, notes: Path, results: Path
) -> None:
    """smart_file_query reads only server paths (its schema's pattern). EXAI can download
    from the Supabase hub but not from the local one: there only a shared disk helps."""
    with pytest.raises(ExaiToolError, match=r"reads only files on the EXAI server .*local hub"):
        await process_file(hub, exai_client, notes, QUESTION, "smart_file_query", results)
    assert process_rows(hub)[-1]["status"] == "failed" and is_empty(results)
    assert [name for name, _ in exai_server.calls] == []  # refused before any call

    # the folder is shared: the server sees it as /mnt/project/Personal_AI_Agent/docs
    shared = exai_server.local_path("/mnt/project/Personal_AI_Agent/docs")
    shared.parent.mkdir(parents=True)
    shared.symlink_to(notes.parent)
    mapping = {str(notes.parent): "/mnt/project/Personal_AI_Agent/docs"}
    outcome = await process_file(
        hub, exai_client, notes, QUESTION, "smart_file_query", results, path_map=mapping
    )
    assert exai_server.calls[-1][1]["file_path"] == "/mnt/project/Personal_AI_Agent/docs/notes.pdf"
    assert f"sha256 {sha_of(notes)}" in outcome.result.content  # the server read that file

    # a map onto a path the tool refuses is no disk it can use
    with pytest.raises(ExaiToolError, match="local hub"):
        await process_file(
            hub,
            exai_client,
            notes,
            QUESTION,
            "smart_file_query",
            results,
            path_map={str(notes.parent): "/mnt/laptop-docs"},
        )

    # the hub folder itself shared, as /app/hub
    app = exai_server.local_path("/app/hub")
    app.parent.mkdir(parents=True)
    app.symlink_to(hub.root)
    ref = HubRef.parse(outcome.file_ref)
    hub_map = {"user-files": "/app/hub/user-files"}
    await process_file(
        hub, exai_client, ref, QUESTION, "smart_file_query", results, path_map=hub_map
    )
    assert exai_server.calls[-1][1]["file_path"] == f"/app/hub/user-files/{ref.key}"
    assert [name for name, _ in exai_server.calls] == ["smart_file_query"] * 2


# -- acceptance 2: every failure is clear and ends the row failed ---------------------------


def _settings_for(case: str, base: ExaiSettings, free_port: int) -> ExaiSettings:
    if case == "wrong token":
        return replace(base, token="not-the-token")
    if case == "server down":
        return replace(base, port=free_port)
    return base


@pytest.mark.parametrize(
    ("case", "tool", "error", "reason"),
    [
        ("wrong token", "analyze_file", ExaiAuthError, "EXAI rejected the token (unauthorized)"),
        ("server down", "analyze_file", ExaiUnavailable, "cannot reach EXAI at ws://127.0.0.1:"),
        (
            "closing mid-call",
            "closing_query",
            ExaiUnavailable,
            "EXAI closed the connection during closing_query (code 1011: worker crashed)",
        ),
        (
            "tool error",
            "failing_query",
            ExaiToolError,
            "EXAI tool failing_query reported an error: model refused: file is empty",
        ),
        ("timeout", "slow_query", ExaiTimeout, "EXAI did not answer slow_query within 0.3 s"),
        ("unknown tool", "no_such_tool", ExaiToolError, "EXAI has no tool named 'no_such_tool'"),
    ],
)
async def test_failures_end_the_process_row_failed_with_the_reason(
    hub: LocalHub,
    exai_server: ExaiTestServer,
    exai_settings: ExaiSettings,
    notes: Path,
    results: Path,
    unused_tcp_port: int,
    case: str,
    tool: str,
    error: type[ExaiError],
    reason: str,
) -> None:
    settings = _settings_for(case, exai_settings, unused_tcp_port)
    async with ExaiClient(settings) as client:
        with pytest.raises(error) as info:
            await process_file(hub, client, notes, QUESTION, tool, results, time_limit=0.3)
    assert str(info.value).startswith(reason)
    assert "not-the-token" not in str(info.value)
    rows = process_rows(hub)
    assert [r["status"] for r in rows] == ["pending", "processing", "failed"]
    failed = rows[-1]
    assert failed["error_message"] == str(info.value)
    assert failed["metadata"]["error_kind"] == info.value.kind
    assert failed["completed_at"] and failed["duration_ms"] >= 0
    assert "result_key" not in failed["metadata"]
    assert is_empty(results)  # nothing half-written
    assert await exai_server.wait_idle() == 0


async def test_cancelled_processing_is_recorded_and_leaves_nothing(
    hub: LocalHub, exai_server: ExaiTestServer, exai_client: ExaiClient, notes: Path, results: Path
) -> None:
    started = asyncio.Event()
    task = asyncio.create_task(
        process_file(
            hub,
            exai_client,
            notes,
            QUESTION,
            "slow_query",
            results,
            on_progress=lambda _m: started.set(),
        )
    )
    await asyncio.wait_for(started.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = process_rows(hub)
    assert [r["status"] for r in rows] == ["pending", "processing", "failed"]
    assert rows[-1]["error_message"] == "cancelled"
    assert exai_client.open_connections == 0
    assert await exai_server.wait_idle() == 0
    assert _others() == set()


# -- acceptance 3: concurrency is bounded and leaves nothing behind -------------------------


async def test_ten_files_at_once_all_complete_and_release_everything(
    hub: LocalHub,
    exai_server: ExaiTestServer,
    exai_settings: ExaiSettings,
    tmp_path: Path,
    results: Path,
) -> None:
    exai_server.tool_delay = 0.05
    docs = tmp_path / "many"
    docs.mkdir()
    sources = []
    for i in range(10):
        path = docs / f"report-{i}.txt"
        path.write_text(f"report number {i}\n" * 50)
        sources.append(path)
    client = ExaiClient(exai_settings)
    outcomes = await asyncio.gather(
        *(process_file(hub, client, p, QUESTION, "analyze_file", results) for p in sources)
    )
    assert sorted(o.result_path.name.split(".")[0] for o in outcomes) == sorted(
        p.stem for p in sources
    )
    assert len({o.result_path for o in outcomes}) == 10
    for outcome, path in zip(outcomes, sources, strict=True):
        assert f"report-{path.stem[-1]}.txt" in outcome.result.content
        assert (hub.root / "results" / outcome.result_key).is_file()
    statuses = [r["status"] for r in process_rows(hub)]
    assert statuses.count("completed") == 10 and "failed" not in statuses
    assert exai_server.peak_connections <= exai_settings.max_connections
    await client.aclose()
    assert client.open_connections == 0
    assert await exai_server.wait_idle() == 0
    assert _others() == set()


# -- acceptance 4: no answer can write outside the results folder ---------------------------


async def test_answer_naming_bashrc_cannot_escape_the_results_folder(
    hub: LocalHub, exai_client: ExaiClient, tmp_path: Path, results: Path
) -> None:
    nested = results / "a" / "b"
    source = tmp_path / ".bashrc"
    source.write_text("alias ll='ls -l'\n")
    before = snapshot(tmp_path)
    outcome = await process_file(hub, exai_client, source, QUESTION, "traversal_query", nested)
    assert outcome.result.metadata["filename"] == "../../.bashrc"
    assert outcome.result_path.parent == resolved(nested)
    assert outcome.result_path.name.startswith("bashrc.traversal_query.")
    assert source.read_text() == "alias ll='ls -l'\n"
    assert not (results / ".bashrc").exists() and not (results / "a" / ".bashrc").exists()
    new = files_under(tmp_path) - set(before)
    assert all(p.is_relative_to(nested) or p.is_relative_to(hub.root) for p in new), new
    outside_hub = {p: data for p, data in before.items() if not p.is_relative_to(hub.root)}
    assert all(p.read_bytes() == data for p, data in outside_hub.items())


NOW = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("source", "tool"),
    [
        ("../../.bashrc", "smart_file_query"),
        ("/etc/passwd", "../../etc"),
        ("C:\\Windows\\system32\\evil.dll", "a/b\\c"),
        ("nul\x00byte.txt", "tool\x00"),
        ("..", ".."),
        ("", ""),
        ("x" * 5000 + ".pdf", "t" * 500),
        ("名前 — résumé.txt", "smart_file_query"),
        ("con.txt", "x"),
    ],
)
def test_hostile_names_are_written_inside_the_folder(
    tmp_path: Path, source: str, tool: str
) -> None:
    results = tmp_path / "results"
    path = write_result(results, source, tool, "answer", now=NOW)
    assert path.parent == results.resolve()
    assert len(path.name.encode("utf-8")) <= 255
    assert "\x00" not in path.name and not path.name.startswith(".")
    assert path.read_text("utf-8") == "answer"
    assert files_under(tmp_path) == {path}  # no temp file, nothing elsewhere


def test_symlinks_in_the_results_folder_are_never_followed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    stem = result_stem("notes.pdf", "smart_file_query", NOW)
    (results / f"{stem}.md").symlink_to(outside)
    (results / f"{stem}-2.md").symlink_to(tmp_path / "dangling-target")
    path = write_result(results, "notes.pdf", "smart_file_query", "answer", now=NOW)
    assert path.name == f"{stem}-3.md"
    assert outside.read_text() == "precious"
    assert not (tmp_path / "dangling-target").exists()


def test_results_are_never_overwritten(tmp_path: Path) -> None:
    first = write_result(tmp_path, "notes.pdf", "t", "one", now=NOW)
    second = write_result(tmp_path, "notes.pdf", "t", "two", now=NOW)
    third = write_result(tmp_path, "notes.pdf", "t", '{"a": 1}', structured=True, now=NOW)
    assert (first.read_text(), second.read_text()) == ("one", "two")
    assert second.name.endswith("-2.md") and third.suffix == ".json"


def test_results_folder_defaults_under_hubsync_home(tmp_path: Path) -> None:
    paths = resolve_paths({"HUBSYNC_HOME": str(tmp_path)})
    assert default_results_dir(Config(), paths) == tmp_path.resolve() / "data" / "results"
    config = Config()
    config.exai.results_dir = str(tmp_path / "elsewhere")
    assert default_results_dir(config, paths) == tmp_path / "elsewhere"


# -- arguments from input schemas -----------------------------------------------------------


def _tool(name: str) -> ToolInfo:
    raw = next(t for t in TOOLS if t["name"] == name)
    return ToolInfo(raw["name"], raw["description"], raw["inputSchema"])


def test_arguments_follow_the_schema() -> None:
    strict = ToolInfo(
        "strict",
        input_schema={
            "type": "object",
            "properties": {"files": {"type": "array"}, "prompt": {}, "model": {}},
            "required": ["files", "prompt", "model"],
            "additionalProperties": False,
        },
    )
    ref, sha = "user-files/u/ab/abc/n.pdf", "ab" * 32

    def args(tool: ToolInfo, question: str = "Q", **extra: str) -> dict[str, Any]:
        return build_arguments(tool, file_ref=ref, sha256=sha, question=question, extra=extra)

    with pytest.raises(ExaiToolError, match="needs model"):
        args(strict)
    assert args(strict, model="glm-4.6") == {"files": [ref], "prompt": "Q", "model": "glm-4.6"}
    download = ToolInfo(
        "smart_file_download",
        input_schema={"properties": {"file_id": {}, "destination": {}}, "required": ["file_id"]},
    )
    assert args(download, question="") == {"file_id": ref, "sha256": sha}
    with pytest.raises(ExaiToolError, match="takes no question"):
        args(download)
    with pytest.raises(ExaiToolError, match="takes no file argument"):
        args(ToolInfo("chat", input_schema={"properties": {"prompt": {}}}))
    assert args(_tool("extract_json"))["prompt"] == "Q"


def test_path_map_prefers_the_longest_prefix() -> None:
    mapping = {"/home/me": "/mnt/home", "/home/me/docs": "/data/docs", "user-files": "/hub/uf"}
    assert map_path("user-files/k", Path("/home/me/docs/a.pdf"), mapping) == "/data/docs/a.pdf"
    assert map_path("user-files/k", Path("/home/meow/a.pdf"), mapping) == "/hub/uf/k"
    assert map_path("user-files/k", None, {}) == "user-files/k"


def test_server_download_destinations_suit_both_tools() -> None:
    query, sha = _tool("smart_file_query"), "cd" * 32
    default = download_destination(query, sha, "n.pdf")
    assert default == f"/mnt/project/Personal_AI_Agent/hubsync-downloads/{sha}/n.pdf"
    chosen = download_destination(query, sha, "n.pdf", "/mnt/project/EX-AI-MCP-Server/in/")
    assert chosen == f"/mnt/project/EX-AI-MCP-Server/in/{sha}/n.pdf"
    with pytest.raises(ExaiToolError, match="download_dir /mnt/project/downloads is not"):
        download_destination(query, sha, "n.pdf", "/mnt/project/downloads")  # query refuses it
    app_only = ToolInfo(
        "app_query",
        input_schema={
            "properties": {"file_path": {"pattern": "^/app/"}},
            "required": ["file_path"],
        },
    )
    with pytest.raises(ExaiToolError, match="none is under /mnt/project/"):
        download_destination(app_only, sha, "n.pdf")
    assert answered_path(" /mnt/project/x/n.pdf\n") == "/mnt/project/x/n.pdf"
    assert answered_path('{"local_path": "/mnt/project/x/n.pdf"}') == "/mnt/project/x/n.pdf"
    assert answered_path("Downloaded it!") is None
    assert answered_path("/mnt/a\n/mnt/b") is None and answered_path('["/mnt/a"]') is None


async def test_a_server_without_smart_file_download_is_explained(exai_client: ExaiClient) -> None:
    query = _tool("smart_file_query")
    with pytest.raises(ExaiToolError, match=r"no smart_file_download .* path_map"):
        await download_to_server(exai_client, [query], query, "user-files/k", "/mnt/project/x")


async def test_a_cancel_after_the_answer_is_too_late_and_the_answer_is_kept_whole(
    hub: LocalHub,
    exai_client: ExaiClient,
    notes: Path,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saving = threading.Event()

    def slow_write(*args: Any, **kwargs: Any) -> Path:  # a slow disk
        saving.set()
        time.sleep(0.3)
        return write_result(*args, **kwargs)

    monkeypatch.setattr("agent.exai.flow.write_result", slow_write)
    task = asyncio.create_task(
        process_file(hub, exai_client, notes, QUESTION, "analyze_file", results)
    )
    while not saving.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    outcome = await task  # not CancelledError: the job completed
    assert outcome.result_path.read_text("utf-8") == outcome.result.content
    assert (hub.root / "results" / outcome.result_key).is_file()
    assert [r["status"] for r in process_rows(hub)] == ["pending", "processing", "completed"]


# -- acceptance 1 through the command line --------------------------------------------------


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """``python -m tests.exai_server`` as its own process; yields (port, health port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.exai_server", "--port", "0", "--token", "cli-token"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"ws://127\.0\.0\.1:(\d+) \(health port (\d+)\)", line)
        assert found, line
        yield int(found.group(1)), int(found.group(2))
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_ask_tools_and_status(tmp_path: Path, server_process: tuple[int, int]) -> None:
    port, health_port = server_process
    home = tmp_path / "home"
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"%PDF-1.4 notes\n" * 20)
    env = {
        "HUBSYNC_HOME": str(home),
        "EXAI_WS_HOST": "127.0.0.1",
        "EXAI_WS_PORT": str(port),
        "EXAI_WS_TOKEN": "cli-token",
        "SUPABASE_URL": "",
        "SUPABASE_ANON_KEY": "",
    }
    runner = CliRunner()
    asked = runner.invoke(
        exai_app, ["ask", str(notes), QUESTION, "--tool", "analyze_file"], env=env
    )
    assert asked.exit_code == 0, asked.output
    result_path = Path(asked.stdout.strip().splitlines()[-1])
    assert result_path.parent == home.resolve() / "data" / "results"
    assert QUESTION in result_path.read_text("utf-8")

    async def check_hub() -> list[dict[str, Any]]:
        hub = LocalHub(home / "data" / "hub")
        try:
            sha = sha_of(result_path)
            assert sha in await hub.find_blobs([sha], bucket="results")
            return process_rows(hub)
        finally:
            await hub.close()

    rows = asyncio.run(check_hub())
    assert [r["status"] for r in rows] == ["pending", "processing", "completed"]

    listed = runner.invoke(exai_app, ["tools", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "smart_file_query" in {t["name"] for t in json.loads(listed.stdout)}

    config_dir = home / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text(f"[exai]\nhealth_port = {health_port}\n")
    ok = runner.invoke(exai_app, ["status", "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    state = json.loads(ok.stdout)
    assert state["state"] == "ok" and state["health"]["status"] == "healthy"
    assert state["token_source"] == "env" and "cli-token" not in ok.stdout

    bad = runner.invoke(exai_app, ["status"], env={**env, "EXAI_WS_TOKEN": "wrong"})
    assert bad.exit_code == 1 and "rejected the token" in bad.stdout
    failed = runner.invoke(
        exai_app, ["ask", str(notes), QUESTION], env={**env, "EXAI_WS_TOKEN": "wrong"}
    )
    assert failed.exit_code == 1 and "EXAI rejected the token" in failed.stderr
    missing = runner.invoke(exai_app, ["ask", str(tmp_path / "nope.pdf"), QUESTION], env=env)
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    assert os.environ.get("EXAI_WS_TOKEN") != "cli-token"


# -- inside the agent: jobs over the control API --------------------------------------------


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: Unix socket paths are limited to about 100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="hs-exai-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _until(
    events: AsyncIterator[Event], done: Callable[[Event], bool], seen: list[Event]
) -> Event:
    async with asyncio.timeout(5):
        async for event in events:
            seen.append(event)
            if done(event):
                return event
    raise AssertionError("the event stream ended")


async def test_agent_jobs_relay_progress_and_stream_and_can_be_cancelled(
    hub: LocalHub,
    exai_server: ExaiTestServer,
    exai_settings: ExaiSettings,
    notes: Path,
    results: Path,
    socket_dir: Path,
) -> None:
    exai_server.tool_delay = 0.05
    server = ControlServer(socket_dir / "agent.sock")
    jobs = ExaiJobs(
        ExaiClient(exai_settings),
        {"local": hub},
        default_hub="local",
        results_dir=results,
        publish=server.publish,
    )
    jobs.register(server)
    seen: list[Event] = []
    async with server:
        watcher = await ControlClient.connect(server.socket_path)
        caller = await ControlClient.connect(server.socket_path)
        try:
            events = await watcher.subscribe(["exai.job", "exai.progress", "exai.chunk"])
            tools = await caller.call("exai.tools")
            assert "smart_file_query" in {t["name"] for t in tools}
            params = {"source": str(notes), "question": QUESTION, "tool": "analyze_file"}
            job = await caller.call("exai.process", params)
            final = await _until(
                events,
                lambda e: (
                    e.event == "exai.job"
                    and e.data["id"] == job["id"]
                    and e.data["state"] in ("completed", "failed")
                ),
                seen,
            )
            assert final.data["state"] == "completed", final.data
            chunks = "".join(e.data["chunk"] for e in seen if e.event == "exai.chunk")
            assert text_of(final.data["result_path"]) == chunks
            assert any(e.event == "exai.progress" for e in seen)
            stages = [e.data["stage"] for e in seen if e.event == "exai.job"]
            assert "saving the result" in stages
            past = await caller.call("exai.results")
            assert [(r["source"], r["tool"]) for r in past] == [("notes.pdf", "analyze_file")]

            slow = await caller.call("exai.process", {**params, "tool": "slow_query"})
            await _until(
                events, lambda e: e.event == "exai.progress" and e.data["job"] == slow["id"], seen
            )
            assert await caller.call("exai.cancel", {"job": slow["id"]}) == {"cancelled": True}
            cancelled = await _until(
                events,
                lambda e: e.event == "exai.job" and e.data["state"] == "cancelled",
                seen,
            )
            assert cancelled.data["id"] == slow["id"] and jobs.running == 0
            assert [j["state"] for j in await caller.call("exai.jobs")] == [
                "cancelled",
                "completed",
            ]
            with pytest.raises(ControlError) as info:
                await caller.call("exai.process", {**params, "source": "relative.pdf"})
            assert info.value.code == "bad_params"
            status = await caller.call("exai.status")
            assert status["state"] == "ok" and status["running_jobs"] == 0
        finally:
            await watcher.close()
            await caller.close()
    await jobs.aclose()
    assert await exai_server.wait_idle() == 0
    assert process_rows(hub)[-1]["error_message"] == "cancelled"
    assert _others() == set()
