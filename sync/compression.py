"""How superseded versions are stored compressed: codec choice, encoding, decoding.

A blob is compressed only when that saves at least :data:`MIN_SAVING` of its
size; zstd and gzip are both tried on contents small enough to hold in memory
and gzip is kept where it is clearly smaller (now and then on small texts), bigger contents
are streamed through zstd alone. Formats that are compressed already (archives,
office documents, images, audio/video, PDF) are recognised by extension or by
their first bytes and never tried. Decoding always streams and checks the
SHA-256 of the plaintext: that hash, not the stored bytes', is the blob's key.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from sync.errors import IntegrityError

ZSTD = "zstd"
GZIP = "gzip"
SUFFIX = {ZSTD: ".zst", GZIP: ".gz"}
"""Stored-object suffix of each encoding (the name says how to read it back)."""
MIN_SAVING = 0.10
MIN_SIZE = 256
"""Smaller contents are never worth a second object."""
IN_MEMORY = 8 * 1024 * 1024
"""Contents up to this size are compressed in memory by both codecs."""
ZSTD_LEVEL = 9
"""Measured on the repo's own history (bench/bench_compress.py): 9 saves as much as 12
(64.9% vs 65.3%) for half the CPU."""
GZIP_MARGIN = 0.97
"""gzip is chosen only when it is clearly smaller: zstd decodes faster, and readers that
must look for the compressed object (Supabase) try ``.zst`` first."""
BLOCK = 1024 * 1024

COMPRESSED_EXTENSIONS = frozenset(
    [
        "zip",
        "gz",
        "tgz",
        "bz2",
        "xz",
        "zst",
        "zstd",
        "7z",
        "rar",
        "lz",
        "lz4",
        "lzma",
        "br",
        "cab",
        "jar",
        "war",
        "apk",
        "ipa",
        "whl",
        "egg",
        "docx",
        "xlsx",
        "pptx",
        "odt",
        "ods",
        "odp",
        "epub",
        "xpi",
        "vsix",
        "nupkg",
        "jpg",
        "jpeg",
        "png",
        "gif",
        "webp",
        "heic",
        "heif",
        "avif",
        "jxl",
        "jp2",
        "mp3",
        "mp4",
        "m4a",
        "m4v",
        "aac",
        "ogg",
        "oga",
        "opus",
        "flac",
        "mkv",
        "webm",
        "mov",
        "avi",
        "wmv",
        "wma",
        "3gp",
        "pdf",
        "woff",
        "woff2",
        "dmg",
        "iso",
        "msi",
        "deb",
        "rpm",
    ]
)
_MAGIC = (
    b"PK\x03\x04",  # zip and every zip-based format (docx, xlsx, jar, epub...)
    b"\x1f\x8b",  # gzip
    b"\x28\xb5\x2f\xfd",  # zstd
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"7z\xbc\xaf\x27\x1c",  # 7z
    b"Rar!\x1a\x07",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # jpeg
    b"GIF8",
    b"%PDF-",
    b"OggS",
    b"fLaC",
    b"ID3",  # mp3
    b"wOF2",
    b"wOFF",
)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A compressed copy of one blob, in a file of the caller's."""

    encoding: str
    path: Path
    size: int
    """Bytes stored (the compressed size)."""


def already_compressed(filename: str, head: bytes) -> bool:
    """Whether the content is in a compressed format (by its name or its first bytes)."""
    ext = filename.rpartition(".")[2].lower() if "." in filename else ""
    if ext in COMPRESSED_EXTENSIONS:
        return True
    if head.startswith(_MAGIC):
        return True
    # ISO base media (mp4, mov, heic, avif...): a box size then "ftyp".
    return len(head) >= 12 and head[4:8] == b"ftyp"


def worth_it(raw_size: int, stored_size: int) -> bool:
    return stored_size <= raw_size * (1 - MIN_SAVING)


def encode_file(source: Path, filename: str, dest_dir: Path) -> Encoded | None:
    """The best compressed copy of ``source`` written into ``dest_dir``, or None when
    the content is in a compressed format or compression would save under 10%."""
    size = source.stat().st_size
    if size < MIN_SIZE:
        return None
    with open(source, "rb") as f:
        head = f.read(16)
    if already_compressed(filename, head):
        return None
    if size <= IN_MEMORY:
        data = source.read_bytes()
        encoding, packed = ZSTD, _zstd(data)
        gzipped = _gzip(data)
        if len(gzipped) < len(packed) * GZIP_MARGIN:
            encoding, packed = GZIP, gzipped
        if not worth_it(len(data), len(packed)):
            return None
        path = dest_dir / f"{os.urandom(8).hex()}{SUFFIX[encoding]}"
        path.write_bytes(packed)
        return Encoded(encoding, path, len(packed))
    path = dest_dir / f"{os.urandom(8).hex()}{SUFFIX[ZSTD]}"
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    with open(source, "rb") as fin, open(path, "wb") as fout:
        compressor.copy_stream(fin, fout, size=size)
    stored = path.stat().st_size
    if not worth_it(size, stored):
        path.unlink()
        return None
    return Encoded(ZSTD, path, stored)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def decode_file(source: Path, dest: Path, encoding: str, sha256: str) -> int:
    """Write the plaintext of ``source`` (stored with ``encoding``) to the new file
    ``dest``; returns its size. IntegrityError, ``dest`` removed, when the plaintext
    does not hash to ``sha256`` or the stored bytes are damaged."""
    digest = hashlib.sha256()
    total = 0
    try:
        with open(source, "rb") as fin, open(dest, "xb") as fout:
            for block in _plaintext(fin, encoding):
                digest.update(block)
                fout.write(block)
                total += len(block)
    except (zstandard.ZstdError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
        dest.unlink(missing_ok=True)
        raise IntegrityError(f"a compressed blob in the hub is damaged: {exc}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != sha256:
        dest.unlink(missing_ok=True)
        raise IntegrityError("a compressed blob in the hub does not match its SHA-256")
    return total


def _plaintext(fin: io.BufferedReader, encoding: str) -> Iterator[bytes]:
    """The decoded bytes of ``fin``, a block at a time."""
    if encoding == ZSTD:
        reader: io.BufferedIOBase | zstandard.ZstdDecompressionReader
        reader = zstandard.ZstdDecompressor().stream_reader(fin, read_across_frames=True)
    elif encoding == GZIP:
        reader = gzip.GzipFile(fileobj=fin, mode="rb")
    else:
        raise IntegrityError(f"a blob in the hub has an unknown encoding {encoding!r}")
    with reader:
        while block := reader.read(BLOCK):
            yield block
