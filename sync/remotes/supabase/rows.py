"""Rows of the hub tables, as HubSync writes and reads them.

Column names follow ``resources/supabase/migrations``. ``file_metadata`` and
``file_operations`` may be the EXAI server's own tables, whose shape varies by
project (:class:`HubSchema`): ``file_id`` is the storage object's id where the
column is a uuid (a foreign key to ``storage.objects``) and the storage key
where it is text. Every other column matches what EXAI's uploader writes
(path = the storage key, bucket_id, filename, file_size, content_type,
sha256_hash, user_id), so files synced by HubSync and files uploaded through
EXAI look the same, and EXAI's dedup copies of HubSync rows are valid rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sync.remotes.base import ManifestEntry, Operation

T = TypeVar("T")

MANIFEST_CONFLICT = "user_id,device_id,root_id,rel_path,version"
DEVICES_CONFLICT = "user_id,device_id"
MANIFEST_COLUMNS = (
    "device_id,root_id,root_path,rel_path,sha256,size,mtime_ns,version,deleted,"
    "storage_key,content_type,recorded_at"
)
_OPERATION_TYPES = {"upload", "download", "process", "delete", "generate"}
_STATUSES = {"pending", "processing", "completed", "failed"}
_OPTIONAL_OPERATION_COLUMNS = (
    "started_at",
    "completed_at",
    "duration_ms",
    "bytes",
    "error_message",
)


@dataclass(frozen=True, slots=True)
class HubSchema:
    """How the project's ``file_metadata`` / ``file_operations`` name a file and
    which optional ``file_operations`` columns exist (the ``hubsync_schema`` view)."""

    metadata_file_id_uuid: bool
    operations_file_id_uuid: bool
    operation_columns: frozenset[str]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> HubSchema:
        columns = row.get("operations_columns") or ()
        return cls(
            metadata_file_id_uuid=row.get("metadata_file_id_type") == "uuid",
            operations_file_id_uuid=row.get("operations_file_id_type") == "uuid",
            operation_columns=frozenset(str(c) for c in columns),
        )

    @property
    def needs_object_ids(self) -> bool:
        return self.metadata_file_id_uuid or self.operations_file_id_uuid


LEGACY_SCHEMA = HubSchema(False, False, frozenset(_OPTIONAL_OPERATION_COLUMNS))
"""The tables of HubSync's first migrations, which had no ``hubsync_schema`` view."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def metadata_row(
    user_id: str,
    bucket: str,
    key: str,
    filename: str,
    size: int,
    content_type: str,
    sha256: str,
) -> dict[str, Any]:
    """The columns of a ``file_metadata`` row that do not depend on the schema
    (``file_id`` is added by :func:`with_file_id`)."""
    return {
        "path": key,
        "bucket_id": bucket,
        "filename": filename,
        "file_size": size,
        "content_type": content_type,
        "sha256_hash": sha256,
        "user_id": user_id,
    }


def manifest_row(user_id: str, entry: ManifestEntry) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "device_id": entry.device,
        "root_id": entry.root_id,
        "root_path": entry.root_path,
        "rel_path": entry.relpath,
        "sha256": entry.sha256,
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "version": entry.version,
        "deleted": entry.deleted,
        "storage_key": entry.key,
        "content_type": entry.content_type,
        "recorded_at": entry.recorded_at or now_iso(),
    }


def manifest_entry(row: dict[str, Any]) -> ManifestEntry:
    return ManifestEntry(
        device=str(row["device_id"]),
        root_id=str(row["root_id"]),
        root_path=str(row.get("root_path") or ""),
        relpath=str(row["rel_path"]),
        sha256=str(row["sha256"]),
        size=int(row.get("size") or 0),
        mtime_ns=int(row.get("mtime_ns") or 0),
        version=int(row["version"]),
        key=str(row.get("storage_key") or ""),
        deleted=bool(row.get("deleted")),
        content_type=str(row.get("content_type") or "application/octet-stream"),
        recorded_at=str(row.get("recorded_at") or ""),
    )


_METADATA_IDS = uuid.UUID("2f1e5a0c-7d4b-5e8a-9c3f-6b0d1e2a3c4d")


def metadata_row_id(user_id: str, bucket: str, key: str) -> str:
    """The primary key HubSync gives its ``file_metadata`` row of one object: the same
    on every device and every retry, so inserting it twice adds nothing (the EXAI
    server's rows get random ids and never collide with it)."""
    return str(uuid.uuid5(_METADATA_IDS, f"{user_id}/{bucket}/{key}"))


def with_file_id(
    row: Mapping[str, Any], schema: HubSchema, object_id: str | None
) -> dict[str, Any]:
    """``row`` with its id and the ``file_id`` the schema wants: the object's id (None
    when the object is unknown, which the nullable foreign key accepts) or the key."""
    file_id = object_id if schema.metadata_file_id_uuid else row["path"]
    row_id = metadata_row_id(row["user_id"], row["bucket_id"], row["path"])
    return {"id": row_id, "file_id": file_id, **row}


def metadata_rows_for(
    user_id: str, bucket: str, entries: Iterable[ManifestEntry]
) -> list[dict[str, Any]]:
    """One file_metadata row per stored object the entries point at (deduplicated by key)."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.deleted or not entry.key:
            continue
        rows[entry.key] = metadata_row(
            user_id, bucket, entry.key, entry.filename, entry.size, entry.content_type, entry.sha256
        )
    return list(rows.values())


def operation_row(
    schema: HubSchema, user_id: str, op: Operation, object_id: str | None = None
) -> dict[str, Any]:
    """A ``file_operations`` row with a fresh id (a retried insert of it adds nothing);
    values whose column the table lacks go into ``metadata``."""
    operation = op.operation if op.operation in _OPERATION_TYPES else "process"
    status = op.status if op.status in _STATUSES else ("failed" if op.error else "completed")
    metadata: dict[str, Any] = dict(op.metadata)
    if op.sha256:
        metadata.setdefault("sha256", op.sha256)
    if operation != op.operation:
        metadata.setdefault("operation", op.operation)
    if op.key and schema.operations_file_id_uuid:
        metadata.setdefault("storage_path", op.key)
    optional: dict[str, Any] = {
        "started_at": op.started_at or None,
        "completed_at": op.finished_at or None,
        "duration_ms": op.duration_ms,
        "bytes": op.bytes,
        "error_message": op.error,
    }
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "user_id": user_id,
        "file_id": object_id if schema.operations_file_id_uuid else op.key,
        "operation_type": operation,
        "status": status,
    }
    for column, value in optional.items():
        if column in schema.operation_columns:
            row[column] = value
        elif value is not None:
            metadata.setdefault(column, value)
    row["metadata"] = metadata
    return row
