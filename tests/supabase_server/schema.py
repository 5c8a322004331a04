"""HubSync's tables as resources/supabase/migrations defines them.

Kept by hand in step with the SQL: column types, defaults, NOT NULL, CHECK
constraints, primary and unique keys. ``user_id`` drives row level security.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    """text | uuid | bigint | integer | boolean | timestamptz | jsonb | text[]"""
    nullable: bool = True
    default: str | None = None
    """``gen_random_uuid`` | ``now`` | ``auth.uid`` | ``identity`` or a JSON literal."""
    check: Callable[[Any], bool] | None = None


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """constraint name -> columns, besides the primary key"""
    touch_updated_at: bool = False

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def constraints(self) -> dict[str, tuple[str, ...]]:
        return {f"{self.name}_pkey": self.primary_key, **self.unique}


def _one_of(*values: str) -> Callable[[Any], bool]:
    return lambda v: v is None or v in values


TABLES: tuple[Table, ...] = (
    Table(
        "file_metadata",
        (
            Column("id", "uuid", False, "gen_random_uuid"),
            Column("file_id", "text", False),
            Column("user_id", "uuid", False, "auth.uid"),
            Column("filename", "text"),
            Column("file_size", "bigint"),
            Column("content_type", "text"),
            Column("bucket_id", "text", default='"user-files"'),
            Column("path", "text"),
            Column("sha256_hash", "text"),
            Column("tags", "text[]", default="[]"),
            Column("access_count", "integer", default="0"),
            Column("last_accessed", "timestamptz"),
            Column("created_at", "timestamptz", default="now"),
            Column("updated_at", "timestamptz", default="now"),
        ),
        ("id",),
        touch_updated_at=True,
    ),
    Table(
        "file_operations",
        (
            Column("id", "uuid", False, "gen_random_uuid"),
            Column("user_id", "uuid", False, "auth.uid"),
            Column("file_id", "text"),
            Column(
                "operation_type",
                "text",
                False,
                check=_one_of("upload", "download", "process", "delete", "generate"),
            ),
            Column(
                "status",
                "text",
                False,
                '"pending"',
                check=_one_of("pending", "processing", "completed", "failed"),
            ),
            Column("started_at", "timestamptz"),
            Column("completed_at", "timestamptz"),
            Column("duration_ms", "integer"),
            Column("bytes", "bigint"),
            Column("error_message", "text"),
            Column("metadata", "jsonb", False, "{}"),
            Column("created_at", "timestamptz", False, "now"),
        ),
        ("id",),
    ),
    Table(
        "hubsync_devices",
        (
            Column("user_id", "uuid", False, "auth.uid"),
            Column("device_id", "text", False),
            Column("name", "text"),
            Column("last_seen", "timestamptz", default="now"),
        ),
        ("user_id", "device_id"),
    ),
    Table(
        "hubsync_manifest",
        (
            Column("id", "bigint", False, "identity"),
            Column("user_id", "uuid", False, "auth.uid"),
            Column("device_id", "text", False),
            Column("root_id", "text", False),
            Column("root_path", "text", False, '""'),
            Column("rel_path", "text", False),
            Column("sha256", "text", False),
            Column("size", "bigint", False, "0"),
            Column("mtime_ns", "bigint", False, "0"),
            Column("version", "integer", False, "1"),
            Column("deleted", "boolean", False, "false"),
            Column("storage_key", "text"),
            Column("content_type", "text"),
            Column("recorded_at", "timestamptz", False, "now"),
        ),
        ("id",),
        {
            "hubsync_manifest_entry_version_key": (
                "user_id",
                "device_id",
                "root_id",
                "rel_path",
                "version",
            )
        },
    ),
)
