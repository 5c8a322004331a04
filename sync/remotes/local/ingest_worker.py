"""The worker's side of :mod:`.ingest_pool` (:func:`serve`): it reads parts of small
files to ingest from its input and writes back what became of each, until its
input closes.

Messages are pickles framed by their length; both ends are HubSync of the same
installation, one the parent of the other (nothing else writes to these pipes).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from typing import IO, Any

from sync.errors import SyncError
from sync.remotes.local.writer import BlobWriter, IngestedFile, ingest_file

Source = tuple[str, str, str]
"""(path, filename, content type) of a file to ingest."""
Outcome = IngestedFile | SyncError

_HEAD = struct.Struct("<Q")


def write_message(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEAD.pack(len(data)) + data)
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


def ingest_part(
    writer: BlobWriter, bucket: str, limit: int, sources: Sequence[Source]
) -> list[Outcome]:
    """Each source ingested, or the SyncError it raised."""
    out: list[Outcome] = []
    for source, filename, _ in sources:
        try:
            out.append(ingest_file(writer, bucket, source, filename, limit))
        except SyncError as exc:
            out.append(exc)
    return out


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    while (request := read_message(requests)) is not None:
        writer, bucket, limit, sources = request
        write_message(answers, ingest_part(writer, bucket, limit, sources))
