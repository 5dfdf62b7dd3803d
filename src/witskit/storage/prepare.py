"""Frames made ready for a write, in any process: the frame key, UTC times in microseconds.

The frame key makes every write idempotent (see :func:`frame_key`). Nothing here needs SQLAlchemy
or a driver: ``witskit import`` decodes a file and computes its frames' keys in a separate process
(:mod:`witskit.storage.file_import`), which sends them to the writing process as
:data:`PreparedFrame` tuples, plain values that ``marshal`` carries cheaply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from witskit.errors import UsageError
from witskit.protocol.decoder import DecodedFrame, Value

__all__ = ["DEFAULT_SOURCE", "PreparedFrame", "frame_key", "from_micros", "prepare_rows", "to_micros"]

#: The source name of frames whose ``source`` is None (a file decoded without a name, a test).
DEFAULT_SOURCE: Final = "default"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)


def to_micros(ts: datetime) -> int:
    """Microseconds since 1970-01-01 UTC (a naive datetime is taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _ONE_US


def from_micros(us: int) -> datetime:
    """The timezone-aware UTC datetime of a microsecond count since 1970-01-01 UTC."""
    return _EPOCH + timedelta(microseconds=us)


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is UTC:
        return ts
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _key_material(source: str, time: datetime, raw: bytes) -> bytes:
    """What the frame key hashes: source, canonical UTC ISO time and raw bytes."""
    return _material(source.encode("utf-8"), _utc(time), raw)


def _material(source: bytes, utc_time: datetime, raw: bytes) -> bytes:
    # The unit separator cannot occur in the ISO time, so the three parts cannot run together.
    return b"%s\x1f%s\x1f%s" % (source, utc_time.isoformat().encode("ascii"), raw)


def _key(material: bytes, probe: int = 0) -> int:
    """blake2b-64 of the key material, as a signed 64-bit integer (fits BIGINT everywhere).

    ``probe`` > 0 only when a different frame of the same source already holds the key (a 64-bit
    hash collision): the frame then takes the next probe's key, deterministically, so a replay of
    it finds the same slot again and nothing is lost (see :meth:`Store.write`).
    """
    if probe:
        material += b"\x1fprobe%d" % probe
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big", signed=True)


def frame_key(frame: DecodedFrame, *, default_source: str = DEFAULT_SOURCE) -> int:
    """The idempotency key of a frame: a signed 64-bit blake2b hash.

    It covers the source name (``default_source`` when the frame has none), the frame time in
    canonical ISO form (UTC, ``2026-01-01T06:00:00+00:00``) and the raw bytes as received. Any
    replay of the same frame (spool replay, a second import of the same file) gets the same key,
    so the store skips it. Two frames that differ only in receive time are the same frame when they
    carry the same DATE/TIME; a frame without DATE/TIME is timed by its receive time, so re-reading
    such a file gives new keys.
    """
    source = frame.source if frame.source is not None else default_source
    return _key(_key_material(source, frame.timestamp, frame.frame.raw))


#: One frame ready for a write: (frame key, frame time in µs, receive time in µs, raw bytes,
#: errors joined by newlines or None, codes, values). Plain values only, so ``marshal`` can carry it.
PreparedFrame = tuple[int, int, int, bytes, str | None, tuple[str, ...], list[Value]]


def prepare_rows(frames: Sequence[DecodedFrame], default_source: str) -> dict[str, list[PreparedFrame]]:
    """Frames grouped by source name (in order), each with its key and times in microseconds.

    Raises :class:`~witskit.errors.UsageError` for an object that is not a decoded frame or a source
    name holding a NUL character (no database can store it).
    """
    groups: dict[str, list[PreparedFrame]] = {}
    encoded: dict[str, bytes] = {}
    for f in frames:
        if not isinstance(f, DecodedFrame):
            raise UsageError(f"write() takes DecodedFrame objects, got {type(f).__name__}")
        source = f.source if f.source is not None else default_source
        ts = _utc(f.timestamp)
        raw = f.frame.raw
        name = encoded.get(source)
        if name is None:
            if "\x00" in source:
                raise UsageError(f"source name {source!r} contains a NUL character")
            name = encoded[source] = source.encode("utf-8")
        codes = f.codes
        row = (
            _key(_material(name, ts, raw)),
            to_micros(ts),
            to_micros(f.received_at),
            raw,
            "\n".join(f.errors) if f.errors else None,
            codes if isinstance(codes, tuple) else tuple(codes),
            f.values,
        )
        group = groups.get(source)
        if group is None:
            groups[source] = [row]
        else:
            group.append(row)
    return groups
