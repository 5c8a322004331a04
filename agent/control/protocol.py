"""Wire format of the control API (version 1).

Frames are UTF-8 JSON objects, one per line (``\\n``-terminated), at most
``MAX_FRAME_BYTES`` long. Three shapes exist:

* request  ``{"id": int|str, "method": str, "params": {...}}``
* response ``{"id": ..., "ok": true, "result": ...}`` or
  ``{"id": ..., "ok": false, "error": {"code": str, "message": str}}``
* event    ``{"event": str, "data": ..., "seq": int}``

The server greets every accepted connection with a ``hello`` event carrying
``PROTOCOL_VERSION``; a client refuses a server whose major version differs.
See docs/control-api.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeGuard

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1024 * 1024

# Error codes (the "code" of an error response).
BAD_FRAME = "bad_frame"
FRAME_TOO_LARGE = "frame_too_large"
UNKNOWN_METHOD = "unknown_method"
BAD_PARAMS = "bad_params"
FORBIDDEN = "forbidden"
BUSY = "busy"
INTERNAL = "internal"
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"

# Events the server itself emits (besides those the agent publishes).
HELLO_EVENT = "hello"
LAGGED_EVENT = "lagged"

RequestId = int | str


class ControlError(Exception):
    """An error response: raised by handlers, and by the client when a call fails."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return encode_frame({"id": self.id, "method": self.method, "params": self.params})


@dataclass(frozen=True)
class Response:
    id: RequestId | None
    ok: bool
    result: Any = None
    error: ControlError | None = None

    def encode(self) -> bytes:
        frame: dict[str, Any] = {"id": self.id, "ok": self.ok}
        if self.ok:
            frame["result"] = self.result
        else:
            assert self.error is not None
            frame["error"] = self.error.to_wire()
        return encode_frame(frame)


@dataclass(frozen=True)
class Event:
    event: str
    data: Any
    seq: int

    def encode(self) -> bytes:
        return encode_frame({"event": self.event, "data": self.data, "seq": self.seq})


Frame = Request | Response | Event


def encode_frame(obj: dict[str, Any]) -> bytes:
    """One line of compact JSON; raises ``ValueError`` if it is not serialisable or too large."""
    try:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except TypeError as exc:
        raise ValueError(f"frame is not JSON-serialisable: {exc}") from None
    raw = data.encode("utf-8") + b"\n"
    if len(raw) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(raw)} bytes exceeds {MAX_FRAME_BYTES}")
    return raw


def _is_id(value: object) -> TypeGuard[RequestId]:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def decode_frame(line: bytes) -> Frame:
    """Parse one line into a frame; raises ``ControlError(BAD_FRAME, ...)`` on anything else."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(BAD_FRAME, f"not JSON: {exc.__class__.__name__}") from None
    except RecursionError:
        raise ControlError(BAD_FRAME, "nested too deeply") from None
    except ValueError:  # e.g. an integer past Python's digit limit
        raise ControlError(BAD_FRAME, "a number too large") from None
    if not isinstance(obj, dict):
        raise ControlError(BAD_FRAME, "a frame must be a JSON object")
    if "method" in obj:
        method, params, rid = obj["method"], obj.get("params", {}), obj.get("id")
        if not _is_id(rid):
            raise ControlError(BAD_FRAME, "request id must be an integer or a string")
        if not isinstance(method, str) or not method:
            raise ControlError(BAD_FRAME, "method must be a non-empty string")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ControlError(BAD_FRAME, "params must be an object")
        return Request(rid, method, params)
    if "ok" in obj:
        rid = obj.get("id")
        if rid is not None and not _is_id(rid):
            raise ControlError(BAD_FRAME, "response id must be an integer, a string or null")
        if obj["ok"] is True:
            return Response(rid, True, obj.get("result"))
        err = obj.get("error")
        if obj["ok"] is not False or not isinstance(err, dict):
            raise ControlError(BAD_FRAME, "a failed response needs an error object")
        error = ControlError(str(err.get("code")), str(err.get("message")))
        return Response(rid, False, error=error)
    if "event" in obj:
        name, seq = obj["event"], obj.get("seq")
        if not isinstance(name, str) or not isinstance(seq, int) or isinstance(seq, bool):
            raise ControlError(BAD_FRAME, "an event needs a string name and an integer seq")
        return Event(name, obj.get("data"), seq)
    raise ControlError(BAD_FRAME, "neither a request, a response nor an event")
