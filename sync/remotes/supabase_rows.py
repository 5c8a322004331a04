"""Rows of the hub tables, as HubSync writes and reads them.

Column names follow ``resources/supabase/migrations``. ``file_metadata`` rows
match what the EXAI server's own uploader writes (file_id = path = the storage
key, bucket_id, filename, file_size, content_type, sha256_hash, user_id), so
files synced by HubSync and files uploaded through EXAI look the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sync.remotes.base import ManifestEntry, Operation

T = TypeVar("T")

MANIFEST_CONFLICT = "user_id,device_id,root_id,rel_path,version"
METADATA_CONFLICT = "file_id"
DEVICES_CONFLICT = "user_id,device_id"
MANIFEST_COLUMNS = (
    "device_id,root_id,root_path,rel_path,sha256,size,mtime_ns,version,deleted,"
    "storage_key,content_type,recorded_at"
)
_OPERATION_TYPES = {"upload", "download", "process", "delete", "generate"}
_STATUSES = {"pending", "processing", "completed", "failed"}


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
    return {
        "file_id": key,
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


def operation_row(user_id: str, op: Operation) -> dict[str, Any]:
    operation = op.operation if op.operation in _OPERATION_TYPES else "process"
    status = op.status if op.status in _STATUSES else ("failed" if op.error else "completed")
    metadata: dict[str, Any] = dict(op.metadata)
    if op.sha256:
        metadata.setdefault("sha256", op.sha256)
    if operation != op.operation:
        metadata.setdefault("operation", op.operation)
    return {
        "user_id": user_id,
        "file_id": op.key,
        "operation_type": operation,
        "status": status,
        "started_at": op.started_at or None,
        "completed_at": op.finished_at or None,
        "duration_ms": op.duration_ms,
        "bytes": op.bytes,
        "error_message": op.error,
        "metadata": metadata,
    }
