"""What may be uploaded: the bucket's own limits and the user's allow/deny lists.

Checked before any byte is sent; a file that fails is *skipped* with a reason
(``too_large`` or ``type_not_allowed``), listed by ``hubsync issues``, and looked
at again when it changes.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sync.remotes.base import guess_content_type

SNIFF_BYTES = 512

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", "application/x-mach-binary"),
    (b"#!", "text/x-script"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
)


def sniff(head: bytes, name: str) -> str:
    """The content type of a file from its first bytes; its name decides when the bytes
    say nothing particular (text, or an unknown binary)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[4:12] in (b"ftypisom", b"ftypmp42") or head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    by_name = guess_content_type(name)
    if by_name != "application/octet-stream":
        return by_name
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def _type_matches(kind: str, patterns: tuple[str, ...]) -> bool:
    kind = kind.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(kind, p.lower()) for p in patterns)


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base.lstrip(".") else ""


@dataclass(frozen=True, slots=True)
class FolderRules:
    """The user's lists for one folder: extensions without dot, content type patterns
    (``image/*``). An allow list, when given, is all that may go; deny wins over allow."""

    allow_extensions: tuple[str, ...] = ()
    deny_extensions: tuple[str, ...] = ()
    allow_types: tuple[str, ...] = ()
    deny_types: tuple[str, ...] = ()

    @property
    def sniffs(self) -> bool:
        return bool(self.allow_types or self.deny_types)


@dataclass(frozen=True, slots=True)
class BucketLimits:
    """The bucket's own ``file_size_limit`` and ``allowed_mime_types`` (None: no limit)."""

    file_size_limit: int | None = None
    allowed_mime_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    bucket: BucketLimits = BucketLimits()
    rules: FolderRules = FolderRules()

    @property
    def needs_head(self) -> bool:
        """Whether :meth:`check` needs the file's first bytes."""
        return self.rules.sniffs or bool(self.bucket.allowed_mime_types)

    def check(self, relpath: str, size: int, head: bytes | None) -> tuple[str, str] | None:
        """(kind, reason) when the file must not be uploaded, else None."""
        limit = self.bucket.file_size_limit
        if limit is not None and size > limit:
            return (
                "too_large",
                f"skipped: {size:,} bytes, larger than the bucket allows ({limit:,} bytes)",
            )
        ext = _extension(relpath)
        rules = self.rules
        if ext in rules.deny_extensions:
            return "type_not_allowed", f"skipped: .{ext} files are denied for this folder"
        if rules.allow_extensions and ext not in rules.allow_extensions:
            shown = f".{ext} files are" if ext else "files without an extension are"
            return "type_not_allowed", f"skipped: {shown} not in this folder's allow list"
        if head is None:
            return None
        kind = sniff(head, relpath)
        if _type_matches(kind, rules.deny_types):
            return "type_not_allowed", f"skipped: content type {kind} is denied for this folder"
        if rules.allow_types and not _type_matches(kind, rules.allow_types):
            return "type_not_allowed", f"skipped: content type {kind} is not in the allow list"
        declared = guess_content_type(relpath.rsplit("/", 1)[-1])
        allowed = self.bucket.allowed_mime_types
        if allowed and not _type_matches(declared, allowed):
            return (
                "type_not_allowed",
                f"skipped: content type {declared} is not allowed by the bucket",
            )
        return None


def read_head(path: str) -> bytes | None:
    """The first bytes of a file, None if it cannot be read (the hash step will say why)."""
    try:
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError:
        return None
