"""PostgreSQL time partitions (revisions 0006, 0011): months made on demand, pruned reads, upgrades.

Real PostgreSQL, a throw-away database per test (``postgres_url``). What is checked:

* a write creates the months it needs (level, DEFAULT, hash buckets), the next month ahead for the
  current month, and a month for a back-filled frame years old;
* concurrent writers that need the same new month all succeed and store everything once;
* a query by (source, code, time range) reads only one bucket (or own leaf) of the months in range;
* databases filled at revisions 0004, 0006 and 0011 upgrade without losing or changing a row, and
  the store reads them as before.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text

from witskit.storage import Store
from witskit.storage.partitions import BUCKETS, Month, months_for, next_month
from witskit.storage.schema import frames, points, sources, to_micros


async def leaf_names(store: Store) -> set[str]:
    """Every attached partition of the three tables below the month level."""
    async with store._engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE c.relname ~ '_(s[0-9]+|d|h[0-9]+)$'"
            )
        )
        return {str(r[0]) for r in rows}


def month_names(
    month: tuple[int, int], tables: tuple[str, ...] = ("points", "frames", "point_blocks")
) -> set[str]:
    """The DEFAULT and buckets of a month, in ``tables``."""
    m = Month(month)
    return {m.default(t) for t in tables} | {m.bucket(t, i) for t in tables for i in range(BUCKETS)}


async def source_id(store: Store, name: str) -> int:
    async with store._engine.connect() as conn:
        return int((await conn.execute(select(sources.c.id).where(sources.c.name == name))).scalar_one())


def frames_at(sim_frames: Any, source: str, start: datetime, steps: int = 20, seed: int = 7) -> list[Any]:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(seed, records=(1,), start=start).frames(steps))
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


def test_months_cover_every_month_of_a_span_and_the_next_one_for_this_month() -> None:
    jan = to_micros(datetime(2025, 12, 31, 23, tzinfo=UTC))
    feb = to_micros(datetime(2026, 2, 1, tzinfo=UTC))
    now = datetime(2026, 2, 10, tzinfo=UTC)
    assert months_for([(jan, feb)], now=now) == {
        Month((2025, 12)),
        Month((2026, 1)),
        Month((2026, 2)),
        Month((2026, 3)),  # ahead: February is the current month
    }
    assert next_month((2026, 12)) == (2027, 1)


async def test_writes_create_their_months_ahead_and_on_demand(postgres_url: str, sim_frames: Any) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        assert await store.write(frames_at(sim_frames, "rig", now, 3)) == 90
        this = (now.year, now.month)
        assert month_names(this) | month_names(next_month(this)) <= await leaf_names(store)
        # A late frame from years ago gets its month, and no month is made ahead of it.
        old = datetime(2019, 3, 31, 23, 59, 50, tzinfo=UTC)
        assert await store.write(frames_at(sim_frames, "rig", old, 20)) == 600  # March into April
        names = await leaf_names(store)
        assert month_names((2019, 3)) | month_names((2019, 4)) <= names
        assert not {n for n in names if n.startswith("points_p201905")}
        assert not {n for n in names if "_s" in n}  # no own leaf without an own retention
        # Everything reads back, in time order, across the months.
        rows = [r async for r in store.query("rig", codes=["0108"])]
        assert len(rows) == 23
        assert [r.time for r in rows] == sorted(r.time for r in rows)
    finally:
        await store.aclose()


async def test_a_frame_with_a_wild_clock_creates_its_month_only(postgres_url: str, sim_frames: Any) -> None:
    """One frame dated years back among today's (a corrupt date item, an EDR clock reset) in one
    batch: its month is made, never every month between (each a set of tables, for good; 1970 to
    today would be 2,700 of them, created under the partition lock that every writer waits on)."""
    store = await Store.open(postgres_url, timeout=10)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        old = datetime(2023, 1, 15, tzinfo=UTC)
        batch = frames_at(sim_frames, "rig", now, 2) + frames_at(sim_frames, "rig", old, 1)
        assert await store.write(batch) == 90
        this = (now.year, now.month)
        months = {(old.year, old.month), this, next_month(this)}
        assert await leaf_names(store) == set().union(*(month_names(m) for m in months))
    finally:
        await store.aclose()


async def test_concurrent_writers_create_a_new_leaf_once(postgres_url: str, sim_frames: Any) -> None:
    start = datetime(2024, 6, 30, 23, 59, 55, tzinfo=UTC)
    batches = [frames_at(sim_frames, "rig", start + timedelta(hours=i), 10, seed=i) for i in range(4)]
    batches.append(batches[0])  # and one writer replays another's frames
    stores = [await Store.open(postgres_url, timeout=10) for _ in batches]
    try:
        counts = await asyncio.gather(*(s.write(b) for s, b in zip(stores, batches, strict=True)))
        assert sum(counts) == 4 * 300
        [info] = await stores[0].sources()
        assert (info.frame_count, info.point_count) == (40, 1200)
        assert month_names((2024, 6)) | month_names((2024, 7)) <= await leaf_names(stores[0])
    finally:
        for s in stores:
            await s.aclose()


async def test_a_query_by_source_code_and_time_reads_only_the_leaves_in_range(
    postgres_url: str, sim_frames: Any
) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        for name in ("rig-a", "rig-b"):
            for month in (1, 2, 3):
                await store.write(frames_at(sim_frames, name, datetime(2026, month, 10, tzinfo=UTC), 5))
        sid = await source_id(store, "rig-a")
        # January and February in hourly blocks (revision 0009), March still as rows: both are read.
        assert await store.compact(datetime(2026, 3, 1, tzinfo=UTC)) == 2 * 2 * 5 * 30
        from witskit.storage._base import ScanFilter

        lo, hi = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 20, tzinfo=UTC)
        where = ScanFilter([sid], ["0108"], to_micros(lo), to_micros(hi))
        sql, args = store._backend.scan_sql(where)
        async with store._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            plan = "\n".join(r[0] for r in await raw.driver_connection.fetch(f"EXPLAIN {sql}", *args))
        leaves = set(re.findall(r"\b(?:points|frames|point_blocks)_p\d{6}_(?:s\d+|h\d+)\b", plan))
        # One bucket of February per table: the same one (one hash of the source id).
        [bucket] = {leaf.rsplit("_", 1)[1] for leaf in leaves}
        assert leaves == {f"{t}_p202602_{bucket}" for t in ("points", "frames", "point_blocks")}, plan
        # Receive times: the range's frames read once and joined, never one lookup per point.
        assert "CTE fr" in plan, plan
        assert "SubPlan" not in plan, plan
        rows = [r async for r in store.query("rig-a", codes=["0108"], start=lo, end=hi)]
        assert len(rows) == 5
    finally:
        await store.aclose()


async def _upgrade_to(url: str, target: str, *, down: bool = False) -> None:
    from alembic import command

    from witskit.storage._backends import backend_for
    from witskit.storage._url import parse_url
    from witskit.storage.migrations import alembic_config

    backend = backend_for(parse_url(url))
    engine = backend.create_engine(pool_size=1, timeout=10)

    def run(connection: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, target)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def _fill_as_0004(url: str, batches: dict[str, list[Any]]) -> None:
    """Rows exactly as revision 0004's store wrote them (its tables, one row per frame and point)."""
    from witskit.storage._backends import backend_for
    from witskit.storage._url import parse_url
    from witskit.storage.store import _prepare

    engine = backend_for(parse_url(url)).create_engine(pool_size=1, timeout=10)
    try:
        async with engine.begin() as conn:
            for sid, (name, decoded) in enumerate(batches.items(), start=1):
                pending = _prepare(decoded, "default")[name]
                await conn.execute(
                    insert(sources).values(
                        id=sid,
                        name=name,
                        created_at=datetime.now(UTC),
                        first_time=pending[0].time,
                        last_time=pending[-1].time,
                        frame_count=len(pending),
                        point_count=sum(len(p.codes) for p in pending),
                    )
                )
                await conn.execute(
                    insert(frames),
                    [
                        {
                            "source_id": sid,
                            "frame_key": p.key,
                            "received_at": p.received_at,
                            "frame_time": p.time,
                            "raw": p.raw,
                            "errors": p.errors,
                        }
                        for p in pending
                    ],
                )
                await conn.execute(
                    insert(points),
                    [
                        {
                            "frame_key": p.key,
                            "time": p.time,
                            "value_num": None if isinstance(v, str) else v,
                            "source_id": sid,
                            "idx": idx,
                            "code": code,
                            "value_text": v if isinstance(v, str) else None,
                        }
                        for p in pending
                        for idx, (code, v) in enumerate(zip(p.codes, p.values, strict=True))
                    ],
                )
    finally:
        await engine.dispose()


_POINT_COLUMNS = "frame_key, time, value_num, source_id, idx, code, value_text"


async def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        has_view = await conn.fetchval("SELECT to_regclass('points_all')")
        points_relation = "points_all" if has_view else "points"
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT {cols} FROM {relation} ORDER BY {order}")]
            for table, relation, cols, order in (
                ("sources", "sources", "*", "id"),
                ("frames", "frames", "*", "source_id, frame_key"),
                # From 0009 on, points are rows and hourly blocks: the view shows them as rows.
                ("points", points_relation, _POINT_COLUMNS, "source_id, code, time, frame_key, idx"),
            )
        }
    finally:
        await conn.close()


async def test_a_database_filled_at_0004_upgrades_without_losing_a_row(
    postgres_url: str, sim_frames: Any
) -> None:
    batches = {
        # Two months and a month boundary for one rig, another month for the other.
        "rig-a": frames_at(sim_frames, "rig-a", datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC), 60),
        "rig-b": frames_at(sim_frames, "rig-b", datetime(2025, 11, 5, tzinfo=UTC), 30, seed=3),
    }
    await _upgrade_to(postgres_url, "0004")
    await _fill_as_0004(postgres_url, batches)
    before = await _dump(postgres_url)
    assert len(before["points"]) == 90 * 30
    assert any(r[6] is not None for r in before["points"])  # text values are in the check

    store = await Store.open(postgres_url, timeout=10)  # runs 0005 (alarm events) and 0006 (the partitions)
    try:
        after = await _dump(postgres_url)
        assert after == before
        assert await leaf_names(store) == set().union(
            *(month_names(m) for m in ((2026, 1), (2026, 2), (2025, 11)))
        )
        # The store reads and deduplicates the converted rows as its own.
        assert await store.write(batches["rig-a"]) == 0
        got = [(r.source, r.time, r.code, r.value) async for r in store.query("rig-a")]
        want = sorted(
            ((f.source, f.timestamp, code, v) for f in batches["rig-a"] for code, v in f.items()),
            key=lambda r: r[1],
        )
        assert sorted(got, key=lambda r: (r[1], r[2])) == sorted(want, key=lambda r: (r[1], r[2]))
    finally:
        await store.aclose()
    # And back: the downgrade to 0004 keeps every row too.
    await _upgrade_to(postgres_url, "0004", down=True)
    assert await _dump(postgres_url) == before


async def test_sqlite_keeps_one_table(tmp_path: Any, sim_frames: Any) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}", timeout=10)
    try:
        assert (
            await store.write(frames_at(sim_frames, "rig", datetime(2026, 1, 31, 23, 59, 58, tzinfo=UTC), 4))
            == 120
        )
        async with store._engine.connect() as conn:
            names = {
                str(r[0])
                for r in await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            }
        assert "points" in names
        assert not {n for n in names if n.startswith("points_p")}
    finally:
        await store.aclose()


async def _leaves_as_0006(url: str, months: set[tuple[int, int]], sids: set[int]) -> None:
    """The (month, source) leaves of revision 0006's two tables, as its store made them."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        for month in sorted(months):
            leaf = Month(month)
            bounds = f"FROM ('{leaf.start.isoformat()}') TO ('{leaf.end.isoformat()}')"
            for table in ("points", "frames"):
                await conn.execute(
                    f"CREATE TABLE {leaf.name(table)} PARTITION OF {table} FOR VALUES {bounds} "
                    "PARTITION BY LIST (source_id)"
                )
                for sid in sorted(sids):
                    await conn.execute(
                        f"CREATE TABLE {leaf.own(table, sid)} PARTITION OF "
                        f"{leaf.name(table)} FOR VALUES IN ({sid})"
                    )
    finally:
        await conn.close()


async def test_a_database_filled_at_0006_upgrades_to_hourly_blocks_without_losing_a_row(
    postgres_url: str,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    batches = {
        "rig-a": frames_at(None, "rig-a", datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC), 60),
        # The current hour stays rows: a live writer may still be adding to it.
        "rig-b": frames_at(None, "rig-b", now.replace(minute=0, second=0), 2, seed=3),
    }
    await _upgrade_to(postgres_url, "0006")
    await _leaves_as_0006(postgres_url, {(2026, 1), (2026, 2), (now.year, now.month)}, {1, 2})
    await _fill_as_0004(postgres_url, batches)
    before = await _dump(postgres_url)
    assert len(before["points"]) == 62 * 30

    store = await Store.open(postgres_url, timeout=10)  # 0007-0009
    try:
        assert await _dump(postgres_url) == before
        async with store._engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM points"))).scalar_one()
            blocks = (
                await conn.execute(text("SELECT sum(cardinality(times)) FROM point_blocks"))
            ).scalar_one()
        assert (rows, blocks) == (2 * 30, 60 * 30)
        assert await store.write(batches["rig-a"]) == 0  # still deduplicated by the frames key
    finally:
        await store.aclose()
    await _upgrade_to(postgres_url, "0006", down=True)
    assert await _dump(postgres_url) == before


async def _leaves_as_0011(url: str, months: set[tuple[int, int]], sids: set[int]) -> None:
    """Revisions 0006-0011 layout: a leaf per (month, source) in points, frames and point_blocks."""
    await _leaves_as_0006(url, months, sids)
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        for month in sorted(months):
            leaf = Month(month)
            bounds = f"FROM ('{leaf.start.isoformat()}') TO ('{leaf.end.isoformat()}')"
            await conn.execute(
                f"CREATE TABLE {leaf.name('point_blocks')} PARTITION OF point_blocks FOR VALUES {bounds} "
                "PARTITION BY LIST (source_id)"
            )
            for sid in sorted(sids):
                await conn.execute(
                    f"CREATE TABLE {leaf.own('point_blocks', sid)} PARTITION OF "
                    f"{leaf.name('point_blocks')} FOR VALUES IN ({sid})"
                )
    finally:
        await conn.close()


async def _blocks(url: str) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        return [
            tuple(r) for r in await conn.fetch("SELECT * FROM point_blocks ORDER BY source_id, code, hour")
        ]
    finally:
        await conn.close()


async def test_a_database_filled_at_0011_moves_its_leaves_into_buckets_without_losing_a_row(
    postgres_url: str,
) -> None:
    """Revision 0012: every (month, source) leaf's rows move into its month's hash buckets; the
    history in blocks (January) and in rows (March) alike; and back on the downgrade."""
    import asyncpg

    from witskit.storage.blocks import compact

    months = {(2026, 1), (2026, 2), (2026, 3)}
    batches = {
        f"rig-{i}": frames_at(
            None, f"rig-{i}", datetime(2026, 1 + i % 3, 10 + i, 23, 59, 40, tzinfo=UTC), 30, i
        )
        for i in range(5)
    }
    batches["rig-long"] = frames_at(None, "rig-long", datetime(2026, 1, 31, 23, 59, 50, tzinfo=UTC), 20, 9)
    await _upgrade_to(postgres_url, "0011")
    await _leaves_as_0011(postgres_url, months, set(range(1, 7)))
    await _fill_as_0004(postgres_url, batches)
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        assert await compact(conn, datetime(2026, 2, 1, tzinfo=UTC)) > 0  # January as blocks
    finally:
        await conn.close()
    before, blocks = await _dump(postgres_url), await _blocks(postgres_url)
    assert len(before["points"]) == (5 * 30 + 20) * 30
    assert blocks

    store = await Store.open(postgres_url, timeout=10)  # 0011
    try:
        assert (await _dump(postgres_url), await _blocks(postgres_url)) == (before, blocks)
        names = await leaf_names(store)
        assert names == set().union(*(month_names(m) for m in months))  # no (month, source) leaf left
        for name, batch in batches.items():
            assert await store.write(batch) == 0, name  # still deduplicated by the frames key
        rows = [r async for r in store.query("rig-long", codes=["0108"])]
        assert len(rows) == 20
    finally:
        await store.aclose()
    await _upgrade_to(postgres_url, "0011", down=True)
    assert (await _dump(postgres_url), await _blocks(postgres_url)) == (before, blocks)
