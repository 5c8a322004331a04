"""Keep EXAI answers in the results folder, and only there.

Every part of a result's name (source file name, tool name) comes from outside
(the user's file, the server's tool list), so each is reduced to one harmless
path component. The bytes go to a fresh temp file opened with ``O_EXCL`` (and
``O_NOFOLLOW``), then are hard-linked to the final name, which fails instead of
replacing anything already there — a file, or a symlink pointing out of the
folder. Nothing in an answer (content or metadata) is ever used as a path.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.config import Config
from agent.platform.paths import Paths
from sync.durable import fsync_dir
from sync.errors import LocalFileError

MAX_NAME_BYTES = 100
MAX_TOOL_CHARS = 64
_MAX_SUFFIX = 1000
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_TOOL_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


def default_results_dir(config: Config, paths: Paths) -> Path:
    """``[exai] results_dir`` when set, else the data dir's ``results`` (under HUBSYNC_HOME)."""
    configured = config.exai.results_dir
    return Path(configured).expanduser() if configured else paths.results_dir


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def safe_file_part(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One readable, harmless path component from a file name (only its last component)."""
    last = re.split(r"[/\\]", name)[-1]
    text = unicodedata.normalize("NFC", last)
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"_{2,}", "_", text).strip(" .")
    text = _truncate_utf8(text, max_bytes).strip(" .")
    if not text or set(text) <= {"_", "."}:
        text = "file"
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    return text


def safe_tool_part(tool: str) -> str:
    text = _TOOL_UNSAFE.sub("_", tool)[:MAX_TOOL_CHARS].strip("_")
    return text or "tool"


def result_stem(source_name: str, tool: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{safe_file_part(source_name)}.{safe_tool_part(tool)}.{moment:%Y%m%dT%H%M%SZ}"


def write_result(
    results_dir: Path,
    source_name: str,
    tool: str,
    text: str,
    *,
    structured: bool = False,
    now: datetime | None = None,
) -> Path:
    """Write ``text`` as ``<results_dir>/<file name>.<tool>.<timestamp>.md`` (``.json`` when
    structured) and return the path; an existing name gets ``-2``, ``-3``... never replaced."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory = results_dir.resolve(strict=True)
    except OSError as exc:
        raise LocalFileError(f"cannot use results folder {results_dir}: {exc.strerror}") from None
    if not directory.is_dir():
        raise LocalFileError(f"results folder {results_dir} is not a folder")
    stem = result_stem(source_name, tool, now)
    ext = "json" if structured else "md"
    tmp = _write_temp(directory, text.encode("utf-8"))
    try:
        for n in range(1, _MAX_SUFFIX + 1):
            final = directory / (f"{stem}.{ext}" if n == 1 else f"{stem}-{n}.{ext}")
            if final.parent != directory:  # cannot happen with safe parts; refuse if it ever does
                raise LocalFileError("refusing a result name outside the results folder")
            if _publish(tmp, final):
                fsync_dir(directory)
                return final
        raise LocalFileError(f"too many results named {stem}.*")
    finally:
        tmp.unlink(missing_ok=True)


def _write_temp(directory: Path, data: bytes) -> Path:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    tmp = directory / f".hubsync-result-{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise LocalFileError(f"cannot write in results folder: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LocalFileError(f"cannot write result: {exc.strerror}") from None
    return tmp


def _publish(tmp: Path, final: Path) -> bool:
    """Give ``tmp`` the name ``final`` unless that name exists; True when it did."""
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass  # no hard links on this file system: fall back to rename
    if os.path.lexists(final):
        return False
    try:
        tmp.rename(final)  # on Windows this never replaces an existing file
    except FileExistsError:
        return False
    return True


_RESULT_NAME = re.compile(
    r"^(?P<source>.+)\.(?P<tool>[A-Za-z0-9_-]+)\.(?P<stamp>\d{8}T\d{6}Z)(?:-\d+)?\.(?P<ext>md|json)$"
)


@dataclass(frozen=True)
class ResultFile:
    path: Path
    source: str
    tool: str
    created: datetime
    size: int


def list_results(results_dir: Path, limit: int = 200) -> list[ResultFile]:
    """Past results in ``results_dir``, newest first (files HubSync named; nothing followed)."""
    found: list[ResultFile] = []
    try:
        entries = list(os.scandir(results_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _RESULT_NAME.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        created = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        size = entry.stat(follow_symlinks=False).st_size
        found.append(ResultFile(Path(entry.path), match["source"], match["tool"], created, size))
    found.sort(key=lambda r: (r.created, r.path.name), reverse=True)
    return found[:limit]
