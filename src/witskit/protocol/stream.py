"""Decode files and byte streams of any size in constant memory.

These are synchronous generators over the sans-I/O parser: they read fixed-size chunks from a path,
a binary file object or any iterable of byte chunks, and yield frames (or decoded frames) and
:class:`~witskit.errors.FrameError` events in stream order. Memory stays bounded by the chunk size
and the parser's limits, whatever the input size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from witskit.errors import FrameError, UsageError
from witskit.protocol.decoder import DecodedFrame, WITSDecoder
from witskit.protocol.parser import FrameParser, WITSFrame

__all__ = ["DEFAULT_CHUNK_SIZE", "ByteSource", "iter_decode", "iter_frames"]

#: Read size: large enough that per-call overhead vanishes, small enough to keep memory flat.
DEFAULT_CHUNK_SIZE = 1 << 20

#: What the stream helpers accept: a path, a binary file object, bytes, or an iterable of chunks.
ByteSource = str | os.PathLike[str] | BinaryIO | bytes | bytearray | Iterable[bytes]


def _chunks(src: ByteSource, chunk_size: int) -> Iterator[bytes]:
    if isinstance(src, bytes | bytearray):
        view = memoryview(src)
        for i in range(0, len(view), chunk_size):
            yield bytes(view[i : i + chunk_size])
        return
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        if not path.is_file():
            raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
        with path.open("rb") as fh:
            yield from _chunks(fh, chunk_size)
        return
    read = getattr(src, "read", None)
    if read is not None:
        while chunk := read(chunk_size):
            if isinstance(chunk, str):
                raise UsageError("the stream is open in text mode; open it in binary mode ('rb')")
            yield chunk
        return
    for chunk in src:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise UsageError(f"expected chunks of bytes, got {type(chunk).__name__}")
        yield bytes(chunk)


def iter_frames(
    src: ByteSource,
    *,
    source: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    parser: FrameParser | None = None,
) -> Iterator[WITSFrame | FrameError]:
    """Yield every frame and FrameError of a byte source, in order, in constant memory."""
    if parser is None:
        if source is None and isinstance(src, str | os.PathLike):
            source = str(src)
        parser = FrameParser(source=source)
    for chunk in _chunks(src, chunk_size):
        yield from parser.feed(chunk)
    yield from parser.close()


def iter_decode(
    src: ByteSource,
    *,
    decoder: WITSDecoder | None = None,
    source: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    parser: FrameParser | None = None,
) -> Iterator[DecodedFrame | FrameError]:
    """Yield a :class:`DecodedFrame` per frame and the FrameErrors between them, in order."""
    dec = decoder or WITSDecoder()
    decode = dec.decode
    for event in iter_frames(src, source=source, chunk_size=chunk_size, parser=parser):
        yield decode(event) if isinstance(event, WITSFrame) else event
