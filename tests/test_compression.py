"""Codec choice and decoding of compressed history (sync/compression.py)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from sync import compression
from sync.compression import GZIP, ZSTD, decode_file, encode_file
from sync.errors import IntegrityError

TEXT = b"".join(b"def f%d(x):\n    return x * %d  # a line of code\n" % (i, i) for i in range(800))


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("report.docx", b""),
        ("photo.JPG", b""),
        ("clip.mp4", b""),
        ("notes.txt", b"PK\x03\x04"),  # a zip whatever its name
        ("notes.txt", b"\x89PNG\r\n\x1a\n"),
        ("notes.txt", b"\x00\x00\x00\x18ftypmp42"),
        ("notes.txt", b"%PDF-1.7\n"),
        ("notes.txt", b"\x28\xb5\x2f\xfd"),
    ],
)
def test_compressed_formats_are_never_tried(tmp_path: Path, name: str, head: bytes) -> None:
    # The rest is text that would shrink a lot: None means it was skipped.
    assert encode_file(_write(tmp_path, name, head + TEXT), name, tmp_path) is None


def test_under_ten_percent_saved_is_left_raw(tmp_path: Path) -> None:
    random = os.urandom(20_000)
    slight = _write(tmp_path, "a.bin", random + b"\0" * 1_000)  # ~5% could go
    assert encode_file(slight, "a.bin", tmp_path) is None
    enough = _write(tmp_path, "b.bin", random + b"\0" * 4_000)  # ~17%
    encoded = encode_file(enough, "b.bin", tmp_path)
    assert encoded is not None and encoded.size <= 24_000 * 0.9


@pytest.mark.parametrize("encoding", [ZSTD, GZIP])
def test_each_encoding_decodes_to_the_plaintext_and_checks_its_hash(
    tmp_path: Path, encoding: str
) -> None:
    sha = hashlib.sha256(TEXT).hexdigest()
    stored = tmp_path / "stored"
    if encoding == GZIP:
        stored.write_bytes(gzip.compress(TEXT))
    else:
        encoded = encode_file(_write(tmp_path, "t.py", TEXT), "t.py", tmp_path)
        assert encoded is not None and encoded.encoding == ZSTD
        stored = encoded.path
    assert decode_file(stored, tmp_path / "out", encoding, sha) == len(TEXT)
    assert (tmp_path / "out").read_bytes() == TEXT
    with pytest.raises(IntegrityError):
        decode_file(stored, tmp_path / "wrong", encoding, "0" * 64)
    assert not (tmp_path / "wrong").exists()


def test_a_big_content_is_streamed_through_zstd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compression, "IN_MEMORY", 10_000)  # (so the test stays small)
    data = TEXT * 3
    encoded = encode_file(_write(tmp_path, "big.py", data), "big.py", tmp_path)
    assert encoded is not None and encoded.encoding == ZSTD
    decode_file(encoded.path, tmp_path / "out", ZSTD, hashlib.sha256(data).hexdigest())
    assert (tmp_path / "out").read_bytes() == data
