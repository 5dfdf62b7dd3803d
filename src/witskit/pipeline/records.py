"""How a received frame is written into the spool and read back.

A spool record holds what is needed to decode the frame again exactly as it was first decoded: the
source name, the receive time, and the raw bytes. Decoding is deterministic, so a replay produces
the same points, frame times and storage keys as the first pass (that is what makes replay
idempotent downstream).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from witskit.errors import WitsKitError
from witskit.protocol import FrameParser, WITSFrame

__all__ = ["SpoolRecordError", "pack_frame", "unpack_frame"]

_HEADER = struct.Struct("<BHq")  # version, source length, receive time in microseconds since the epoch
_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SpoolRecordError(WitsKitError):
    """A spool record is not a frame record this version can read.

    ``kind`` says why, in one word a counter can be keyed by: ``truncated`` (shorter than its
    header or its source name), ``version`` (an unknown record version), ``source`` (a source name
    that is not UTF-8) or ``not-a-frame`` (the bytes do not hold exactly one frame).
    """

    def __init__(self, message: str, *, kind: str = "not-a-frame") -> None:
        super().__init__(message)
        self.kind = kind


def pack_frame(frame: WITSFrame) -> bytes:
    """The spool payload of a frame: source, receive time, raw bytes."""
    source = (frame.source or "").encode("utf-8")
    micros = (frame.timestamp - _EPOCH) // _MICROSECOND
    return _HEADER.pack(_VERSION, len(source), micros) + source + frame.raw


_MICROSECOND = datetime.resolution


def unpack_frame(payload: bytes, *, sequence: int = 0) -> WITSFrame:
    """The frame a spool payload holds, re-parsed exactly as it was received."""
    if len(payload) < _HEADER.size:
        raise SpoolRecordError(
            f"spool record {sequence}: {len(payload)} bytes is shorter than its header", kind="truncated"
        )
    version, source_len, micros = _HEADER.unpack_from(payload)
    if version != _VERSION:
        raise SpoolRecordError(f"spool record {sequence}: unknown record version {version}", kind="version")
    start = _HEADER.size
    if len(payload) < start + source_len:
        raise SpoolRecordError(
            f"spool record {sequence}: its source name runs past its end ({len(payload)} bytes)",
            kind="truncated",
        )
    try:
        source = payload[start : start + source_len].decode("utf-8") or None
        received = _EPOCH + micros * _MICROSECOND
    except (UnicodeDecodeError, OverflowError) as exc:
        raise SpoolRecordError(
            f"spool record {sequence}: bad source name or time ({exc})", kind="source"
        ) from None
    raw = payload[start + source_len :]
    parser = FrameParser(source=source, clock=lambda: received)
    events = parser.feed(raw) + parser.close()
    frames = [e for e in events if isinstance(e, WITSFrame)]
    if len(frames) != 1:
        raise SpoolRecordError(f"spool record {sequence}: does not hold exactly one frame")
    return frames[0]
