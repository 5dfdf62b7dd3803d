"""PostgreSQL: a bounded scan read hour by hour from the blocks returns what the SQL scan returns.

Real PostgreSQL, a throw-away database. A scan with both bounds (at most a week) is read by
``witskit.storage.block_scan``; one without bounds still by the SQL scan over ``points_all``. The
bounded scans are compared, point by point and in order, with the unbounded scan cut in Python:
two sources (a simulator rig, one frame a second holding every code, the hour-by-hour reader's
common case; and hand-written frames with text values, null readings, codes present only some
seconds and several frames at one time), rows not yet compacted next to the blocks, late frames at
the time of a block's point, windows that cut hours, and code subsets.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from test_history_partitions import frames_at
from test_history_summaries import SECOND, T, dataset, frame_text

from witskit.storage import Store
from witskit.storage.schema import to_micros


async def raw(store: Store, *args: Any) -> list[tuple[Any, ...]]:
    scan = await store.scan(*args)
    return [row async for batch in scan for row in batch]


async def test_bounded_scans_equal_the_sql_scan(
    postgres_url: str, wits_frames: Callable[[str, str | None], list[Any]]
) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        # rig-a: hand-written frames, as blocks (one bulk write), then in writes of 100 frames (each
        # hour's first few make and grow blocks, the rest rows), compacted.
        assert await store.write(wits_frames(dataset(0, 7200), "rig-a"))
        frames = wits_frames(dataset(7200, 10800), "rig-a")
        for i in range(0, len(frames), 100):
            await store.write(frames[i : i + 100])
        assert await store.compact(T + timedelta(hours=4)) > 0
        # rig-b: the simulator, one frame a second with every code, as blocks; its last hour in
        # writes of 100 frames (blocks grown to 500 points, then rows beside them).
        sim = frames_at(None, "rig-b", T, 3 * 3600)
        assert await store.write(sim[: 2 * 3600])
        for i in range(2 * 3600, len(sim), 100):
            await store.write(sim[i : i + 100])
        # Late frames: rows in hours already blocks, one at the time of a block's point.
        late = "\n".join(
            [
                frame_text(T + 1000 * SECOND, {"0108": "1.25", "0113": "2.5"}),
                frame_text(T + 5001 * SECOND, {"0108": "-7.75", "0113": -9999, "0101": "LATE"}),
            ]
        )
        assert await store.write(wits_frames(late, "rig-a"))

        everything = await raw(store, None, None, None, None)
        names = {"rig-a": None, "rig-b": None}
        async with store._engine.connect() as conn:
            for name, sid in (await conn.exec_driver_sql("SELECT name, id FROM sources")).all():
                names[name] = sid
        windows = [
            (T, T + timedelta(hours=1)),
            (T + timedelta(minutes=13, seconds=5, microseconds=500), T + timedelta(hours=2, minutes=1)),
            (T + 999 * SECOND, T + 1001 * SECOND),
            (T + timedelta(hours=2, minutes=30), T + timedelta(hours=5)),
            (T - timedelta(days=2), T + timedelta(days=2)),
        ]
        for lo, hi in windows:
            lo_us, hi_us = to_micros(lo), to_micros(hi)
            for source in (None, "rig-a", "rig-b", ["rig-a", "rig-b"]):
                sids = (
                    None
                    if source is None
                    else {names[s] for s in ([source] if isinstance(source, str) else source)}
                )
                for codes in (None, ["0108", "0101", "0113"], ["0121"]):
                    want = [
                        r
                        for r in everything
                        if lo_us <= r[1] < hi_us
                        and (sids is None or r[0] in sids)
                        and (codes is None or r[2] in codes)
                    ]
                    got = await raw(store, source, codes, lo, hi)
                    assert got == want, (lo, hi, source, codes)
        # Small batches split the hours without changing anything.
        scan = await store.scan("rig-b", None, T, T + timedelta(hours=3), 1000)
        batches = [batch async for batch in scan]
        assert max(len(b) for b in batches) == 1000
        assert [r for b in batches for r in b] == [r for r in everything if r[0] == names["rig-b"]]
    finally:
        await store.aclose()


async def archived(tmp_path: Any, wits_frames: Callable[[str, str | None], list[Any]]) -> Any:
    """An archive of two days: a simulator rig (the grid case) and hand-written frames (not)."""
    from witskit.storage.archive import Archive, archive_days

    store = await Store.open(f"sqlite:///{tmp_path / 'hot.db'}", timeout=10)
    try:
        assert await store.write(frames_at(None, "rig-b", T + timedelta(hours=1), 3 * 3600))
        assert await store.write(wits_frames(dataset(0, 7200), "rig-a"))
        archive = Archive(str(tmp_path / "archive"))
        report = await archive_days(store, archive, until=T + timedelta(days=3))
        assert len(report.written) == 3
    finally:
        await store.aclose()
    return archive


async def test_short_archive_windows_equal_the_sorted_read(
    tmp_path: Any, wits_frames: Callable[[str, str | None], list[Any]]
) -> None:
    from witskit.storage.tiers import archive_scan

    archive = await archived(tmp_path, wits_frames)
    ids = {"rig-a": 1, "rig-b": 2}

    async def read(sources: Any, codes: Any, lo: Any, hi: Any) -> list[Any]:
        return [r async for b in archive_scan(archive, ids, sources, codes, lo, hi) for r in b]

    # Longer than the interleaved read's bound: DuckDB sorts; the short windows are cut from it.
    long_lo, long_hi = T - timedelta(hours=1), T + timedelta(days=2)
    windows = [
        (T + timedelta(hours=2), T + timedelta(hours=3)),  # rig-b: the grid case
        (T + timedelta(hours=2, minutes=7, seconds=3), T + timedelta(hours=4, seconds=1)),
        (T + timedelta(hours=1, minutes=30), T + timedelta(hours=2, minutes=30)),  # across midnight
        (T, T + timedelta(hours=1)),  # rig-a: text, nulls, several frames at one time
        (T + 999 * SECOND, T + 1001 * SECOND),
    ]
    for sources in (["rig-a"], ["rig-b"], None):
        for codes in (None, ["0108", "0101"]):
            everything = await read(sources, codes, long_lo, long_hi)
            for lo, hi in windows:
                lo_us, hi_us = to_micros(lo), to_micros(hi)
                want = [r for r in everything if lo_us <= r[1] < hi_us]
                assert await read(sources, codes, lo, hi) == want, (sources, codes, lo, hi)
