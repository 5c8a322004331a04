"""``storage.objects`` rows for the test Storage's in-memory objects.

The real Storage server keeps one ``storage.objects`` row per object in the
project's database, and EXAI's ``file_metadata.file_id`` references its id.
:class:`ObjectsMirror` gives the test server the same: every object stored,
moved or removed in :class:`~.storage.StorageService` is written to (or deleted
from) ``storage.objects`` of the database behind /rest/v1, with the same id.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from .storage import StoredObject

ObjectKey = tuple[str, str]


class ObjectsMirror:
    """Writes ``storage.objects`` rows as the superuser (Storage's own role bypasses RLS)."""

    def __init__(self, conninfo: str) -> None:
        self._conn = psycopg.connect(conninfo, autocommit=True)
        self._lock = threading.Lock()

    def stored(self, obj: StoredObject) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO storage.buckets (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [obj.bucket_id, obj.bucket_id],
            )
            self._conn.execute(
                "INSERT INTO storage.objects (id, bucket_id, name, owner, owner_id, metadata,"
                " user_metadata, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (bucket_id, name) DO UPDATE SET metadata = EXCLUDED.metadata,"
                " user_metadata = EXCLUDED.user_metadata, version = EXCLUDED.version,"
                " updated_at = now()",
                [
                    obj.id,
                    obj.bucket_id,
                    obj.name,
                    _uuid_or_none(obj.owner),
                    obj.owner,
                    json.dumps(obj.metadata()),
                    json.dumps(obj.user_metadata) if obj.user_metadata is not None else None,
                    obj.version,
                ],
            )

    def removed(self, bucket_id: str, name: str) -> None:
        with self._lock:
            self._conn.execute(
                "DELETE FROM storage.objects WHERE bucket_id = %s AND name = %s", [bucket_id, name]
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _uuid_or_none(value: str | None) -> str | None:
    """``storage.objects.owner`` is a uuid (``owner_id`` holds any ``sub`` as text)."""
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


class MirroredObjects(MutableMapping[ObjectKey, "StoredObject"]):
    """The Storage service's object map; each change also reaches the mirror, if any."""

    def __init__(self) -> None:
        self._items: dict[ObjectKey, StoredObject] = {}
        self.mirror: ObjectsMirror | None = None

    def __getitem__(self, key: ObjectKey) -> StoredObject:
        return self._items[key]

    def __setitem__(self, key: ObjectKey, obj: StoredObject) -> None:
        self._items[key] = obj
        if self.mirror is not None:
            self.mirror.stored(obj)

    def __delitem__(self, key: ObjectKey) -> None:
        del self._items[key]
        if self.mirror is not None:
            self.mirror.removed(*key)

    def __iter__(self) -> Iterator[ObjectKey]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
