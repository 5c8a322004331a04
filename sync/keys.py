"""Object keys in the hub: ``{user}/{sha[:2]}/{sha}/{ascii_safe_name}``.

Supabase Storage accepts only a small ASCII alphabet in keys (see
shared/reference/supabase.md). The real, unicode path lives in the tables; the
key only has to be valid, stable for a given content hash, and readable where
possible. The local hub uses the very same keys as paths on disk, so the set is
also safe on Windows and macOS file systems (no ``:``, ``*``, ``?``).
"""

from __future__ import annotations

import functools
import re
import unicodedata

MAX_NAME_BYTES = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9 _!.'()&$=@;+,-]")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ALREADY_SAFE = re.compile(r"[A-Za-z0-9_!'()&$=@;+,-][A-Za-z0-9 _!.'()&$=@;+,-]*")
"""Names that :func:`ascii_safe_name` returns as they are (most of them)."""


def ascii_safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Transliterate ``name`` to the key alphabet, keeping its extension readable."""
    if len(name) <= max_bytes and _ALREADY_SAFE.fullmatch(name):
        ext = _extension(name)
        stem = name[: len(name) - len(ext)] if ext else name
        if name[-1] not in " ." and "__" not in name and stem.strip("_ ."):
            return name  # every step of the transliteration would leave it as it is
    return _transliterate(name, max_bytes)


def _transliterate(name: str, max_bytes: int) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    safe = _UNSAFE.sub("_", ascii_only).strip(" .")
    safe = re.sub(r"_{2,}", "_", safe)
    ext = _extension(safe)
    stem = safe[: len(safe) - len(ext)] if ext else safe
    if not stem.strip("_ ."):
        safe = "file" + ext
    if len(safe) > max_bytes:
        ext = _extension(safe)[: max_bytes // 4]
        safe = safe[: max_bytes - len(ext)].rstrip(" .") + ext
    return safe


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or _UNSAFE.search(ext) or len(ext) > 16:
        return ""
    return "." + ext


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


def object_key(user_id: str, sha256: str, filename: str) -> str:
    """The key of one blob; equal content gets one object per user."""
    if not is_sha256(sha256):
        raise ValueError("not a lowercase hex SHA-256")
    if not _key_safe_user(user_id):
        raise ValueError("user id is not key-safe")
    return f"{user_id}/{sha256[:2]}/{sha256}/{ascii_safe_name(filename)}"


@functools.lru_cache(maxsize=64)
def _key_safe_user(user_id: str) -> bool:
    return bool(user_id) and not _UNSAFE.search(user_id) and user_id not in {".", ".."}


def sha_from_key(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) == 4 and is_sha256(parts[2]):
        return parts[2]
    return None
