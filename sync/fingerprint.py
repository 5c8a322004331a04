"""Fingerprints that group failures: the same trouble on 1,000 files is one group.

A fingerprint is the error kind, the operation and the message with what varies
from file to file (paths, hex ids, numbers, quoted names) replaced by placeholders.
"""

from __future__ import annotations

import hashlib
import re

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\w.~-]*[/\\])+[\w.~ -]*")
_REPEATED_PATH = re.compile(r"(?:<path>)+")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACES = re.compile(r"\s+")


def normalise(message: str) -> str:
    """``message`` with what varies between occurrences replaced (``<path>``, ``<n>``...)."""
    text = _URL.sub("<url>", message)
    text = _QUOTED.sub("<name>", text)
    text = _UUID.sub("<id>", text)
    text = _REPEATED_PATH.sub("<path>", _PATH.sub("<path>", text))
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()


def fingerprint(kind: str, message: str, operation: str) -> tuple[str, str]:
    """(fingerprint, normalised message) of one failure."""
    norm = normalise(message)
    digest = hashlib.sha256(f"{kind}\0{operation}\0{norm}".encode()).hexdigest()[:16]
    return digest, norm
