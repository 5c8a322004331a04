"""The agent's log: a rotating file with secrets redacted before anything is written.

Redaction happens in a ``logging.Filter`` attached to the handler, so every
record that reaches the file (from any library's logger) is cleaned, including
its arguments, exception text and stack.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import stamina

from agent.platform.paths import Paths
from sync.disk_space import is_disk_full

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_BACKUPS = 5
REDACTED = "[REDACTED]"

_SECRET_KEYS = (
    r"api[_-]?key|apikey|x-api-key|access[_-]?token|refresh[_-]?token|id[_-]?token|token"
    r"|password|passwd|pwd|secret|client[_-]?secret|service[_-]?role(?:[_-]?key)?"
    r"|anon[_-]?key|authorization|auth|session"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers and the like: "Bearer <token>", "Basic <b64>".
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    # JWTs (Supabase access tokens and keys) wherever they appear, even truncated.
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}"), f"{REDACTED}-JWT"),
    # Supabase secret / service keys of the newer format.
    (re.compile(r"\bsb_secret_[A-Za-z0-9_-]+"), f"{REDACTED}-KEY"),
    # key=value, key: value, "key": "value", ?key=value& in any case.
    (
        re.compile(
            rf"""(?P<key>\b[\w.-]*?(?:{_SECRET_KEYS})\b["']?\s*[:=]\s*["']?)"""
            r"""(?!\[REDACTED|(?:Bearer|Basic)\s)(?P<val>[^\s"'&,;}\]]+)""",
            re.IGNORECASE,
        ),
        rf"\g<key>{REDACTED}",
    ),
    # Passwords inside URLs: scheme://user:password@host
    (
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]+:)[^@\s/]+(@)", re.IGNORECASE),
        rf"\1{REDACTED}\2",
    ),
]


def redact(text: str) -> str:
    """``text`` with tokens, keys and passwords replaced by ``[REDACTED]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Formats the record's message once, redacted, so handlers never see the raw values."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(
    paths: Paths,
    *,
    level: int = logging.INFO,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
    console: bool = False,
) -> logging.Handler:
    """Send the root logger to ``paths.log_file`` (rotating, 0600, redacted); returns the handler.

    Calling it again replaces the handlers it installed before.
    """
    paths.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_hubsync", False)]:
        root.removeHandler(old)
        old.close()
    handler = _PrivateRotatingFileHandler(
        paths.log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handlers: list[logging.Handler] = [handler]
    if console:
        handlers.append(logging.StreamHandler())
    for h in handlers:
        h.setFormatter(logging.Formatter(LOG_FORMAT))
        h.addFilter(RedactingFilter())
        h._hubsync = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    stamina.instrumentation.set_on_retry_hooks([_log_retry])
    return handler


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    """One readable line per retry wait (stamina's own says only "retry_scheduled")."""
    cause = details.caused_by
    logging.getLogger("hubsync.retry").info(
        "%s; retry %d in %.1f s",
        getattr(cause, "message", None) or repr(cause),
        details.retry_num,
        details.wait_for,
    )


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Log files hold paths and names of the user's files: keep them private (0600)."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:
        """A full disk drops the line (the console and the agent's status still say
        what is going on) instead of a "Logging error" traceback for every line."""
        if is_disk_full(sys.exc_info()[1] or Exception(), self.baseFilename):
            return
        super().handleError(record)


def tail(log_file: Path, n: int = 100) -> list[str]:
    """The last ``n`` lines of the log, reaching into the last rotated file when needed."""
    lines: list[str] = []
    for path in (log_file, log_file.with_name(log_file.name + ".1")):
        if len(lines) >= n:
            break
        lines = _tail_one(path, n - len(lines)) + lines
    return lines[-n:] if n > 0 else []


def _tail_one(path: Path, n: int, block: int = 64 * 1024) -> list[str]:
    """Read backwards in blocks, so a huge log costs only what is shown."""
    if n <= 0:
        return []
    try:
        with open(path, "rb") as f:
            pos = f.seek(0, os.SEEK_END)
            data = b""
            while pos > 0 and data.count(b"\n") <= n:
                step = min(block, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace")
    return text.splitlines()[-n:]


def follow(log_file: Path, *, poll: float = 0.5, stop_after: float | None = None) -> Iterator[str]:
    """Yield lines appended to the log from now on, surviving rotation (like ``tail -F``).

    ``stop_after`` (seconds) ends the iteration; ``None`` follows until interrupted.
    """
    deadline = None if stop_after is None else time.monotonic() + stop_after
    f: BinaryIO | None = None
    inode = -1
    at_start = True  # the file present at start is followed from its end; new ones from 0
    pending = b""
    try:
        while deadline is None or time.monotonic() < deadline:
            if f is None:
                try:
                    f = open(log_file, "rb")  # noqa: SIM115 - kept across yields, closed below
                except FileNotFoundError:
                    at_start = False
                    time.sleep(poll)
                    continue
                inode = os.fstat(f.fileno()).st_ino
                if at_start:
                    f.seek(0, os.SEEK_END)
                at_start = False
            chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", errors="replace")
                continue
            try:
                rotated = os.stat(log_file).st_ino != inode
            except FileNotFoundError:
                rotated = True
            if rotated:
                f.close()
                f = None
                pending = b""
                continue
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()
