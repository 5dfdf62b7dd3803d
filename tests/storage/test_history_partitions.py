"""PostgreSQL time partitions (revision 0006): leaves made on demand, pruned reads, the upgrade.

Real PostgreSQL, a throw-away database per test (``postgres_url``). What is checked:

* a write creates the (month, source) leaves it needs, the next month's ahead for the current
  month, and a leaf for a back-filled frame years old;
* concurrent writers that need the same new leaf all succeed and store everything once;
* a query by (source, code, time range) reads only that source's leaves of those months (EXPLAIN);
* a database filled at revision 0004 upgrades to partitioned tables without losing or changing a
  row, and the store reads it as before.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text

from witskit.storage import Store
from witskit.storage.partitions import Leaf, leaves_for, next_month
from witskit.storage.schema import frames, points, sources, to_micros


async def leaf_names(store: Store) -> set[str]:
    async with store._engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE c.relname ~ '_s[0-9]+$'"
            )
        )
        return {str(r[0]) for r in rows}


async def source_id(store: Store, name: str) -> int:
    async with store._engine.connect() as conn:
        return int((await conn.execute(select(sources.c.id).where(sources.c.name == name))).scalar_one())


def frames_at(sim_frames: Any, source: str, start: datetime, steps: int = 20, seed: int = 7) -> list[Any]:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(seed, records=(1,), start=start).frames(steps))
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


def test_leaves_cover_every_month_of_a_span_and_the_next_one_for_this_month() -> None:
    jan = to_micros(datetime(2025, 12, 31, 23, tzinfo=UTC))
    feb = to_micros(datetime(2026, 2, 1, tzinfo=UTC))
    now = datetime(2026, 2, 10, tzinfo=UTC)
    assert leaves_for([(3, jan, feb)], now=now) == {
        Leaf((2025, 12), 3),
        Leaf((2026, 1), 3),
        Leaf((2026, 2), 3),
        Leaf((2026, 3), 3),  # ahead: February is the current month
    }
    assert next_month((2026, 12)) == (2027, 1)


async def test_writes_create_their_leaves_ahead_and_on_demand(postgres_url: str, sim_frames: Any) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        assert await store.write(frames_at(sim_frames, "rig", now, 3)) == 90
        sid = await source_id(store, "rig")
        this, ahead = Leaf((now.year, now.month), sid), Leaf(next_month((now.year, now.month)), sid)
        names = await leaf_names(store)
        for leaf in (this, ahead):
            assert {leaf.name("points"), leaf.name("frames")} <= names
        # A late frame from years ago gets its own leaf, and no leaf is made ahead of it.
        old = datetime(2019, 3, 31, 23, 59, 50, tzinfo=UTC)
        assert await store.write(frames_at(sim_frames, "rig", old, 20)) == 600  # March into April
        names = await leaf_names(store)
        assert {f"points_p201903_s{sid}", f"points_p201904_s{sid}", f"frames_p201904_s{sid}"} <= names
        assert f"points_p201905_s{sid}" not in names
        # Everything reads back, in time order, across the leaves.
        rows = [r async for r in store.query("rig", codes=["0108"])]
        assert len(rows) == 23
        assert [r.time for r in rows] == sorted(r.time for r in rows)
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
        sid = await source_id(stores[0], "rig")
        assert {f"points_p202406_s{sid}", f"points_p202407_s{sid}"} <= await leaf_names(stores[0])
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
        from witskit.storage._base import ScanFilter

        lo, hi = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 20, tzinfo=UTC)
        where = ScanFilter([sid], ["0108"], to_micros(lo), to_micros(hi))
        sql, args = store._backend.scan_sql(where)
        async with store._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            plan = "\n".join(r[0] for r in await raw.driver_connection.fetch(f"EXPLAIN {sql}", *args))
        leaves = set(re.findall(r"\b(?:points|frames)_p\d{6}_s\d+\b", plan))
        assert leaves == {f"points_p202602_s{sid}", f"frames_p202602_s{sid}"}, plan
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


async def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")]
            for table, order in (
                ("sources", "id"),
                ("frames", "source_id, frame_key"),
                ("points", "source_id, code, time, frame_key, idx"),
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
        assert await leaf_names(store) == {
            f"{t}_p{m}_s{s}"
            for t in ("points", "frames")
            for m, s in (("202601", 1), ("202602", 1), ("202511", 2))
        }
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
