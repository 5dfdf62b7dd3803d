"""PostgreSQL: a bulk write's hourly blocks made by the client, as a binary COPY stream.

A write that brings many frames of one source (an import, a replayed spool) stores their points as
``point_blocks`` rows (revision 0009), one per (source, code, UTC hour). The server used to make
them from one staged row per point (``_MOVE_BLOCKS`` in ``_postgres.py``, kept as the reference
that ``tests/storage/test_history_block_copy.py`` compares these blocks with): the client encoded 7
values a point and the server sorted and aggregated them again, one after the other. Here the
client groups the points itself and sends each block as one row of PostgreSQL's binary COPY
format, arrays included:

* a block holds its points in (time, frame key, line index) order, the order of the server's
  aggregates; the common import (one layout, each code once a frame, frames in time order) needs
  no sort at all: every code's block of an hour is a slice of its column, and the hour's times and
  frame keys are encoded once and shared by all its codes;
* an array element is its 4-byte length then its big-endian value; a column of numbers without a
  NULL is packed with one ``struct.pack`` and interleaved with the lengths by strided slice copies,
  so the client does no per-point Python work for it;
* the per-minute summaries (revision 0011) of a block of numbers at distinct times, the import's
  common block, are computed here too, from slices of its columns (C-level ``min``/``max``/``sum``
  per minute): a series over freshly imported history reads 60 summaries an hour instead of every
  point, and no compaction has to rewrite the block to add them. Any other block (a null or a text
  reading, two readings at one time) gets NULL summaries, as the server path leaves them: the next
  compaction computes them (``witskit.storage.blocks.summarize_pending``).

Pure functions: no I/O, nothing PostgreSQL-specific but the format.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any, Final, NamedTuple

from witskit.storage._base import HOUR_US, Pending, layouts
from witskit.storage.blocks import SUMMARY_COLUMNS

__all__ = [
    "BLOCK_COLUMNS",
    "COPY_HEADER",
    "COPY_TRAILER",
    "SUMMARIZED_COLUMNS",
    "Block",
    "encode_blocks",
    "make_blocks",
    "summary_fields",
]

#: The columns a block row is COPYed with (the summaries stay NULL).
BLOCK_COLUMNS: Final = ("source_id", "code", "hour", "times", "frame_keys", "idxs", "nums", "texts")
#: The columns a new block row is COPYed with: its summaries too (revision 0011's, in its order).
SUMMARIZED_COLUMNS: Final = (*BLOCK_COLUMNS, *SUMMARY_COLUMNS)

#: PostgreSQL's binary COPY signature, flags and header extension length.
COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
#: The end of a binary COPY stream: a field count of -1.
COPY_TRAILER: Final = struct.pack(">h", -1)

#: Microseconds from 1970-01-01 (Python's epoch here) to 2000-01-01 (PostgreSQL's).
_PG_EPOCH_US: Final = 946_684_800_000_000

# Element type OIDs: array_recv refuses an array whose element type is not the column's.
_TIMESTAMPTZ: Final = 1184
_INT8: Final = 20
_INT2: Final = 21
_FLOAT8: Final = 701
_TEXT: Final = 25

_NULL_FIELD: Final = struct.pack(">i", -1)
_FIELD_COUNT: Final = struct.pack(">h", len(BLOCK_COLUMNS))
_SUMMARIZED_COUNT: Final = struct.pack(">h", len(SUMMARIZED_COLUMNS))
_NO_SUMMARY: Final = _NULL_FIELD * (len(SUMMARIZED_COLUMNS) - len(BLOCK_COLUMNS))
_MINUTE_US: Final = 60_000_000
_INT4: Final = 23
_INT4_FIELD: Final = struct.Struct(">ii")  # length 4, value
_INT8_FIELD: Final = struct.Struct(">iq")  # length 8, value
_LENGTH: Final = struct.Struct(">i")
_ARRAY_HEADER: Final = struct.Struct(">iiiii")  # ndim, has nulls, element type, size, lower bound
_FLOAT8_ELEMENT: Final = struct.Struct(">id")


class Block(NamedTuple):
    """One (source, code, hour) block: its points in (time, frame key, idx) order, times in µs."""

    code: str
    hour_us: int
    times_us: Sequence[int]
    keys: Sequence[int]
    idxs: Sequence[int]
    values: Sequence[Any]


def make_blocks(frames: Sequence[Pending]) -> list[Block]:
    """The blocks of one source's frames, sorted by (code, hour): the order every writer locks them in.

    Frames with one layout whose codes are all different, in (time, key) order, are sliced by hour
    with no sort; anything else (several layouts, a code twice in a frame, frames out of order) is
    grouped and sorted point by point.
    """
    lays = layouts(frames)
    if len(lays) == 1:
        lay = lays[0]
        order = [(p.time_us, p.key) for p in lay.frames]
        if len(set(lay.codes)) == len(lay.codes) and all(a < b for a, b in pairwise(order)):
            return _sliced(lay.codes, lay.frames, lay.columns)
    return _sorted(frames)


def _sliced(codes: Sequence[str], frames: Sequence[Pending], columns: Sequence[Sequence[Any]]) -> list[Block]:
    times = [p.time_us for p in frames]
    keys = [p.key for p in frames]
    bounds = [0]
    while bounds[-1] < len(times):
        start = times[bounds[-1]]
        bounds.append(bisect_left(times, start - start % HOUR_US + HOUR_US, bounds[-1]))
    out: list[Block] = []
    for idx in sorted(range(len(codes)), key=codes.__getitem__):
        col = columns[idx]
        for a, b in pairwise(bounds):
            hour = times[a] - times[a] % HOUR_US
            # The hour's times and keys are the same list objects for every code: encoded once.
            out.append(
                Block(
                    codes[idx], hour, _Shared(times, a, b), _Shared(keys, a, b), _Repeat(idx, b - a), col[a:b]
                )
            )
    return out


def _sorted(frames: Sequence[Pending]) -> list[Block]:
    points: dict[tuple[str, int], list[tuple[int, int, int, Any]]] = {}
    for p in frames:
        hour = p.time_us - p.time_us % HOUR_US
        for idx, (code, value) in enumerate(zip(p.codes, p.values, strict=True)):
            points.setdefault((code, hour), []).append((p.time_us, p.key, idx, value))
    out: list[Block] = []
    for (code, hour), pts in sorted(points.items(), key=lambda kv: kv[0]):
        pts.sort(key=lambda t: t[:3])
        times, keys, idxs, values = zip(*pts, strict=True)
        out.append(Block(code, hour, times, keys, idxs, values))
    return out


class _Shared(Sequence[int]):
    """``seq[a:b]`` without copying, recognisable as the same slice (to encode it once)."""

    __slots__ = ("a", "b", "seq")

    def __init__(self, seq: list[int], a: int, b: int) -> None:
        self.seq, self.a, self.b = seq, a, b

    def __len__(self) -> int:
        return self.b - self.a

    def __getitem__(self, i: Any) -> Any:
        return self.seq[self.a : self.b][i]

    def __iter__(self) -> Iterator[int]:
        return iter(self.seq[self.a : self.b])

    def tolist(self) -> list[int]:
        """The slice, as a list."""
        return self.seq[self.a : self.b]


class _Repeat(Sequence[int]):
    """``[value] * n``, recognisable as such."""

    __slots__ = ("n", "value")

    def __init__(self, value: int, n: int) -> None:
        self.value, self.n = value, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        return [self.value] * self.n if isinstance(i, slice) else self.value

    def __iter__(self) -> Iterator[int]:
        return iter([self.value] * self.n)


def _fixed(values: Sequence[int] | Sequence[float], code: str, size: int, oid: int) -> bytes:
    """A 1-dimensional array of fixed-size non-NULL elements, binary: header, then (length, value) each.

    The values are packed in one call, then interleaved with the element lengths by ``size``
    strided slice copies (bytearray extended-slice assignment, in C).
    """
    n = len(values)
    packed = struct.pack(f">{n}{code}", *values)
    stride = size + 4
    body = bytearray(stride * n)
    body[3::stride] = bytes((size,)) * n
    for k in range(size):
        body[4 + k :: stride] = packed[k::size]
    return _ARRAY_HEADER.pack(1, 0, oid, n, 1) + body


def _field(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _nums(values: Sequence[Any]) -> tuple[bytes, bytes | None]:
    """The fields of ``nums`` (float8[]) and ``texts`` (text[], or NULL when no value is text)."""
    kinds = set(map(type, values))
    if str not in kinds and type(None) not in kinds:  # the common column: numbers only
        return _field(_fixed(values, "d", 8, _FLOAT8)), None
    null = _NULL_FIELD
    pack = _FLOAT8_ELEMENT.pack
    nums = b"".join(null if v is None or type(v) is str else pack(8, v) for v in values)
    nums_field = _field(_ARRAY_HEADER.pack(1, 1, _FLOAT8, len(values), 1) + nums)
    if str not in kinds:
        return nums_field, None
    parts = []
    for v in values:
        if type(v) is str:
            data = v.replace("\x00", "\ufffd").encode("utf-8")
            parts.append(_LENGTH.pack(len(data)) + data)
        else:
            parts.append(null)
    return nums_field, _field(_ARRAY_HEADER.pack(1, 1, _TEXT, len(values), 1) + b"".join(parts))


def encode_blocks(source_id: int, blocks: Sequence[Block], *, summaries: bool = False) -> Iterator[bytes]:
    """Binary COPY rows (no header or trailer) of ``blocks``, one per block: for :data:`BLOCK_COLUMNS`,
    or with ``summaries`` for :data:`SUMMARIZED_COLUMNS` (NULL where :func:`summary_fields` has none).
    """
    sid = _INT4_FIELD.pack(4, source_id)
    cache: dict[tuple[int, int, int, str], bytes] = {}
    for block in blocks:
        times, keys, idxs = block.times_us, block.keys, block.idxs
        code = block.code.encode("utf-8")
        fields = [
            _SUMMARIZED_COUNT if summaries else _FIELD_COUNT,
            sid,
            _LENGTH.pack(len(code)) + code,
            _INT8_FIELD.pack(8, block.hour_us - _PG_EPOCH_US),
            _shared_field(cache, times, "t"),
            _shared_field(cache, keys, "k"),
            _idxs_field(cache, idxs),
        ]
        nums, texts = _nums(block.values)
        fields.append(nums)
        fields.append(_NULL_FIELD if texts is None else texts)
        if summaries:
            fields.append(summary_fields(block) or _NO_SUMMARY)
        yield b"".join(fields)


def summary_fields(block: Block) -> bytes | None:
    """The 12 summary fields of ``block`` (revision 0011's columns, binary COPY), or None when it is
    not a block of numbers at strictly increasing times (the server summarizes those later).

    What ``witskit.storage.blocks``' SQL computes for such a block: each minute (slot m is minute
    m - 1 of the hour) is one slice of the arrays, starting at ``offs[m]`` (1-based; a 61st slot
    ends the last); its count, no nulls, min, max and sum, its first and last times with their
    values, one value at each. An empty minute has count 0 and NULL elsewhere.
    """
    values = block.values
    kinds = set(map(type, values))
    if not kinds <= {float, int}:
        return None
    times = block.times_us.tolist() if isinstance(block.times_us, _Shared) else list(block.times_us)
    if len(set(times)) != len(times):  # a block is in time order: strictly increasing = distinct
        return None
    n = len(times)
    hour = block.hour_us
    # Only the minutes between the first and last point are looked up: a backlog's bundle of 40
    # points fills one or two of the 60, and every column of the others is NULL.
    first, last = (times[0] - hour) // _MINUTE_US, (times[-1] - hour) // _MINUTE_US
    starts = [0] * (first + 1)
    starts += [bisect_left(times, hour + m * _MINUTE_US) for m in range(first + 1, last + 1)]
    starts += [n] * (60 - last)
    filled: list[int] = []
    lows: list[float] = []
    highs: list[float] = []
    sums: list[float] = []
    t0: list[int] = []
    v0: list[float] = []
    t1: list[int] = []
    v1: list[float] = []
    epoch = _PG_EPOCH_US
    for m in range(first, last + 1):
        a, b = starts[m], starts[m + 1]
        if a == b:
            continue
        filled.append(m)
        part = values[a:b]
        lows.append(min(part))
        highs.append(max(part))
        try:
            sums.append(math.fsum(part))
        except OverflowError:  # finite readings whose sum is not (1e308 twice): no summaries
            return None
        t0.append(times[a] - epoch)
        v0.append(part[0])
        t1.append(times[b - 1] - epoch)
        v1.append(part[-1])
    ones = [1] * len(filled)
    return b"".join(
        (
            _field(_fixed([b - a for a, b in pairwise(starts)], "i", 4, _INT4)),
            _ZERO_COUNTS,
            _sparse(lows, filled, "d", 8, _FLOAT8),
            _sparse(highs, filled, "d", 8, _FLOAT8),
            _sparse(sums, filled, "d", 8, _FLOAT8),
            _sparse(t0, filled, "q", 8, _TIMESTAMPTZ),
            _sparse(ones, filled, "i", 4, _INT4),
            _sparse(v0, filled, "d", 8, _FLOAT8),
            _sparse(t1, filled, "q", 8, _TIMESTAMPTZ),
            _sparse(ones, filled, "i", 4, _INT4),
            _sparse(v1, filled, "d", 8, _FLOAT8),
            _field(_fixed([s + 1 for s in starts], "i", 4, _INT4)),
        )
    )


#: The null counts of a block of numbers: 60 zeros.
_ZERO_COUNTS: Final = _field(_fixed([0] * 60, "i", 4, _INT4))
_ELEMENTS: Final = {code: struct.Struct(f">i{code}") for code in "diq"}


def _sparse(values: Sequence[Any], slots: Sequence[int], code: str, size: int, oid: int) -> bytes:
    """A 60-slot array field with ``values`` at ``slots`` (ascending) and NULL in every other slot."""
    if len(slots) == 60:
        return _field(_fixed(values, code, size, oid))
    pack = _ELEMENTS[code].pack
    null = _NULL_FIELD
    parts = []
    slot = 0
    for at, value in zip(slots, values, strict=True):
        if at > slot:
            parts.append(null * (at - slot))
        parts.append(pack(size, value))
        slot = at + 1
    parts.append(null * (60 - slot))
    return _field(_ARRAY_HEADER.pack(1, 1, oid, 60, 1) + b"".join(parts))


def _shared_field(cache: dict[tuple[int, int, int, str], bytes], values: Sequence[int], kind: str) -> bytes:
    """The times (``kind`` "t") or keys ("k") array field, encoded once per shared slice."""
    if isinstance(values, _Shared):
        tag = (id(values.seq), values.a, values.b, kind)
        hit = cache.get(tag)
        if hit is None:
            hit = cache[tag] = _times_or_keys(values.tolist(), kind)
        return hit
    return _times_or_keys(list(values), kind)


def _times_or_keys(values: list[int], kind: str) -> bytes:
    if kind == "t":
        epoch = _PG_EPOCH_US
        return _field(_fixed([t - epoch for t in values], "q", 8, _TIMESTAMPTZ))
    return _field(_fixed(values, "q", 8, _INT8))


def _idxs_field(cache: dict[tuple[int, int, int, str], bytes], idxs: Sequence[int]) -> bytes:
    if isinstance(idxs, _Repeat):
        tag = (idxs.value, idxs.n, 0, "i")
        hit = cache.get(tag)
        if hit is None:
            hit = cache[tag] = _field(_fixed([idxs.value] * idxs.n, "h", 2, _INT2))
        return hit
    return _field(_fixed(list(idxs), "h", 2, _INT2))
