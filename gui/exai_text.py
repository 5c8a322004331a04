"""What the EXAI dialog says: failures in words, long answers folded, result files read."""

from __future__ import annotations

from pathlib import Path

from agent.control.client import AgentUnavailable
from agent.control.protocol import ControlError

SHOW_RESULT_BYTES = 2 * 1024 * 1024
"""A longer result file is shown cut short (the file itself is complete)."""
FOLD_CHARS = 1000


def _lead(lead: str, message: str, *said: str) -> str:
    """``lead`` before ``message``, unless the message already says it (``said``): the
    same thing twice in one error reads like a stutter."""
    lowered = message.lower()
    return message if any(s in lowered for s in said) else f"{lead} {message}"


def explain(code: str, message: str) -> str:
    """A failure in words for the user: what happened, the agent's message, what to do."""
    lowered = message.lower()
    if code == "auth" and "needs a JWT" in message:
        return _lead("EXAI wants a JWT.", message, "jwt")
    if code == "auth":
        told = _lead("EXAI refused HubSync's token.", message, "rejected", "refused")
        return f"{told}\nSet the right token in Settings → EXAI."
    if code == "timeout" or "timed out" in lowered or "did not answer within" in lowered:
        return _lead("EXAI took too long.", message, "timed out", "too long", "did not answer")
    if code == "transient":
        told = _lead("EXAI cannot be reached.", message, "cannot reach", "unreachable")
        return f"{told}\nIs the EXAI server running? Its host and port are in Settings → EXAI."
    if code == "agent":
        return "The HubSync agent is not running, so nothing can be sent to EXAI."
    if code == "busy":
        return _lead("The agent is busy.", message, "busy")
    if code in ("permanent", "exai", "error"):
        return _lead("The EXAI tool failed.", message, "failed")
    if code == "cancelled":
        return "Cancelled."
    return message


def failure(exc: AgentUnavailable | ControlError) -> str:
    if isinstance(exc, AgentUnavailable):
        return explain("agent", str(exc))
    return explain(exc.code, exc.message)


def fold(text: str, column: int, width: int = FOLD_CHARS) -> tuple[str, int]:
    """``text`` with a line break wherever a line would pass ``width`` characters (the
    line so far being ``column`` long), and the column where it ends. Qt lays out a
    paragraph as a whole: one long line (a compact JSON answer) would stall the window."""
    out: list[str] = []
    for number, line in enumerate(text.split("\n")):
        if number:
            out.append("\n")
            column = 0
        while column + len(line) > width:
            take = width - column
            out += [line[:take], "\n"]
            line, column = line[take:], 0
        out.append(line)
        column += len(line)
    return "".join(out), column


def read_result(path: Path) -> str:
    with path.open("rb") as fh:
        data = fh.read(SHOW_RESULT_BYTES + 1)
    text = data[:SHOW_RESULT_BYTES].decode("utf-8", "replace")
    if len(data) > SHOW_RESULT_BYTES:
        text += "\n\n… (shortened here; the file holds the whole answer)"
    return text
