"""The worker's side of :mod:`sync.workers`: :func:`serve` reads jobs from its
input and writes back each job's answer, until its input closes.

A job is ``(module, function, args)``: the worker imports ``module`` (only
HubSync's own ``sync.`` modules) and answers ``function(*args)``. Messages are
pickles framed by their length; both ends are HubSync of the same installation,
one the parent of the other, and nothing else writes to these pipes.
"""

from __future__ import annotations

import importlib
import pickle
import struct
from collections.abc import Callable
from typing import IO, Any

_HEAD = struct.Struct("<Q")

WORKER_ARG = "--hubsync-worker-process"
"""The bundle's programs serve as a worker when this is their only argument."""


def frame(message: object) -> bytes:
    """``message`` as it goes down a pipe: its pickle, after the pickle's length."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(data)) + data


def write_message(stream: IO[bytes], message: object) -> None:
    stream.write(frame(message))
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next message, or None when the other end closed the pipe."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def resolve(module: str, function: str) -> Callable[..., Any]:
    """The job function ``module.function``; only HubSync's ``sync`` library runs here."""
    if module != "sync" and not module.startswith("sync."):
        raise ValueError(f"not a job of HubSync's sync library: {module}.{function}")
    found = getattr(importlib.import_module(module), function)
    if not callable(found):
        raise ValueError(f"not a function: {module}.{function}")
    return found  # type: ignore[no-any-return]


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    jobs: dict[tuple[str, str], Callable[..., Any]] = {}
    while (request := read_message(requests)) is not None:
        module, function, args = request
        job = jobs.get((module, function))
        if job is None:
            job = jobs[module, function] = resolve(module, function)
        write_message(answers, job(*args))
