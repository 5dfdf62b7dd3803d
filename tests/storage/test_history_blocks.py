"""PostgreSQL hourly blocks (revision 0009): compaction keeps every value, every guarantee.

Real PostgreSQL, a throw-away database per test. What is checked:

* after compaction a query, a series and ``latest`` return exactly what they returned before, and
  the points are in ``point_blocks``, not in ``points``;
* a replayed frame stores nothing after compaction; a late frame for a compacted hour is stored,
  read with the block's points, and merged into that block by the next compaction;
* writers and compactions running at the same time lose and duplicate nothing;
* a ``points`` leaf emptied by compaction gives its space back (it is truncated).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from test_history_partitions import frames_at
from test_history_summaries import assert_same

from witskit.storage import Store

START = datetime(2026, 5, 4, 22, 30, tzinfo=UTC)


async def everything(store: Store, source: str = "rig") -> list[tuple[Any, ...]]:
    return [(r.time, r.code, r.value, r.frame_key) async for r in store.query(source)]


async def counts(store: Store) -> tuple[int, int]:
    async with store._engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM points"))).scalar_one()
        blocks = (
            await conn.execute(text("SELECT COALESCE(sum(cardinality(times)), 0) FROM point_blocks"))
        ).scalar_one()
    return int(rows), int(blocks)


async def test_compaction_keeps_every_value_and_every_guarantee(postgres_url: str) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        # 3 hours across midnight, one frame a minute, written as rows (10 frames a write: fewer
        # than make new blocks).
        batch = frames_at(None, "rig", START, 3 * 3600)[::60]
        stored = sum([await store.write(batch[i : i + 10]) for i in range(0, len(batch), 10)])
        assert stored > 0
        before = await everything(store)
        series_before = await store.series("rig", ["0108"], START, START + timedelta(hours=3), points=7)
        latest_before = await store.latest("rig")

        assert await store.compact(START + timedelta(hours=4)) == stored
        assert await counts(store) == (0, stored)
        assert await everything(store) == before
        assert (
            await store.series("rig", ["0108"], START, START + timedelta(hours=3), points=7) == series_before
        )
        assert await store.latest("rig") == latest_before
        async with store._engine.connect() as conn:  # the emptied leaves (buckets) were truncated
            size = (
                await conn.execute(
                    text(
                        "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('points_p202605') "
                        "WHERE isleaf"
                    )
                )
            ).scalar_one()
        assert size == 0

        # A replay stores nothing; a late frame for a compacted hour is stored and read at once.
        assert await store.write(batch) == 0
        late = frames_at(None, "rig", START + timedelta(seconds=30), 1)
        added = await store.write(late)
        assert added > 0
        after_late = await everything(store)
        assert sorted(r[:3] for r in after_late) == sorted(
            [r[:3] for r in before] + [(f.timestamp, c, v) for f in late for c, v in f.items()]
        )
        assert await counts(store) == (added, stored)
        # The next compaction merges it into its block, in time order.
        assert await store.compact(START + timedelta(hours=4)) == added
        assert await counts(store) == (0, stored + added)
        assert await everything(store) == after_late
    finally:
        await store.aclose()


async def test_writers_and_compactions_at_once_lose_and_duplicate_nothing(postgres_url: str) -> None:
    stores = [await Store.open(postgres_url, timeout=10) for _ in range(3)]
    try:
        frames = frames_at(None, "rig", START, 1200)
        chunks = [frames[i : i + 50] for i in range(0, len(frames), 50)]

        async def writer(store: Store, part: list[list[Any]]) -> int:
            return sum([await store.write(c) for c in part])

        async def compactor(store: Store) -> int:
            moved = 0
            for _ in range(6):
                moved += await store.compact(START + timedelta(hours=1))
                await asyncio.sleep(0.05)
            return moved

        results = await asyncio.wait_for(
            asyncio.gather(
                writer(stores[0], chunks[0::2]), writer(stores[1], chunks[1::2]), compactor(stores[2])
            ),
            timeout=120,
        )
        written = results[0] + results[1]
        assert written == sum(len(f) for f in frames)
        rows, blocks = await counts(stores[0])
        assert rows + blocks == written
        got = await everything(stores[0])
        assert len(got) == written
        assert len({(r[3], r[1]) for r in got}) == written  # (frame key, code): each point once
    finally:
        for s in stores:
            await s.aclose()


async def test_large_writes_go_straight_to_blocks_and_append_to_them(postgres_url: str) -> None:
    stores = [await Store.open(postgres_url, timeout=10) for _ in range(2)]
    try:
        frames = frames_at(None, "rig", START, 2 * 3600)  # 22:30 to 00:30: three hours, two days
        evens, odds = frames[0::2], frames[1::2]
        # The even seconds first, as blocks; a replay stores nothing.
        stored = await stores[0].write(evens)
        assert await counts(stores[0]) == (0, stored)
        assert await stores[0].write(evens[:600]) == 0
        # Two writers append the odd seconds to the same blocks at once: nothing lost or doubled.
        halves = await asyncio.gather(stores[0].write(odds[0::2]), stores[1].write(odds[1::2]))
        total = stored + sum(halves)
        assert total == sum(len(f) for f in frames)
        assert await counts(stores[0]) == (0, total)
        got = await everything(stores[0])
        want = sorted(((f.timestamp, c, v) for f in frames for c, v in f.items()), key=lambda r: (r[0], r[1]))
        assert sorted((r[:3] for r in got), key=lambda r: (r[0], r[1])) == want
        assert [r[0] for r in got] == sorted(r[0] for r in got)  # read in time order
        series = await stores[0].series("rig", ["0108"], START, START + timedelta(hours=2), points=5)
        # Nothing is left as rows to compact (the blocks the odd seconds made unordered are sorted
        # and summarized); the reads do not change (the means up to rounding).
        assert await stores[0].compact(START + timedelta(hours=4)) == 0
        assert await everything(stores[0]) == got
        after = await stores[0].series("rig", ["0108"], START, START + timedelta(hours=2), points=5)
        assert_same(after, series, "sorted")
        assert (await stores[0].latest("rig"))["0108"][0] == frames[-1].timestamp
    finally:
        for s in stores:
            await s.aclose()


async def blocks_of(store: Store) -> dict[tuple[str, datetime], int]:
    """Points per stored block, by (code, hour)."""
    async with store._engine.connect() as conn:
        rows = await conn.execute(text("SELECT code, hour, cardinality(times) FROM point_blocks"))
        return {(str(r[0]).strip(), r[1]): int(r[2]) for r in rows}


async def test_a_backlogs_bundles_make_blocks_and_grow_them_only_by_a_quarter(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A write of 16 to 255 frames of a source's hour (a fleet backlog's bundle) goes to blocks
    when that hour's stored block holds at most 4 times as many points; fewer frames, or a block
    too large to rewrite for them, make rows, which the next compaction merges."""
    stores = [await Store.open(postgres_url, timeout=10) for _ in range(2)]
    try:
        frames = frames_at(None, "rig", START, 2 * 3600)  # 22:30 to 00:30
        points = [len(f) for f in frames]
        first = await stores[0].write(frames[:40])  # 22:30:00-22:30:39: a new block per code
        assert first == sum(points[:40])
        assert await counts(stores[0]) == (0, first)
        assert set((await blocks_of(stores[0])).values()) == {40}
        # Bundles of 40 and 20 frames are appended (the blocks hold 40, then 80); a replay stores
        # nothing. 16 frames beside 100 go to rows, the blocks untouched.
        grown = first + await stores[0].write(frames[40:80]) + await stores[0].write(frames[80:100])
        assert await counts(stores[0]) == (0, grown)
        assert await stores[0].write(frames[:100]) == 0
        made = await blocks_of(stores[0])
        assert set(made.values()) == {100}
        rows = await stores[0].write(frames[100:116])
        assert await counts(stores[0]) == (rows, grown)
        assert await blocks_of(stores[0]) == made
        # Fewer than 16 frames of an hour: rows. A bundle across 23:00: its 22:xx frames are rows
        # (20, beside blocks of 100), its 23:xx frames (20) new blocks.
        rows += await stores[0].write(frames[1700:1710])
        assert await counts(stores[0]) == (rows, grown)
        across = frames[1780:1820]
        assert await stores[0].write(across) == sum(points[1780:1820])
        assert await counts(stores[0]) == (rows + sum(points[1780:1800]), grown + sum(points[1800:1820]))
        assert {h.hour for _, h in await blocks_of(stores[0])} == {22, 23}
        # Two writers with bundles of one new hour at once (00:00): one makes the blocks, the other
        # appends to them once the first has committed, without redoing its write; nothing lost.
        midnight = frames[5400:5520]
        caplog.set_level(logging.INFO, "witskit.storage")
        both = await asyncio.gather(stores[0].write(midnight[:60]), stores[1].write(midnight[60:]))
        assert sum(both) == sum(points[5400:5520])
        assert "concurrent writer" not in caplog.text
        # A bulk source beside a bundle of another in one write: both make blocks.
        rows, in_blocks = await counts(stores[0])
        bulk, bundle = frames_at(None, "rig2", START, 300), frames_at(None, "rig3", START, 20)
        assert await stores[0].write(bulk + bundle) == sum(len(f) for f in bulk + bundle)
        assert await counts(stores[0]) == (rows, in_blocks + sum(len(f) for f in bulk + bundle))

        stored = frames[:116] + frames[1700:1710] + across + midnight
        want = sorted((f.timestamp, c, v) for f in stored for c, v in f.items())
        got = await everything(stores[0])
        assert sorted(r[:3] for r in got) == want
        assert len({(r[3], r[1]) for r in got}) == len(got)  # each point once
        series = await stores[0].series("rig", ["0108"], START, START + timedelta(hours=2), points=7)
        latest = await stores[0].latest("rig")
        # Compaction merges the rows into the blocks; the reads do not change.
        rows, in_blocks = await counts(stores[0])
        assert await stores[0].compact(START + timedelta(hours=4)) == rows
        assert (await counts(stores[0]))[0] == 0
        assert await everything(stores[0]) == got
        after = await stores[0].series("rig", ["0108"], START, START + timedelta(hours=2), points=7)
        assert_same(after, series, "compacted")  # the means up to rounding: summed in another order
        assert await stores[0].latest("rig") == latest
    finally:
        for s in stores:
            await s.aclose()


async def test_a_point_appended_to_a_block_while_a_compaction_merges_it_is_kept(postgres_url: str) -> None:
    """A compaction merges its rows into a block from the block's latest version (after its row
    lock), not its snapshot's: a writer appending to the block meanwhile (a backlog's bundle) keeps
    its points."""
    import asyncpg  # type: ignore[import-untyped]

    store = await Store.open(postgres_url, timeout=10)
    frames = frames_at(None, "rig", START, 80)
    bundle = await store.write(frames[40:])  # a block per code
    rows = sum([await store.write(frames[i : i + 10]) for i in range(0, 30, 10)])  # rows beside it
    assert await counts(store) == (rows, bundle)
    conn = await asyncpg.connect(postgres_url)
    try:
        async with conn.transaction():  # another writer's append, not committed yet
            await conn.execute(
                "UPDATE point_blocks SET times = times || $1::timestamptz, "
                "frame_keys = frame_keys || 1::int8, "
                "idxs = idxs || 0::int2, nums = nums || 1.5::float8, "
                "texts = CASE WHEN texts IS NOT NULL THEN texts || NULL::text END WHERE code = '0108'",
                START + timedelta(seconds=35),
            )
            compaction = asyncio.create_task(store.compact(START + timedelta(hours=4)))
            await asyncio.sleep(1.0)
            assert not compaction.done()  # waits for the block's row lock
        assert await asyncio.wait_for(compaction, 30) == rows
        assert await counts(store) == (0, rows + bundle + 1)
        assert (await blocks_of(store))["0108", START.replace(minute=0)] == 30 + 40 + 1
    finally:
        await conn.close()
        await store.aclose()


async def test_a_bundle_racing_another_writer_for_a_new_block_appends_to_it(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers with bundles of one rig's new hour (routine in a fleet's catch-up): the second
    waits for the first's block and appends to it, instead of failing on its key and redoing the
    whole write."""
    import asyncpg  # type: ignore[import-untyped]

    caplog.set_level(logging.INFO, "witskit.storage")
    store = await Store.open(postgres_url, timeout=10)
    frames = frames_at(None, "rig", START, 60)
    await store.write(frames[:1])  # the source and the month's partitions
    code = next(iter(frames[20].items()))[0]
    conn = await asyncpg.connect(postgres_url)
    try:
        sid = await conn.fetchval("SELECT id FROM sources WHERE name = 'rig'")
        hour = START.replace(minute=0)
        async with conn.transaction():  # the other writer's new block, not committed yet
            await conn.execute(
                "INSERT INTO point_blocks (source_id, code, hour, times, frame_keys, idxs, nums) "
                "VALUES ($1, $2, $3, ARRAY[$3::timestamptz], '{1}', '{0}', '{1.5}')",
                sid,
                code,
                hour,
            )
            bundle = asyncio.create_task(store.write(frames[20:60]))
            await asyncio.sleep(1.0)
            assert not bundle.done()
        assert await asyncio.wait_for(bundle, 10) == sum(len(f) for f in frames[20:60])
        assert "concurrent writer" not in caplog.text
        assert (await blocks_of(store))[code, hour] == 41
    finally:
        await conn.close()
        await store.aclose()
