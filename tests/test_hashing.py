"""Hashing a big file with a read-ahead thread: same digest, same checks."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from sync.errors import FileChangedError, LocalFileError
from sync.hashing import READ_AHEAD_BLOCK, READ_AHEAD_MIN, hash_file


def big_file(path: Path) -> bytes:
    data = os.urandom(READ_AHEAD_MIN + READ_AHEAD_BLOCK // 3)  # ends in a partial block
    path.write_bytes(data)
    return data


def test_a_big_file_read_ahead_hashes_to_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    data = big_file(tmp_path / "big.bin")
    hashed = hash_file(tmp_path / "big.bin")
    assert hashed.sha256 == hashlib.sha256(data).hexdigest() and hashed.size == len(data)
    small = tmp_path / "small.bin"
    small.write_bytes(data[:70_000])
    assert hash_file(small).sha256 == hashlib.sha256(data[:70_000]).hexdigest()


def test_a_big_file_growing_while_read_ahead_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.bin"
    big_file(path)
    real = os.readv
    calls = 0

    def readv_then_append(fd: int, buffers: list[bytearray]) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # a writer appends while the file is being read
            with open(path, "ab") as f:
                f.write(b"more")
        return real(fd, buffers)

    monkeypatch.setattr(os, "readv", readv_then_append)
    with pytest.raises(FileChangedError):
        hash_file(path)


def test_a_read_error_in_the_read_ahead_thread_reaches_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.bin"
    big_file(path)
    real = os.readv
    calls = 0

    def failing_readv(fd: int, buffers: list[bytearray]) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, buffers)

    monkeypatch.setattr(os, "readv", failing_readv)
    threads = threading.active_count()
    with pytest.raises(LocalFileError, match="Input/output error"):
        hash_file(path)
    assert threading.active_count() == threads  # the reader is gone, not left reading
