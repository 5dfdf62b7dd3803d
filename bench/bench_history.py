"""History at scale: where PostgreSQL's bytes per point go, the two tiers' sizes and speeds.

Run:  .venv/bin/python bench/bench_history.py                       (2 rig-days; a few minutes)
      .venv/bin/python bench/bench_history.py --quick               (2.4 rig-hours; seconds)
      .venv/bin/python bench/bench_history.py --days 7              (a rig-week)
      .venv/bin/python bench/bench_history.py --breakdown-only      (about 20 s)

The rig is the simulator's record 1: 30 items at 1 Hz (the issue's rig sends 40). A rig-month (104
million points) takes too long on this machine, so ``--days`` of it are loaded (a fraction) and the
month figures are extrapolated linearly from it; the output says which figures are measured and
which are extrapolated. Measured, in one run, on a scratch PostgreSQL database:

1. PostgreSQL bytes per point (every partition, index and TOAST) after the load;
2. ``Store.write`` in 20,000-frame writes (what ``witskit import`` does, decoding excluded) next to
   the bare baseline: asyncpg COPY of the same point rows into a table with no key and no index;
3. the archive: write rate (points/s) and bytes per point of the Parquet files;
4. ``series`` of one channel over the whole range into 600 buckets, from PostgreSQL and from the
   archive (DuckDB), and a 1-hour raw window of every channel from each tier; and the series over
   a month of each tier, measured on a month made by copying the loaded days: 0108's blocks
   shifted by whole days in PostgreSQL (with ``--days`` of at least 1), a day's file in the archive.

``--breakdown-only`` loads the simulator's record-1 rig (30 items at 1 Hz, ``--frames`` frames) into
a scratch PostgreSQL database twice, in one write and in 1,000-frame writes (the pipeline's size),
and prints the bytes per point of each relation: heap, each index, TOAST (``docs/history.md``).

The scratch databases are named ``witskit_history_<random>`` and dropped afterwards; the server is
``--pg-url`` or ``WITSKIT_TEST_POSTGRES_URL``. Nothing is asserted: the numbers are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SOURCE = "bench-rig"


def sim_frames(frames: int, start: Any = None) -> list[Any]:
    """Decoded record-1 frames of the simulator (30 items at 1 Hz)."""
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    kwargs = {} if start is None else {"start": start}
    data = b"".join(DrillingSimulator(7, records=(1,), **kwargs).frames(frames))
    return [f for f in iter_decode(data, source=SOURCE) if isinstance(f, DecodedFrame)]


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A new ``witskit_history_<random>`` database on the server; dropped on exit."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"witskit_history_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def measure_breakdown(url: str) -> dict[str, int]:
    """Bytes of each relation of ``points``, ``point_blocks`` and ``frames`` (partitions summed)."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetch(
            """
            WITH leaf AS (
              SELECT t.name, c.oid, c.reltoastrelid
              FROM (VALUES ('points'), ('frames'), ('point_blocks')) AS t(name)
              JOIN pg_class c ON c.relkind = 'r' AND (c.oid = t.name::regclass OR c.oid IN (
                SELECT relid FROM pg_partition_tree(t.name::regclass))))
            SELECT name || ' heap' AS part, sum(pg_relation_size(oid)) AS bytes FROM leaf GROUP BY name
            UNION ALL
            SELECT name || ' TOAST', sum(pg_total_relation_size(reltoastrelid)) FROM leaf
              WHERE reltoastrelid <> 0 GROUP BY name
            UNION ALL
            SELECT l.name || ' index (' || (SELECT string_agg(a.attname, ', ' ORDER BY k.n) FROM
                     unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) JOIN pg_attribute a
                     ON a.attrelid = l.oid AND a.attnum = k.attnum) || ')',
                   sum(pg_relation_size(i.indexrelid))
              FROM leaf l JOIN pg_index i ON i.indrelid = l.oid GROUP BY 1
            """
        )
        raw = await conn.fetchval("SELECT COALESCE(sum(length(raw)), 0) FROM frames")
    finally:
        await conn.close()
    out = {str(r["part"]): int(r["bytes"]) for r in rows}
    out["frames raw bytes (inside the frames heap)"] = int(raw)
    return out


async def breakdown(admin_url: str, frames: list[Any]) -> None:
    from datetime import timedelta

    from witskit.storage import Store

    points = sum(len(f) for f in frames)
    print(f"bytes per point in PostgreSQL, {len(frames):,} frames, {points:,} points")
    # Large writes go straight to hourly blocks; 100-frame writes (a live rig's path) stay rows
    # until compaction moves them.
    for batch in (len(frames), 100):
        async with scratch_database(admin_url) as url:
            store = await Store.open(url)
            try:
                for i in range(0, len(frames), batch):
                    await store.write(frames[i : i + batch])
                await store.compact(frames[-1].timestamp + timedelta(hours=2))
            finally:
                await store.aclose()
            parts = await measure_breakdown(url)
        total = sum(v for k, v in parts.items() if "raw bytes" not in k)
        print(f"  written in {batch:,}-frame writes, compacted: {total / points:6.1f} bytes/point")
        for name, size in sorted(parts.items()):
            print(f"    {name:55s} {size / points:6.1f}")


def _best(times: list[float]) -> float:
    return min(times)


async def copy_baseline(admin_url: str, frames: list[Any]) -> float:
    """Seconds for asyncpg to COPY the frames' point rows into a table with no key and no index."""
    import asyncpg

    from witskit.storage.schema import frame_key

    records = []
    for f in frames:
        key = frame_key(f)
        for idx, (code, v) in enumerate(f.items()):
            text = v if type(v) is str else None
            records.append((key, f.timestamp, None if text is not None else v, 1, idx, code, text))
    async with scratch_database(admin_url) as url:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(
                "CREATE TABLE bare (frame_key bigint, time timestamptz, value_num float8, source_id int, "
                "idx smallint, code char(4), value_text text)"
            )
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "bare",
                    records=records,
                    columns=["frame_key", "time", "value_num", "source_id", "idx", "code", "value_text"],
                )
            return time.perf_counter() - t0
        finally:
            await conn.close()


def archive_month(archive: Any, day: Any, source: str) -> float:
    """Best seconds of a 600-bucket series of one channel over 30 archived days.

    The days are one archived day's file copied 30 times with its times shifted by whole days
    (the archive of a rig-month without loading a month into PostgreSQL first).
    """
    import tempfile
    from datetime import date, timedelta

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from witskit.storage.archive import Archive
    from witskit.storage.tiers import archive_series

    table = pq.read_table(f"{archive.root}/{day.path}")
    first = date.fromisoformat(day.date)
    with tempfile.TemporaryDirectory() as tmp:
        month = Archive(tmp)
        for d in range(30):
            shifted = table.set_column(
                0, "time", pc.add(table.column("time"), pa_duration(timedelta(days=d)))
            )
            month.write_day(source, first + timedelta(days=d), shifted, day.frames)
        lo_us = int(datetime_of(first).timestamp() * 1e6)
        hi_us = lo_us + 30 * 86_400 * 1_000_000
        width = -(-(hi_us - lo_us) // 600)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            series = archive_series(month, source, ["0108"], lo_us, hi_us, width, lo_us)
            runs.append(time.perf_counter() - t0)
        assert series["0108"].time, "no bucket from the archived month"
    return _best(runs)


async def postgres_month(store: Any, lo: Any, span_days: float) -> float | None:
    """Best seconds of a 600-bucket series of channel 0108 over 30 days of PostgreSQL blocks.

    The loaded days' blocks of 0108 (with their summaries) are copied with their times shifted by
    whole multiples of the loaded span until 30 days are covered (a month of one channel's blocks
    without loading a month first); the copies are deleted afterwards. None when the loaded span
    is under a day.
    """
    from datetime import timedelta

    from witskit.storage.partitions import ensure_months, months_for
    from witskit.storage.schema import to_micros

    whole = int(span_days)
    if whole < 1:
        return None
    copies = -(-30 // whole) - 1
    hi = lo + timedelta(days=30)
    async with store._engine.connect() as conn:
        raw = await conn.get_raw_connection()
        drv: Any = raw.driver_connection
        sid = await drv.fetchval("SELECT id FROM sources WHERE name = $1", SOURCE)
        async with drv.transaction():
            await ensure_months(drv, months_for([(to_micros(lo), to_micros(hi))], now=lo))
        await drv.execute(
            "INSERT INTO point_blocks SELECT b.source_id, b.code, b.hour + s.d, "
            "(SELECT array_agg(t + s.d ORDER BY i) FROM unnest(b.times) WITH ORDINALITY AS u(t, i)), "
            "b.frame_keys, b.idxs, b.nums, b.texts, b.m_count, b.m_nulls, b.m_min, b.m_max, b.m_sum, "
            "(SELECT array_agg(t + s.d ORDER BY i) FROM unnest(b.m_t0) WITH ORDINALITY AS u(t, i)), "
            "b.m_n0, b.m_v0, "
            "(SELECT array_agg(t + s.d ORDER BY i) FROM unnest(b.m_t1) WITH ORDINALITY AS u(t, i)), "
            "b.m_n1, b.m_v1, b.m_offs "
            "FROM point_blocks b, (SELECT g * $1 * interval '1 day' AS d FROM generate_series(1, $2) AS g) s "
            "WHERE b.code = '0108' AND b.source_id = $3 AND b.hour + s.d < $4 AND b.hour < $5",
            whole,
            copies,
            sid,
            hi,
            lo + timedelta(days=whole),
        )
        # The series reads only between the source's first and last stored time.
        last = await drv.fetchval("SELECT last_time FROM sources WHERE id = $1", sid)
        await drv.execute(
            "UPDATE sources SET last_time = $2 WHERE id = $1", sid, hi - timedelta(microseconds=1)
        )
        await drv.execute("ANALYZE point_blocks")
    try:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            series = await store.series(SOURCE, ["0108"], lo, hi, points=600)
            runs.append(time.perf_counter() - t0)
        assert series is not None, "the source is gone"
        assert len(series.codes["0108"].time) == 600, "no month of buckets"
    finally:
        async with store._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(
                "DELETE FROM point_blocks WHERE code = '0108' AND hour >= $1", lo + timedelta(days=whole)
            )
            await raw.driver_connection.execute("UPDATE sources SET last_time = $2 WHERE id = $1", sid, last)
    return _best(runs)


def pa_duration(delta: Any) -> Any:
    import pyarrow as pa

    return pa.scalar(delta, type=pa.duration("us"))


def datetime_of(day: Any) -> Any:
    from datetime import UTC, datetime

    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def tiers(admin_url: str, frames: list[Any], days: float) -> None:
    import tempfile
    from datetime import timedelta

    from witskit.storage import Store
    from witskit.storage.archive import Archive, archive_days
    from witskit.storage.tiers import archive_scan, archive_series

    points = sum(len(f) for f in frames)
    scale = 30 / days
    print(
        f"\nthe two tiers, {len(frames):,} frames = {points:,} points "
        f"({days:g} rig-days; x{scale:.1f} = a month)"
    )
    base = await copy_baseline(admin_url, frames)
    async with scratch_database(admin_url) as url:
        store = await Store.open(url)
        try:
            t0 = time.perf_counter()
            for i in range(0, len(frames), 20_000):
                await store.write(frames[i : i + 20_000])
            load = time.perf_counter() - t0
            # What autovacuum does within a minute of a load: without statistics a fresh partition
            # gets generic plans (see docs/history.md).
            async with store._engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE points")
                await conn.exec_driver_sql("ANALYZE frames")
            print(f"  Store.write, 20,000-frame writes  {points / load:12,.0f} points/s")
            print(f"  bare COPY baseline (no key/index) {points / base:12,.0f} points/s")
            print(f"  write / baseline                  {base / load:12.0%}")
            size = await store.size_on_disk() or 0
            print(f"  PostgreSQL on disk, as written    {size / points:12.1f} bytes/point (measured)")
            # Closed hours into hourly blocks (revision 0007), as the service's schedule does.
            t0 = time.perf_counter()
            moved = await store.compact(frames[-1].timestamp + timedelta(hours=2))
            took = time.perf_counter() - t0
            async with store._engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE point_blocks")
            size = await store.size_on_disk() or 0
            if moved:
                print(f"  compaction into hourly blocks     {moved / took:12,.0f} points/s (measured)")
            else:  # 20,000-frame writes go straight to blocks
                print("  compaction into hourly blocks     nothing left as rows (written as blocks)")
            print(f"  PostgreSQL on disk, compacted     {size / points:12.1f} bytes/point (measured)")
            first, last = frames[0].timestamp, frames[-1].timestamp
            lo, hi = first, last + timedelta(seconds=1)
            span = (hi - lo).total_seconds() / 86400

            # Best of three runs (the first also pays for imports and cold caches).
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                await store.series(SOURCE, ["0108"], lo, hi, points=600)
                runs.append(time.perf_counter() - t0)
            pg_series = _best(runs)
            pg_month = await postgres_month(store, lo, span)
            window = (lo + timedelta(hours=1), lo + timedelta(hours=2))
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                scan = await store.scan(SOURCE, None, *window)
                pg_rows = sum([len(b) async for b in scan])
                runs.append(time.perf_counter() - t0)
            pg_window = _best(runs)

            with tempfile.TemporaryDirectory() as tmp:
                archive = Archive(tmp)
                t0 = time.perf_counter()
                report = await archive_days(store, archive, until=hi + timedelta(days=1))
                arch = time.perf_counter() - t0
                files = sum(e.bytes for e in report.written)
                print(
                    f"  archive write                     {report.points / arch:12,.0f} points/s (measured)"
                )
                print(
                    f"  archive on disk                   {files / report.points:12.2f} bytes/point "
                    "(measured)"
                )
                lo_us, hi_us = int(lo.timestamp() * 1e6), int(hi.timestamp() * 1e6)
                width = -(-(hi_us - lo_us) // 600)
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    archive_series(archive, SOURCE, ["0108"], lo_us, hi_us, width, lo_us)
                    runs.append(time.perf_counter() - t0)
                ar_series = _best(runs)
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    ar_rows = 0
                    async for b in archive_scan(archive, {SOURCE: 1}, [SOURCE], None, *window):
                        ar_rows += len(b)
                    runs.append(time.perf_counter() - t0)
                ar_window = _best(runs)
                month_series = await asyncio.to_thread(archive_month, archive, report.written[0], SOURCE)
        finally:
            await store.aclose()
    print(f"  series 0108 -> 600 buckets over {span:.2f} days:")
    print(
        f"    PostgreSQL {pg_series * 1000:8.1f} ms measured, "
        f"~{pg_series * 30 / span * 1000:8.0f} ms a month (linear)"
    )
    if pg_month is not None:
        print(
            f"    PostgreSQL, a month: 30 days of 0108's blocks (the loaded days' copied), "
            f"{pg_month * 1000:.1f} ms measured"
        )
    print(
        f"    archive    {ar_series * 1000:8.1f} ms measured, "
        f"~{ar_series * 30 / span * 1000:8.0f} ms a month (linear)"
    )
    print(
        f"    archive, a month: 30 day files (one day's file copied), {month_series * 1000:.1f} ms measured"
    )
    print(f"  1-hour raw window, every channel ({pg_rows:,} and {ar_rows:,} points):")
    print(f"    PostgreSQL {pg_window * 1000:8.1f} ms    archive {ar_window * 1000:8.1f} ms")
    print(
        f"  a rig-month at this rate: load ~{points * scale / (points / load) / 60:.1f} min, "
        f"archive ~{points * scale / (report.points / arch) / 60:.1f} min (extrapolated)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("WITSKIT_TEST_POSTGRES_URL", PG_URL))
    parser.add_argument("--frames", type=int, default=20_000, help="frames of the breakdown (30 points each)")
    parser.add_argument("--days", type=float, default=2.0, help="rig-days loaded for the tier figures")
    parser.add_argument("--quick", action="store_true", help="seconds: 2,000 frames, 0.1 rig-day")
    parser.add_argument("--breakdown-only", action="store_true", help="only the bytes-per-point breakdown")
    args = parser.parse_args()
    t0 = time.perf_counter()
    asyncio.run(breakdown(args.pg_url, sim_frames(2_000 if args.quick else args.frames)))
    if not args.breakdown_only:
        days = 0.1 if args.quick else args.days
        asyncio.run(tiers(args.pg_url, sim_frames(int(days * 86_400)), days))
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
