"""Downsampled series on every backend, checked against a brute-force computation over the raw points."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from witskit.errors import UsageError
from witskit.storage import Store
from witskit.storage.schema import to_micros
from witskit.storage.series import MAX_CODES, MAX_POINTS, CodeSeries, Series

T = datetime(2026, 3, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def frame_text(t: datetime, values: dict[str, Any]) -> str:
    lines = ["&&", f"0105{t:%y%m%d}", f"0106{t:%H%M%S}"]
    lines += [f"{code}{value}" for code, value in values.items()]
    return "\n".join([*lines, "!!"])


def dataset() -> str:
    """A minute of frames: a spike, null readings, a text item, a code that is null for ten
    seconds and absent otherwise, and two different frames with the same time."""
    texts = []
    for i in range(60):
        values: dict[str, Any] = {
            "0108": f"{1000 + i * 0.5 + (50 if i == 23 else 0):.2f}",
            "0113": -9999 if i % 7 == 3 else f"{10 + i % 5:.1f}",
            "0101": "RIG-A",
        }
        if 30 <= i < 40:
            values["0121"] = -9999
        texts.append(frame_text(T + i * SECOND, values))
    # Same time as the frame at T+10 s, other bytes: stored as a second frame at that time.
    texts.append(frame_text(T + 10 * SECOND, {"0108": "5000.5", "0113": "77.0"}))
    return "\n".join(texts)


@pytest.fixture
async def filled(store: Store, source_name: str, wits_frames: Callable[[str, str | None], list[Any]]) -> str:
    frames = wits_frames(dataset(), source_name)
    assert len(frames) == 61
    await store.write(frames)
    return source_name


async def brute_force(
    store: Store, source: str, code: str, lo: datetime, hi: datetime, width: int
) -> CodeSeries:
    """The buckets computed in Python from every raw point, in the store's own order."""
    lo_us = to_micros(lo)
    buckets: dict[int, dict[str, Any]] = {}
    async for row in store.query(source=source, codes=[code], start=lo, end=hi):
        if isinstance(row.value, str):
            continue
        k = (to_micros(row.time) - lo_us) // width
        b = buckets.setdefault(k, {"nulls": 0, "values": []})
        if row.value is None:
            b["nulls"] += 1
        else:
            b["values"].append(float(row.value))
    out = CodeSeries.empty(code)
    for k in sorted(buckets):
        values, nulls = buckets[k]["values"], buckets[k]["nulls"]
        out.time.append(lo_us + k * width)
        out.count.append(len(values))
        out.nulls.append(nulls)
        out.min.append(min(values) if values else None)
        out.max.append(max(values) if values else None)
        out.avg.append(sum(values) / len(values) if values else None)
        out.first.append(values[0] if values else None)
        out.last.append(values[-1] if values else None)
    return out


def same(got: CodeSeries, want: CodeSeries) -> None:
    assert got.code == want.code
    assert got.time == want.time
    assert got.count == want.count
    assert got.nulls == want.nulls
    assert got.min == want.min
    assert got.max == want.max
    assert got.first == want.first
    assert got.last == want.last
    assert [a is None for a in got.avg] == [a is None for a in want.avg]
    assert [a for a in got.avg if a is not None] == pytest.approx([a for a in want.avg if a is not None])


CASES = {
    # start, end (seconds after T; None: default), points
    "whole-source-defaults": (None, None, 6),
    "ten-second-edges": (0, 60, 6),
    "uneven-width": (0.5, 45, 7),
    "one-bucket": (0, 60, 1),
    "more-buckets-than-points": (0, 60, 600),
    "a-day-either-side": (-86400, 86400, MAX_POINTS),
    "starts-before-the-data": (-7, 33, 4),
    "default-end": (20.25, None, 9),
    "from-1900-to-2100": (-126 * 365 * 86400, 74 * 365 * 86400, 7),
}


@pytest.mark.parametrize(("start", "end", "points"), list(CASES.values()), ids=list(CASES))
async def test_buckets_match_a_brute_force_computation(
    store: Store, filled: str, start: float | None, end: float | None, points: int
) -> None:
    lo = None if start is None else T + start * SECOND
    hi = None if end is None else T + end * SECOND
    got = await store.series(filled, ["0108", "0113", "0121", "0101"], lo, hi, points)
    assert got is not None
    want_lo = lo or T
    want_hi = hi or T + 59 * SECOND + timedelta(microseconds=1)
    assert (got.start, got.end) == (want_lo, want_hi)
    span = to_micros(want_hi) - to_micros(want_lo)
    assert got.width_us == -(-span // points)
    assert got.buckets <= points
    assert got.buckets * got.width_us >= span
    assert list(got.codes) == ["0108", "0113", "0121", "0101"]
    for code, series in got.codes.items():
        same(series, await brute_force(store, filled, code, want_lo, want_hi, got.width_us))
    # The text item has no numeric or null reading: no bucket.
    assert got.codes["0101"] == CodeSeries.empty("0101")


async def test_a_point_on_a_bucket_edge_opens_the_later_bucket(store: Store, filled: str) -> None:
    got = await store.series(filled, "DBTM", T, T + 60 * SECOND, 6)
    assert got is not None
    depth = got.codes["0108"]
    assert got.width_us == 10_000_000
    assert depth.time == [to_micros(T + k * 10 * SECOND) for k in range(6)]
    # [T, T+10 s) holds 0..9; T+10 s belongs to the second bucket, with its twin frame.
    assert depth.count == [10, 11, 10, 10, 10, 10]
    assert depth.first[0] == 1000.0
    assert depth.last[0] == 1004.5
    assert depth.max[1] == 5000.5  # the twin frame at T+10 s
    assert depth.max[2] == pytest.approx(1000 + 23 * 0.5 + 50)  # the spike survives the average
    assert depth.min[2] == 1010.0


async def test_null_readings_are_counted_and_left_out_of_the_values(store: Store, filled: str) -> None:
    got = await store.series(filled, ["0113", "0121"], T, T + 60 * SECOND, 6)
    assert got is not None
    rop = got.codes["0113"]
    assert sum(rop.nulls) == len([i for i in range(60) if i % 7 == 3])
    assert sum(rop.count) + sum(rop.nulls) == 61
    spp = got.codes["0121"]
    # Only null readings, from T+30 s to T+40 s: buckets with a count of 0 and no values.
    assert spp.time == [to_micros(T + 30 * SECOND)]
    assert (spp.count, spp.nulls) == ([0], [10])
    assert (spp.min, spp.max, spp.avg, spp.first, spp.last) == ([None], [None], [None], [None], [None])


async def test_every_code_of_the_source_when_none_is_named(store: Store, filled: str) -> None:
    got = await store.series(filled, None, points=3)
    assert got is not None
    assert set(got.codes) == {"0101", "0105", "0106", "0108", "0113", "0121"}
    assert sum(got.codes["0108"].count) == 61


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T + 100 * SECOND, T + 200 * SECOND),  # after the data
        (T - 200 * SECOND, T - 100 * SECOND),  # before it
        (T + 10.2 * SECOND, T + 10.8 * SECOND),  # between two frames
    ],
    ids=["after", "before", "between-frames"],
)
async def test_an_empty_range_has_no_buckets(
    store: Store, filled: str, start: datetime, end: datetime
) -> None:
    got = await store.series(filled, ["0108", "0113"], start, end, 50)
    width = -(-(to_micros(end) - to_micros(start)) // 50)
    empty = {"0108": CodeSeries.empty("0108"), "0113": CodeSeries.empty("0113")}
    assert got == Series(filled, start, end, width, 50, empty)


async def test_an_unknown_source_is_none(store: Store) -> None:
    assert await store.series("no-such-source", "0108") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": T + SECOND, "end": T}, "end .* must be after start"),
        ({"start": T, "end": T}, "end .* must be after start"),
        ({"points": 0}, "points must be between 1 and 5000"),
        ({"points": MAX_POINTS + 1}, "points must be between 1 and 5000"),
        ({"points": True}, "points must be an integer"),
        ({"codes": ["NOT-A-MNEMONIC"]}, "neither a 4-digit code nor a known mnemonic"),
        ({"codes": [f"{n:04d}" for n in range(MAX_CODES + 1)]}, "at most 100 codes"),
        ({"start": "yesterday"}, "start='yesterday' is not an ISO 8601 time"),
        ({"end": "0001-01-01T00:00:00+05:00"}, "end=.* is outside the years 1 to 9999"),
    ],
)
async def test_bad_arguments_are_the_callers_fault(
    store: Store, filled: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        await store.series(filled, **kwargs)
