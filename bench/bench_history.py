"""History at scale: where PostgreSQL's bytes per point go, the two tiers' sizes and speeds.

Run:  .venv/bin/python bench/bench_history.py                       (2 rig-days; a few minutes)
      .venv/bin/python bench/bench_history.py --quick               (2.4 rig-hours; seconds)
      .venv/bin/python bench/bench_history.py --days 7              (a rig-week)
      .venv/bin/python bench/bench_history.py --breakdown-only      (about 20 s)
      .venv/bin/python bench/bench_history.py --month               (a real rig-month; ~7 min)
      .venv/bin/python bench/bench_history.py --month --items 30    (the simulator's 30 items; ~5 min)
      .venv/bin/python bench/bench_history.py --month --days 1      (the same on one day; ~40 s)

The rig is the simulator's record 1: 30 items at 1 Hz; ``--month`` adds 10 more record-1 items to
each frame by default (``--items 40``, the issue's rig: 103.7 million points a month; ``--items 30``
leaves the simulator's 30, 77.8 million). Without ``--month``,
``--days`` of it are loaded in memory (a fraction) and the month figures are extrapolated linearly,
or measured on a month made by copying the loaded days; the output says which. Measured, in one
run, on a scratch PostgreSQL database:

1. PostgreSQL bytes per point (every partition, index and TOAST) after the load;
2. ``Store.write`` in 20,000-frame writes (what ``witskit import`` does, decoding excluded) next to
   the bare baseline: asyncpg COPY of the same point rows into a table with no key and no index;
3. the archive: write rate (points/s) and bytes per point of the Parquet files;
4. ``series`` of one channel over the whole range into 600 buckets, from PostgreSQL and from the
   archive (DuckDB), and a 1-hour raw window of every channel from each tier; and the series over
   a month of each tier, measured on a month made by copying the loaded days: 0108's blocks
   shifted by whole days in PostgreSQL (with ``--days`` of at least 1), a day's file in the archive.

``--month`` measures all of it on a real month, never held in memory (it prints the peak RSS):

1. the simulator writes ``--days`` (30) consecutive UTC days of one continuous rig (one stateful
   simulator, from 2026-01-01 00:00 UTC, ``--items`` a frame) to a WITS file per day in a
   temporary directory;
2. ``witskit import``'s own code (``witskit.cli._storage._import``, decoding included) loads the
   30 files into an empty scratch database in one call, timed, with a line per day done; the bare
   COPY baseline of day 1's point rows (best of 2) runs in a child process right before and right
   after the import, and the import's points/s is given as a ratio of each (goal >= 60%);
3. a series of 0108 over the month right after the import (before any compaction), then
   ``Store.compact`` (the summaries a bulk write could not make), PostgreSQL bytes per point (every
   partition, index and TOAST; as imported, compacted, and by relation after ``VACUUM``);
4. ``archive_days`` archives the 30 days (points/s, bytes per point of the Parquet files);
5. ``series`` of 0108 over the month into 600 buckets and a 1-hour raw window of every channel
   (day 16, 12:00 UTC), from PostgreSQL and from the archive: first run and best of 3.

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
import math
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


async def copy_baseline(admin_url: str, frames: list[Any], runs: int = 1) -> float:
    """Best seconds of ``runs`` asyncpg COPYs of the frames' point rows into a table with no key
    and no index (emptied between runs)."""
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
            times = []
            for _ in range(runs):
                await conn.execute("TRUNCATE bare")
                t0 = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "bare",
                        records=records,
                        columns=["frame_key", "time", "value_num", "source_id", "idx", "code", "value_text"],
                    )
                times.append(time.perf_counter() - t0)
            return _best(times)
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


# A real rig-month (--month) -----------------------------------------------------------------------
#: Record-1 frames of a rig-day at 1 Hz.
DAY_FRAMES = 86_400
#: Points of a record-1 frame of the simulator.
SIM_ITEMS = 30
#: Points of a frame of the month (``--items``): the issue's rig sends 40.
ITEMS = 40
#: Record-1 items the simulator does not send, added to each of its frames for a 40-item rig (the
#: dictionary's types: F a float, S and L an integer).
EXTRA_ITEMS = (
    ("0109", "F"),
    ("0111", "F"),
    ("0125", "S"),
    ("0134", "F"),
    ("0135", "F"),
    ("0136", "F"),
    ("0137", "L"),
    ("0138", "S"),
    ("0139", "F"),
    ("0140", "F"),
)
#: Midnight UTC, so the month is 30 whole UTC days (30 day files in the archive, not 31 part days).
MONTH_START = (2026, 1, 1)
#: Goals of issue #13 for the month's figures.
GOALS = {"hot": 60.0, "archive": 4.0, "pg_series": 2.0, "ar_series": 1.0, "window": 0.1, "import": 0.6}


def rss_mb() -> float:
    """This process's resident set now, in MB (Linux; else its peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (``ru_maxrss`` is KB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def with_extra_items(frame: bytes, n: int, extra: int) -> bytes:
    """The simulator's ``n``-th frame with the first ``extra`` of :data:`EXTRA_ITEMS` before its
    ``!!``: readings that wander slowly, as a rig's do (a temperature, a stroke count...)."""
    lines = []
    for k, (code, kind) in enumerate(EXTRA_ITEMS[:extra]):
        wave = math.sin(n / (300.0 + 37 * k)) * (5 + k)
        if kind == "F":
            lines.append(b"%s%.2f\r\n" % (code.encode(), 50 + 10 * k + wave))
        else:
            lines.append(b"%s%d\r\n" % (code.encode(), (n // (1 + k) if code == "0137" else 60 + int(wave))))
    end = frame.rindex(b"!!")
    return frame[:end] + b"".join(lines) + frame[end:]


def write_rig_days(folder: Any, days: int) -> list[Any]:
    """``days`` WITS files of one simulated rig, a UTC day each, streamed frame by frame to disk.

    One simulator runs through the whole month (it is stateful: each day continues where the last
    stopped, depth and all), so the files are one continuous rig; no day is held in memory.
    """
    from datetime import UTC, datetime

    from witskit.simulator import DrillingSimulator

    sim = DrillingSimulator(7, records=(1,), start=datetime(*MONTH_START, tzinfo=UTC))
    extra = ITEMS - SIM_ITEMS
    paths = []
    t0 = time.perf_counter()
    n = 0
    for day in range(1, days + 1):
        path = folder / f"rig-day-{day:02d}.wits"
        with path.open("wb") as fh:
            if not extra:
                fh.writelines(sim.frames(DAY_FRAMES))
            else:
                for frame in sim.frames(DAY_FRAMES):
                    fh.write(with_extra_items(frame, n, extra))
                    n += 1
        paths.append(path)
        print(
            f"  simulate: day {day:2d}/{days} {path.stat().st_size / 1e6:6.1f} MB, "
            f"{time.perf_counter() - t0:6.1f} s, RSS {rss_mb():6.0f} MB",
            flush=True,
        )
    return paths


async def baseline_in_child(admin_url: str, path: Any) -> dict[str, float]:
    """The bare COPY baseline of one day file's point rows, run in a child process.

    A day's decoded frames and point tuples take over a GB; in a child they neither count in this
    process's peak RSS (the month must stream) nor linger in its heap during the import.
    """
    import json

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--pg-url",
        admin_url,
        "--copy-baseline-of",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"the baseline's child exited with {proc.returncode}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def copy_baseline_of(admin_url: str, path: str) -> None:
    """(The child of :func:`baseline_in_child`) best of 2 COPYs of ``path``'s points, as JSON."""
    import json

    from witskit.protocol import DecodedFrame, iter_decode

    with open(path, "rb") as fh:
        frames = [f for f in iter_decode(fh, source=SOURCE) if isinstance(f, DecodedFrame)]
    points = sum(len(f) for f in frames)
    seconds = asyncio.run(copy_baseline(admin_url, frames, runs=2))
    print(json.dumps({"points": points, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


async def watch_import(paths: list[Any], t0: float) -> None:
    """Print a line each time ``witskit import`` moves on to the next day's file.

    Which file the import's reader process (a child of this one) has open is read from
    ``/proc/<pid>/fd`` once a second: nothing is asked of the database and nothing of the import's
    code is changed. The reader is at most a batch ahead of the writes, so a day is "done" when
    the reader has moved on to the next day's file, up to a batch before its last write.
    """
    index = {str(p): i for i, p in enumerate(paths)}
    current = 0
    while True:
        await asyncio.sleep(1)
        try:
            pids = [str(os.getpid()), *_children()]
        except OSError:
            return  # not Linux: no progress lines
        now = current
        for pid in pids:
            with contextlib.suppress(OSError):  # gone meanwhile
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):  # closed meanwhile (the listing's own fd is)
                        now = max(now, index.get(os.readlink(f"/proc/{pid}/fd/{fd}"), now))
        while current < now:
            current += 1
            import_done(current, len(paths), t0)


def _children() -> list[str]:
    """The process ids whose parent is this process."""
    me = os.getpid()
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/stat") as fh:
                    parent = int(fh.read().rsplit(")", 1)[1].split()[1])
                if parent == me:
                    out.append(pid)
    return out


def import_done(day: int, days: int, t0: float) -> None:
    took = time.perf_counter() - t0
    print(
        f"  import: day {day:2d}/{days} done, {took:6.1f} s, "
        f"{day * DAY_FRAMES * ITEMS / took:9,.0f} points/s so far, RSS {rss_mb():6.0f} MB",
        flush=True,
    )


async def best_of(runs: int, read: Any) -> tuple[float, float, Any]:
    """(first, best) seconds of ``runs`` calls of the coroutine function ``read``, and its last result."""
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await read()
        times.append(time.perf_counter() - t0)
    return times[0], _best(times), result


async def month(admin_url: str, days: int) -> None:
    """Simulate ``days`` rig-days to files, ``witskit import`` them, compact, archive, read."""
    import shutil
    import tempfile
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from witskit.cli._storage import _import
    from witskit.storage import Store
    from witskit.storage.archive import Archive, archive_days
    from witskit.storage.tiers import archive_scan, archive_series

    started = time.perf_counter()
    points = days * DAY_FRAMES * ITEMS
    lo = datetime(*MONTH_START, tzinfo=UTC)
    hi = lo + timedelta(days=days)
    window = (lo + timedelta(days=days // 2, hours=12), lo + timedelta(days=days // 2, hours=13))
    print(
        f"a rig-month: {days} days x {DAY_FRAMES:,} frames x {ITEMS} items (the simulator's record 1"
        f"{f', {ITEMS - SIM_ITEMS} more added' if ITEMS > SIM_ITEMS else ''}) = {points:,} points, "
        f"{lo:%Y-%m-%d} .. {hi:%Y-%m-%d} UTC",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="witskit-month-"))
    try:
        t0 = time.perf_counter()
        paths = write_rig_days(tmp, days)
        print(
            f"  simulated {sum(p.stat().st_size for p in paths) / 1e9:.2f} GB of WITS in "
            f"{time.perf_counter() - t0:.1f} s; peak RSS {peak_rss_mb():.0f} MB",
            flush=True,
        )
        before = await baseline_in_child(admin_url, paths[0])
        print(f"  bare COPY baseline, day 1, before the import: {_pps(before):,.0f} points/s", flush=True)
        async with scratch_database(admin_url) as url:
            # The schema first, as `witskit db upgrade` leaves it (bench_storage's cli_import does so).
            await (await Store.open(url)).aclose()
            t0 = time.perf_counter()
            watcher = asyncio.ensure_future(watch_import(paths, t0))
            try:
                status = await _import(url, paths, SOURCE)
            finally:
                watcher.cancel()
            load = time.perf_counter() - t0
            import_done(days, days, t0)
            import_rss = peak_rss_mb()
            assert status == 0, f"witskit import exited {status}"
            print(f"  witskit import of {days} files: {load:.1f} s; peak RSS {import_rss:.0f} MB", flush=True)
            after = await baseline_in_child(admin_url, paths[0])
            print(f"  bare COPY baseline, day 1, after the import:  {_pps(after):,.0f} points/s", flush=True)
            shutil.rmtree(tmp, ignore_errors=True)  # the WITS files are not read again

            store = await Store.open(url)
            try:
                frames = await store.count_frames(SOURCE, lo, hi)
                assert frames == days * DAY_FRAMES, f"{frames:,} frames stored, {days * DAY_FRAMES:,} written"
                written = await store.size_on_disk() or 0

                async def pg_series() -> Any:
                    return await store.series(SOURCE, ["0108"], lo, hi, points=600)

                # What a query right after the import reads: a bulk write's blocks have no
                # summaries until the next compaction, so the series reads every point of 0108.
                cold, _, _ = await best_of(1, pg_series)
                print(
                    f"  series 0108, month, PostgreSQL, before compaction: {cold:.2f} s (one run)", flush=True
                )

                t0 = time.perf_counter()

                def compacted(source: str, day: Any) -> None:
                    print(f"  compact: {day.day:%Y-%m-%d} {time.perf_counter() - t0:6.1f} s", flush=True)

                moved = await store.compact(hi + timedelta(hours=2), on_day=compacted)
                summaries = time.perf_counter() - t0
                print(f"  compaction and summaries: {summaries:.1f} s ({moved:,} points moved from rows)")
                t0 = time.perf_counter()
                async with store._engine.connect() as conn:  # what autovacuum does after a load
                    await conn.exec_driver_sql("ANALYZE")
                print(f"  ANALYZE: {time.perf_counter() - t0:.1f} s", flush=True)
                hot = await store.size_on_disk() or 0
                t0 = time.perf_counter()
                parts = await measure_breakdown(url)
                breakdown_s = time.perf_counter() - t0
                print(f"  VACUUM ANALYZE and the size of each relation: {breakdown_s:.1f} s", flush=True)

                pg_first, pg_best, series = await best_of(3, pg_series)
                assert series is not None, "the source is gone"
                assert len(series.codes["0108"].time) == 600, "no month of buckets"

                async def pg_scan() -> int:
                    scan = await store.scan(SOURCE, None, *window)
                    return sum([len(b) async for b in scan])

                pgw_first, pgw_best, pg_rows = await best_of(3, pg_scan)

                archive = Archive(tempfile.mkdtemp(prefix="witskit-month-archive-"))
                try:
                    t0 = time.perf_counter()

                    def archived(entry: Any) -> None:
                        print(
                            f"  archive: {entry.date} {entry.rows:,} points {entry.bytes / 1e6:5.1f} MB, "
                            f"{time.perf_counter() - t0:6.1f} s, RSS {rss_mb():6.0f} MB",
                            flush=True,
                        )

                    report = await archive_days(store, archive, until=hi, on_day=archived)
                    arch = time.perf_counter() - t0
                    files = sum(e.bytes for e in report.written)
                    assert report.points == points, f"{report.points:,} points archived"
                    lo_us, hi_us = int(lo.timestamp() * 1e6), int(hi.timestamp() * 1e6)
                    width = -(-(hi_us - lo_us) // 600)

                    async def ar_series() -> Any:
                        return await asyncio.to_thread(
                            archive_series, archive, SOURCE, ["0108"], lo_us, hi_us, width, lo_us
                        )

                    ar_first, ar_best, buckets = await best_of(3, ar_series)
                    assert len(buckets["0108"].time) == 600, "no month of buckets from the archive"

                    async def ar_scan() -> int:
                        return sum(
                            [
                                len(b)
                                async for b in archive_scan(archive, {SOURCE: 1}, [SOURCE], None, *window)
                            ]
                        )

                    arw_first, arw_best, ar_rows = await best_of(3, ar_scan)
                finally:
                    shutil.rmtree(archive.root, ignore_errors=True)
            finally:
                await store.aclose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rate = points / load
    ratios = [rate / _pps(b) for b in (before, after)]
    hot_bpp, ar_bpp = hot / points, files / points
    print(f"\nthe month, {points:,} points, all measured on it (reads: best of 3, and the first run):")
    print(f"  witskit import, decoding included  {rate:12,.0f} points/s ({load / 60:.1f} min)")
    print(
        f"  bare COPY baseline, day 1          {_pps(before):12,.0f} points/s before the import, "
        f"{_pps(after):,.0f} after (best of 2 each)"
    )
    print(
        f"  import / baseline                  {min(ratios):12.0%} .. {max(ratios):.0%}  "
        f"goal >= 60%: {_met(min(ratios) >= GOALS['import'])}"
    )
    print(f"  PostgreSQL as imported             {written / points:12.1f} bytes/point")
    print(
        f"  PostgreSQL compacted, summarized   {hot_bpp:12.1f} bytes/point  "
        f"goal <= 60: {_met(hot_bpp <= GOALS['hot'])}"
    )
    total = sum(v for k, v in parts.items() if "raw bytes" not in k)
    print(f"    after VACUUM, by relation ({total / points:.1f} in all; {breakdown_s:.0f} s to measure):")
    for name, size in sorted(parts.items()):
        print(f"      {name:55s} {size / points:6.2f}")
    print(
        f"  archive write                      {report.points / arch:12,.0f} points/s "
        f"({arch / 60:.1f} min, {len(report.written)} day files)"
    )
    print(
        f"  archive on disk                    {ar_bpp:12.2f} bytes/point  "
        f"goal <= 4: {_met(ar_bpp <= GOALS['archive'])}"
    )
    print(f"  series 0108 -> 600 buckets over {days} days:")
    print(
        f"    PostgreSQL {pg_best * 1000:8.1f} ms (first {pg_first * 1000:.1f}; "
        f"before compaction {cold * 1000:.0f})  goal < 2 s: {_met(pg_best < GOALS['pg_series'])}"
    )
    print(
        f"    archive    {ar_best * 1000:8.1f} ms (first {ar_first * 1000:.1f})  "
        f"goal < 1 s: {_met(ar_best < GOALS['ar_series'])}"
    )
    print(
        f"  1-hour raw window, every channel, from {window[0]:%Y-%m-%d %H:%M} UTC "
        f"({pg_rows:,} and {ar_rows:,} points):"
    )
    for name, best, first in (("PostgreSQL", pgw_best, pgw_first), ("archive   ", arw_best, arw_first)):
        print(
            f"    {name} {best * 1000:8.1f} ms (first {first * 1000:.1f})  "
            f"goal < 100 ms: {_met(best < GOALS['window'])}"
        )
    child = max(before["peak_rss_mb"], after["peak_rss_mb"])
    print(
        f"  peak RSS of this process {peak_rss_mb():.0f} MB (to the end of the import {import_rss:.0f} MB; "
        f"archive_days holds a day's points at a time; the baseline's child: {child:.0f} MB); "
        f"the month took {(time.perf_counter() - started) / 60:.1f} min"
    )


def _pps(baseline: dict[str, float]) -> float:
    return baseline["points"] / baseline["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("WITSKIT_TEST_POSTGRES_URL", PG_URL))
    parser.add_argument("--frames", type=int, default=20_000, help="frames of the breakdown (30 points each)")
    parser.add_argument(
        "--days", type=float, default=None, help="rig-days loaded for the tier figures (2; --month: 30)"
    )
    parser.add_argument("--quick", action="store_true", help="seconds: 2,000 frames, 0.1 rig-day")
    parser.add_argument(
        "--items",
        type=int,
        choices=range(SIM_ITEMS, SIM_ITEMS + len(EXTRA_ITEMS) + 1),
        default=SIM_ITEMS + len(EXTRA_ITEMS),
        metavar=f"{SIM_ITEMS}..{SIM_ITEMS + len(EXTRA_ITEMS)}",
        help="--month: items a frame (40, the issue's rig; 30 is the simulator's record 1 alone)",
    )
    parser.add_argument("--breakdown-only", action="store_true", help="only the bytes-per-point breakdown")
    parser.add_argument(
        "--month", action="store_true", help="a real rig-month: simulated, imported, archived (~20 min)"
    )
    parser.add_argument("--copy-baseline-of", help=argparse.SUPPRESS)  # the month's baseline child
    args = parser.parse_args()
    global ITEMS
    ITEMS = args.items
    if args.copy_baseline_of:
        copy_baseline_of(args.pg_url, args.copy_baseline_of)
        return
    t0 = time.perf_counter()
    if args.month:
        days = 30 if args.days is None else int(args.days)
        if days < 1 or (args.days is not None and days != args.days):
            parser.error("--month takes --days as a whole number of days, at least 1")
        asyncio.run(month(args.pg_url, days))
    else:
        asyncio.run(breakdown(args.pg_url, sim_frames(2_000 if args.quick else args.frames)))
        if not args.breakdown_only:
            days = 0.1 if args.quick else 2.0 if args.days is None else args.days
            asyncio.run(tiers(args.pg_url, sim_frames(int(days * 86_400)), days))
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
