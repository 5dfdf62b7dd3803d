"""PostgreSQL block summaries (revision 0011): a series reads them and returns what the points give.

Real PostgreSQL, a throw-away database per test. A series over blocks with per-minute summaries is
compared, bucket by bucket, with the same series after the summaries are removed (every block then
read point by point, as before revision 0011), for ranges and bucket widths that cut minutes and
hours, ranges that start before and end after the data, text values, null readings, several frames
at one time (first and last then come from the receive order), late frames stored as rows in an hour
already compacted, and a block whose arrays are not in time order (no summaries). Revision 0011's
upgrade fills the summaries of blocks already stored, and its downgrade drops them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from test_history_partitions import _upgrade_to

from witskit.storage import Store
from witskit.storage.series import Series

T = datetime(2026, 5, 4, 22, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
CODES = ["0108", "0113", "0121", "0101", "0105"]


def frame_text(t: datetime, values: dict[str, Any]) -> str:
    lines = ["&&", f"0105{t:%y%m%d}", f"0106{t:%H%M%S}"]
    lines += [f"{code}{value}" for code, value in values.items()]
    return "\n".join([*lines, "!!"])


def readings(i: int) -> dict[str, Any]:
    """Second ``i``: a drifting value with spikes, a code null every 7th second, a code that is only
    null for a few minutes (absent otherwise), and a text item."""
    values: dict[str, Any] = {
        "0108": f"{1000 + (i % 997) * 0.37 + (250 if i % 1301 == 0 else 0):.2f}",
        "0113": -9999 if i % 7 == 3 else f"{10 + i % 5:.1f}",
        "0101": "RIG-A",
    }
    if 3000 <= i < 3300:
        values["0121"] = -9999
    return values


def assert_same_blocks(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Blocks equal column by column; their per-minute sums to 1e-12 relative (the client sums a
    minute with ``math.fsum``, the server adds its points in the order of its plan)."""
    assert len(got) == len(want)
    assert got, "no blocks: the test compares nothing"
    for g, w in zip(got, want, strict=True):
        where = (g["code"], g["hour"])
        rest = [{k: v for k, v in b.items() if k != "m_sum"} for b in (g, w)]
        assert rest[0] == rest[1], where
        if "m_sum" not in g:
            continue
        if g["m_sum"] is None or w["m_sum"] is None:
            assert g["m_sum"] == w["m_sum"], where
            continue
        assert [v is None for v in g["m_sum"]] == [v is None for v in w["m_sum"]], where
        for a, b in zip(g["m_sum"], w["m_sum"], strict=True):
            assert a is None or math.isclose(a, b, rel_tol=1e-12), where


def dataset(start: int, stop: int, step: int = 2) -> str:
    texts = [frame_text(T + i * SECOND, readings(i)) for i in range(start, stop, step)]
    # Several frames at one time, at minute edges: first/last ties resolved by the receive order.
    for i in (start + 60 - start % 60, start + 120 - start % 60 - 1):
        if start <= i < stop:
            texts.append(frame_text(T + i * SECOND, {"0108": f"{5000 + i}.5", "0113": "77.0"}))
    return "\n".join(texts)


async def series_both_ways(
    store: Store, source: str, lo: datetime, hi: datetime, points: int, summarized: bool = True
) -> None:
    """The series with summaries equals the series without (every bucket, every code)."""
    with_summaries = await store.series(source, CODES, lo, hi, points=points)
    async with store._engine.begin() as conn:
        saved = (
            await conn.execute(text("SELECT count(*) FROM point_blocks WHERE cardinality(m_offs) = 61"))
        ).scalar()
        await conn.execute(
            text("CREATE TEMP TABLE saved_offs AS SELECT source_id, code, hour, m_offs FROM point_blocks")
        )
        await conn.execute(text("UPDATE point_blocks SET m_offs = NULL"))
    try:
        without = await store.series(source, CODES, lo, hi, points=points)
    finally:
        async with store._engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE point_blocks b SET m_offs = s.m_offs FROM saved_offs s "
                    "WHERE s.source_id = b.source_id AND s.code = b.code AND s.hour = b.hour"
                )
            )
            await conn.execute(text("DROP TABLE saved_offs"))
    assert bool(saved) == summarized, "the test would compare the raw path with itself"
    assert_same(with_summaries, without, (lo, hi, points))


def assert_same(got: Series | None, want: Series | None, case: Any) -> None:
    assert got is not None
    assert want is not None
    assert (got.start, got.end, got.width_us, got.buckets) == (
        want.start,
        want.end,
        want.width_us,
        want.buckets,
    )
    for code, w in want.codes.items():
        g = got.codes[code]
        where = (case, code)
        assert g.time == w.time, where
        assert g.count == w.count, where
        assert g.nulls == w.nulls, where
        assert g.min == w.min, where
        assert g.max == w.max, where
        assert g.first == w.first, where
        assert g.last == w.last, where
        # The mean is a sum over minutes' sums instead of over the points: equal up to rounding.
        for a, b in zip(g.avg, w.avg, strict=True):
            assert (a is None) == (b is None), where
            if a is not None and b is not None:
                assert math.isclose(a, b, rel_tol=1e-12), where


CASES = [
    (T, T + timedelta(hours=4), 600),  # 24 s buckets: every one inside a minute
    (T, T + timedelta(hours=4), 7),  # 34.3-minute buckets: edges cut minutes
    (T, T + timedelta(hours=4), 48),  # 5-minute buckets: whole minutes only
    (T + 37 * SECOND, T + timedelta(hours=3, seconds=11), 11),  # the range cuts minutes and hours
    (T - timedelta(days=1), T + timedelta(days=1), 600),  # far wider than the data
    (T + timedelta(minutes=50), T + timedelta(hours=1, minutes=10), 1),  # one bucket across an hour
    (T + timedelta(minutes=49, seconds=59), T + timedelta(minutes=50, seconds=1), 3),
]


async def test_series_from_summaries_equal_series_from_points(
    postgres_url: str, wits_frames: Callable[[str, str | None], list[Any]]
) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        # Hours 0-1 as one bulk write (written straight as blocks, in time order).
        assert await store.write(wits_frames(dataset(0, 7200), "rig"))
        # Hours 2-3 in writes of 100 frames (each hour's first few make and grow blocks, the rest
        # rows), then compacted into blocks.
        frames = wits_frames(dataset(7200, 14400), "rig")
        for i in range(0, len(frames), 100):
            await store.write(frames[i : i + 100])
        assert await store.compact(T + timedelta(hours=5)) > 0
        # Late frames for compacted hours: rows next to the blocks, one at the time of a block's point.
        late = "\n".join(
            [
                frame_text(T + 1000 * SECOND, {"0108": "1.25", "0113": "2.5"}),
                frame_text(T + 9001 * SECOND, {"0108": "-7.75", "0113": -9999}),
            ]
        )
        assert await store.write(wits_frames(late, "rig")) > 0
        async with store._engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM points"))).scalar()
            summarized = (
                await conn.execute(text("SELECT count(*) FROM point_blocks WHERE cardinality(m_offs) = 61"))
            ).scalar()
        assert rows
        assert summarized == 5 * 4 + 1
        for lo, hi, points in CASES:
            await series_both_ways(store, "rig", lo, hi, points)
        # And with the range defaulted to the stored one.
        assert await store.series("rig", CODES) == await store.series(
            "rig", CODES, T, T + timedelta(seconds=14398, microseconds=1)
        )
    finally:
        await store.aclose()


async def test_a_block_out_of_time_order_reads_the_same_and_is_sorted_by_the_maintenance_pass(
    postgres_url: str, wits_frames: Callable[[str, str | None], list[Any]]
) -> None:
    """A write appending earlier points to a block (an older file imported after a newer one, a
    fleet's bundles committed in the other order) leaves it out of time order: read point by point
    until the maintenance pass sorts and summarizes it, even with no rows in its hour to compact."""
    store = await Store.open(postgres_url, timeout=10)
    try:
        # The odd seconds of an hour, then its even ones appended to the same blocks.
        assert await store.write(wits_frames(dataset(1, 3600), "rig"))
        assert await store.write(wits_frames(dataset(7200, 9000), "rig"))
        assert await store.write(wits_frames(dataset(0, 3600), "rig"))
        query = text("SELECT hour, cardinality(m_offs) = 61 FROM point_blocks WHERE code = '0108' ORDER BY 1")
        async with store._engine.connect() as conn:
            hours = (await conn.execute(query)).all()
        assert [h[1] for h in hours] == [None, None]  # bulk writes leave them to compaction
        for lo, hi, points in CASES:
            await series_both_ways(store, "rig", lo, hi, points, summarized=False)
        assert await store.compact(T + timedelta(hours=5)) == 0  # no rows, but the blocks summarized
        async with store._engine.connect() as conn:
            hours = (await conn.execute(query)).all()
        assert [h[1] for h in hours] == [True, True]
        async with store._engine.connect() as conn:
            for (times,) in (await conn.execute(text("SELECT times FROM point_blocks"))).all():
                assert list(times) == sorted(times)
        for lo, hi, points in CASES:
            await series_both_ways(store, "rig", lo, hi, points)
    finally:
        await store.aclose()


async def test_revision_0011_fills_the_summaries_of_stored_blocks_and_drops_them(
    postgres_url: str, wits_frames: Callable[[str, str | None], list[Any]]
) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        assert await store.write(wits_frames(dataset(0, 7200), "rig"))
        await store.compact(T + timedelta(hours=3))
        async with store._engine.connect() as conn:
            result = await conn.execute(text("SELECT * FROM point_blocks ORDER BY code, hour"))
            summaries = [dict(r) for r in result.mappings()]
        want = await store.series("rig", CODES, T, T + timedelta(hours=2), points=7)
    finally:
        await store.aclose()
    await _upgrade_to(postgres_url, "0010", down=True)
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        columns = {
            r[0]
            for r in await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'point_blocks'::regclass AND attnum > 0"
            )
        }
    finally:
        await conn.close()
    assert "times" in columns
    assert "m_offs" not in columns
    await _upgrade_to(postgres_url, "0011")
    store = await Store.open(postgres_url, timeout=10)
    try:
        async with store._engine.connect() as conn:
            result = await conn.execute(text("SELECT * FROM point_blocks ORDER BY code, hour"))
            again = [dict(r) for r in result.mappings()]
        assert_same_blocks(again, summaries)  # the upgrade computes what a bulk write computes
        assert_same(await store.series("rig", CODES, T, T + timedelta(hours=2), points=7), want, "0011")
    finally:
        await store.aclose()
