"""Where ``witskit import`` stopped in each file, so that an interrupted import resumes.

A file is known by its source name and absolute path. With it the store keeps the file's identity
when it was read (size, modification time, SHA-256 of its first :data:`HEAD_BYTES` bytes) and the
byte offset just after the last frame of the last committed batch. The next import of the same
file seeks there. A file whose head no longer hashes the same, or that is now shorter than that
offset, was replaced: it is imported from the start (frames already stored are skipped by their
key, so nothing is stored twice either way). A file that only grew (a log still being appended)
resumes where the last import stopped.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

__all__ = [
    "HEAD_BYTES",
    "FileIdentity",
    "ImportMark",
    "ends_a_frame",
    "file_identity",
    "file_key",
    "head_sha256",
]

#: Bytes hashed to recognise a file: enough to hold several frames (a WITS frame is ~0.5-2 KB), so
#: two logs of one rig differ in it, and cheap to read on every import (one 64 KiB read).
HEAD_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A file as it is now: absolute path, size, modification time."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ImportMark:
    """How far the import of one file got: after ``frames`` frames, at ``byte_offset`` (``line``)."""

    file_key: str
    source: str
    path: str
    size: int
    mtime_ns: int
    head_len: int
    head_sha256: str
    byte_offset: int
    line: int
    frames: int
    updated_at: datetime | None = None


def file_key(source: str, path: str) -> str:
    """The key of a (source, absolute path) pair: hex SHA-256, short enough for any database key."""
    return hashlib.sha256(f"{source}\0{path}".encode("utf-8", "surrogateescape")).hexdigest()


def file_identity(path: Path) -> FileIdentity:
    """The identity of ``path`` now (it must exist)."""
    st = path.stat()
    return FileIdentity(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def head_sha256(path: Path, length: int) -> str:
    """Hex SHA-256 of the first ``length`` bytes of ``path`` (fewer if the file is shorter)."""
    with path.open("rb") as fh:
        return hashlib.sha256(fh.read(length)).hexdigest()


def ends_a_frame(fh: IO[bytes], offset: int) -> bool:
    """True when ``fh`` still has a frame's ``!!`` just before ``offset`` (line endings aside), as
    when the offset was saved: a file rewritten in the middle under the same head is not resumed
    at an offset that now falls inside a frame."""
    if offset == 0:
        return True
    fh.seek(max(0, offset - 64))
    before = fh.read(offset - max(0, offset - 64))
    return before.rstrip().endswith(b"!!")
