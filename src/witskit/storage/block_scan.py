"""PostgreSQL: a bounded scan read hour by hour from the blocks' arrays, merged in the client.

Through the view ``points_all`` a 1-hour window of 30 channels was 108,000 rows unnested on the
server, joined to the hour's frames for their receive times, sorted, and decoded row by row by
asyncpg: ~300 ms, most of it the server's per-row work. Time order is the scan's first key, so
the range splits into UTC hours that are read one after the other, each by at most three small
queries:

1. the hour's blocks of the sources and codes asked for, and its rows still in ``points`` (late
   frames, the open hour) gathered into arrays the same way, in one statement (one snapshot: a
   compaction committing meanwhile cannot show a point twice or hide it), every array sent in
   PostgreSQL's binary array format (``array_send``) and unpacked by one :func:`struct.unpack`;
2. whether any two frames of a source share a time in the hour; 3. only then are the frames'
   receive times read (the order among points of one time is the receive order of their frames).

The points are then put in the scan's order (time, source, receive order, frame key, line) by one
sort of integer keys; the blocks are already in time order, so the sort mostly merges runs.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import AsyncGenerator
from itertools import chain, pairwise, repeat
from typing import Any, Final

from witskit.storage._base import HOUR_US, RawPoint, ScanFilter
from witskit.storage.schema import from_micros

__all__ = ["MAX_HOURS", "scan_hours"]

#: The longest range read hour by hour (a week): each hour costs three queries even when empty, so
#: a longer range (an export of everything, a range set far around the data) takes the SQL scan.
MAX_HOURS: Final = 7 * 24

#: µs from 1970-01-01 to PostgreSQL's epoch (2000-01-01), where binary timestamps count from.
_PG_EPOCH_US: Final = 946_684_800_000_000
#: Key packing: a time offset within the hour (< 2**32 µs), a source id (< 2**31) and a line index
#: (a smallint, < 2**15) fit side by side in one Python int.
_SID_BITS: Final = 31
_IDX_BITS: Final = 16

# The hour's blocks and its rows still in ``points`` in one statement (one snapshot: a compaction
# committing in between cannot show a point twice or hide it); the rows come as arrays like a block's.
_POINTS: Final = (
    "SELECT source_id, code, array_send(times), array_send(frame_keys), array_send(idxs), "
    "array_send(nums), texts FROM point_blocks WHERE hour = $1 {cond} "
    "UNION ALL SELECT source_id, code, array_send(array_agg(time {o})), "
    "array_send(array_agg(frame_key {o})), array_send(array_agg(idx {o})), "
    "array_send(array_agg(value_num {o})), "
    "CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text {o}) END "
    "FROM points WHERE time >= $2 AND time < $3 {cond} GROUP BY source_id, code"
).replace("{o}", "ORDER BY time, frame_key, idx")
_TIES: Final = (
    "SELECT EXISTS (SELECT 1 FROM frames WHERE frame_time >= $1 AND frame_time < $2 {cond} "
    "GROUP BY source_id, frame_time HAVING count(*) > 1)"
)
_FRAMES: Final = (
    "SELECT source_id, frame_key FROM frames WHERE frame_time >= $1 AND frame_time < $2 {cond} "
    "ORDER BY source_id, received_at, frame_key"
)


def _elements(data: bytes) -> tuple[int, bool]:
    """Element count and has-nulls flag of a one-dimensional array in binary format."""
    ndim, flags = struct.unpack_from(">ii", data)
    if ndim == 0:
        return 0, False
    if ndim != 1:
        raise ValueError(f"a block array of {ndim} dimensions")
    (n,) = struct.unpack_from(">i", data, 12)
    return n, bool(flags)


def _fixed(data: bytes, fmt: str) -> list[Any]:
    """The elements of a binary array without NULLs, each stored as a length and a ``fmt`` value."""
    n, _ = _elements(data)
    if not n:
        return []
    return list(struct.unpack_from(">" + ("i" + fmt) * n, data, 20)[1::2])


def _floats(data: bytes) -> list[float | None]:
    """A binary float8[] that may hold NULLs (length -1, no data)."""
    n, nulls = _elements(data)
    if not nulls:
        return _fixed(data, "d")
    out: list[float | None] = []
    pos = 20
    unpack = struct.unpack_from
    for _ in range(n):
        (size,) = unpack(">i", data, pos)
        pos += 4
        if size < 0:
            out.append(None)
        else:
            out.append(unpack(">d", data, pos)[0])
            pos += size
    return out


def _conds(where: ScanFilter, first: int, time_col: str | None = None) -> tuple[str, list[Any]]:
    """``AND source_id = ANY(..) AND code = ANY(..)`` as needed, with placeholders from ``$first``."""
    parts: list[str] = []
    args: list[Any] = []
    if where.source_ids is not None:
        args.append(list(where.source_ids))
        parts.append(f"source_id = ANY(${first + len(args) - 1}::int[])")
    if where.codes is not None and time_col != "frame_time":
        # As the column's own type: ``text[]`` would cast the column and lose the points key.
        args.append(list(where.codes))
        parts.append(f"code = ANY(${first + len(args) - 1}::bpchar[])")
    return "".join(f" AND {p}" for p in parts), args


async def _hour(drv: Any, where: ScanFilter, hour: int, lo: int, hi: int) -> list[RawPoint]:
    """The points of ``[lo, hi)`` (inside the UTC hour starting at ``hour``), in the scan's order."""
    lo_t, hi_t = from_micros(lo), from_micros(hi)
    cond, args = _conds(where, 4)
    parts = await drv.fetch(_POINTS.format(cond=cond), from_micros(hour), lo_t, hi_t, *args)
    if not parts:
        return []
    same = _one_frame_grid(parts)
    if same is not None:
        return _interleave(parts, same, lo, hi)
    rows: list[RawPoint] = []
    whole = lo <= hour and hour + HOUR_US <= hi
    for sid, code, times_b, keys_b, idxs_b, nums_b, texts in parts:
        times = [t + _PG_EPOCH_US for t in _fixed(times_b, "q")]
        cols = zip(
            repeat(sid),
            times,
            repeat(code),
            _floats(nums_b),
            repeat(None) if texts is None else texts,
            _fixed(keys_b, "q"),
            _fixed(idxs_b, "h"),
            strict=False,
        )
        if whole:
            rows.extend(cols)
        else:
            rows.extend(r for r in cols if lo <= r[1] < hi)
    if not rows:
        return rows
    cond, args = _conds(where, 3, "frame_time")
    if await drv.fetchval(_TIES.format(cond=cond), lo_t, hi_t, *args):
        # Several frames of a source at one time: their receive order decides (frames not found,
        # which the store never leaves, last, as the SQL scan's NULL receive time sorts).
        rank = {
            (int(r[0]), int(r[1])): i
            for i, r in enumerate(await drv.fetch(_FRAMES.format(cond=cond), lo_t, hi_t, *args))
        }
        last = len(rank)
        rows.sort(key=lambda r: (r[1], r[0], rank.get((r[0], r[5]), last), r[5], r[6]))
        return rows
    # One frame per (source, time): time, source and line decide; packed in one int per point.
    packed = [((r[1] - hour) << _SID_BITS | r[0]) << _IDX_BITS | r[6] for r in rows]
    order = sorted(range(len(rows)), key=packed.__getitem__)
    return [rows[i] for i in order]


def _one_frame_grid(parts: list[Any]) -> list[int] | None:
    """The common case, recognised without a look at each point: one source, each code once, every
    code with the same times and frame keys (each frame holds every code), strictly increasing times
    (one frame a time), and each code always on the same line. Returns the times (µs), else None."""
    first = parts[0]
    sid, times_b, keys_b = first[0], first[2], first[3]
    codes = set()
    for p in parts:
        if p[0] != sid or p[2] != times_b or p[3] != keys_b or p[1] in codes:
            return None
        codes.add(p[1])
        n, _ = _elements(p[4])
        if n and p[4] != p[4][:20] + p[4][20:26] * n:  # the same line index throughout
            return None
    times = [t + _PG_EPOCH_US for t in _fixed(times_b, "q")]
    if any(a >= b for a, b in pairwise(times)):
        return None
    return times


def _first_idx(idxs_b: bytes) -> int:
    """The first element of a binary smallint[] (after the 20-byte header and its 4-byte length)."""
    return int(struct.unpack_from(">h", idxs_b, 24)[0]) if len(idxs_b) > 20 else 0


def _interleave(parts: list[Any], times: list[int], lo: int, hi: int) -> list[RawPoint]:
    """The points of :func:`_one_frame_grid`'s case: frame by frame, each frame's codes by line."""
    i0, i1 = bisect_left(times, lo), bisect_left(times, hi)
    window = times[i0:i1]
    keys = _fixed(parts[0][3], "q")[i0:i1]
    columns = []
    for idx, (sid, code, _, _, _, nums_b, texts) in sorted((_first_idx(p[4]), p) for p in parts):
        texts_w = repeat(None) if texts is None else texts[i0:i1]
        columns.append(
            zip(
                repeat(sid),
                window,
                repeat(code),
                _floats(nums_b)[i0:i1],
                texts_w,
                keys,
                repeat(idx),
                strict=False,
            )
        )
    return list(chain.from_iterable(zip(*columns, strict=False)))


async def scan_hours(
    drv: Any, where: ScanFilter, batch_size: int, lo: int, hi: int
) -> AsyncGenerator[list[RawPoint], None]:
    """The points of ``where`` in ``[lo, hi)`` µs, hour by hour, ``batch_size`` per list."""
    hour = lo - lo % HOUR_US
    while hour < hi:
        rows = await _hour(drv, where, hour, max(lo, hour), min(hi, hour + HOUR_US))
        for i in range(0, len(rows), batch_size):
            yield rows[i : i + batch_size]
        hour += HOUR_US
