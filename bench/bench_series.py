"""Downsampling speed: ``Store.series`` over a long range, next to a plain aggregate of the same rows.

Run:  .venv/bin/python bench/bench_series.py                      (a month on SQLite and PostgreSQL)
      .venv/bin/python bench/bench_series.py --days 7 --mysql      (a week, MariaDB too)

What it measures, on ``--days`` of one source at 1 Hz x ``--codes`` codes (a month of ten codes is
25.9 million points), loaded with one ``INSERT ... SELECT`` per code straight into ``points`` (this
benchmark is about reading; ``bench_storage.py`` measures writes):

1. ``Store.series(source, codes, start, end, points=600)`` over the whole range, the call the
   dashboard makes when it shows everything: seconds, and raw points aggregated per second.
2. The baseline, in the same process on the same rows: one ``COUNT/MIN/MAX/AVG`` per code over the
   same ``(source, code, time)`` range, with no grouping. That is the cost of reading the rows at
   all; the ratio says what bucketing, ``first``/``last`` and the rest add.
3. A narrow range (a day, 600 buckets), as when the view is zoomed in.

PostgreSQL and MariaDB are the local servers (``--pg-url``, ``--mysql-url`` or the
``WITSKIT_TEST_POSTGRES_URL`` / ``WITSKIT_TEST_MYSQL_URL`` variables), each in a scratch database
dropped afterwards; SQLite is a temporary file. Best of ``--runs``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import DateTime, bindparam, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage import mysql_admin, pg_admin

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SOURCE = "bench-rig"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CODES = ["0108", "0110", "0113", "0114", "0116", "0118", "0120", "0121", "0126", "0130"]

# One second per row; a null reading every 997 s; a value that wanders and spikes.
_VALUE = (
    "CASE WHEN {i} % 997 = 0 THEN NULL WHEN {i} % 86400 = 5 THEN 100 + {k} ELSE ({i} % 3600) * 0.01 + {k} END"
)
FILL = {
    "sqlite": (
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1) "
        "INSERT INTO points (frame_key, time, value_num, source_id, idx, code, value_text) "
        f"SELECT i, :t0 + i * 1000000, {_VALUE.format(i='i', k=':k')}, :sid, :k, :code, NULL FROM s"
    ),
    "postgresql": (
        "INSERT INTO points (frame_key, time, value_num, source_id, idx, code, value_text) "
        "SELECT i, :t0 + i * interval '1 second', "
        f"{_VALUE.format(i='i', k='CAST(:k AS INTEGER)')}, :sid, :k, :code, NULL "
        "FROM generate_series(0, CAST(:n AS BIGINT) - 1) AS i"
    ),
    "mysql": (
        "INSERT INTO points (frame_key, time, value_num, source_id, idx, code, value_text) "
        "SELECT seq, TIMESTAMPADD(SECOND, seq, :t0), "
        f"{_VALUE.format(i='seq', k=':k')}, :sid, :k, :code, NULL "
        "FROM seq_0_to_{last}"
    ),
}
#: One frame row per second (the points of second i are frame i's): queries join a point to its
#: frame for the receive order of frames that share a second, as in a store written by WitsKit.
FILL_FRAMES = {
    "sqlite": (
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1) "
        "INSERT INTO frames (source_id, frame_key, received_at, frame_time, raw, errors) "
        "SELECT :sid, i, :t0 + i * 1000000, :t0 + i * 1000000, X'', NULL FROM s"
    ),
    "postgresql": (
        "INSERT INTO frames (source_id, frame_key, received_at, frame_time, raw, errors) "
        "SELECT :sid, i, :t0 + i * interval '1 second', :t0 + i * interval '1 second', ''::bytea, NULL "
        "FROM generate_series(0, CAST(:n AS BIGINT) - 1) AS i"
    ),
    "mysql": (
        "INSERT INTO frames (source_id, frame_key, received_at, frame_time, raw, errors) "
        "SELECT :sid, seq, TIMESTAMPADD(SECOND, seq, :t0), TIMESTAMPADD(SECOND, seq, :t0), '', NULL "
        "FROM seq_0_to_{last}"
    ),
}
BASELINE = (
    "SELECT COUNT(*), MIN(value_num), MAX(value_num), AVG(value_num) FROM points "
    "WHERE source_id = :sid AND code = :code AND time >= :lo AND time < :hi"
)


async def admin(kind: str, url: str, sql: str) -> None:
    """Run one statement on the server through its admin URL (bench_storage's helpers)."""
    await (pg_admin if kind == "postgresql" else mysql_admin)(url, sql)


@asynccontextmanager
async def scratch(kind: str, admin_url: str | None) -> AsyncIterator[str]:
    """The URL of an empty database (a temporary SQLite file, or a server database dropped after)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/series.db"
        return
    assert admin_url is not None
    name = f"witskit_bench_{uuid.uuid4().hex[:10]}"
    quote = '"' if kind == "postgresql" else "`"
    await admin(kind, admin_url, f"CREATE DATABASE {quote}{name}{quote}")
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        force = " WITH (FORCE)" if kind == "postgresql" else ""
        await admin(kind, admin_url, f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}")


async def fill(store: Any, kind: str, seconds: int) -> tuple[int, float]:
    """``seconds`` rows per code for SOURCE; returns (source id, seconds taken)."""
    from witskit.storage.schema import sources, to_micros

    engine = store._engine  # a benchmark may reach in: the store has no bulk-fill API
    t_start = time.perf_counter()
    async with engine.begin() as conn:
        result = await conn.execute(
            sources.insert().values(
                name=SOURCE,
                created_at=T0,
                first_time=T0,
                last_time=T0 + timedelta(seconds=seconds - 1),
                frame_count=seconds,
                point_count=seconds * len(CODES),
            )
        )
        sid = int(result.inserted_primary_key[0])
    if kind == "postgresql":
        t0: Any = T0
        stmt = text(FILL[kind]).bindparams(bindparam("t0", type_=DateTime(timezone=True)))
    elif kind == "mysql":
        t0 = T0.replace(tzinfo=None)
        stmt = text(FILL[kind].replace("{last}", str(seconds - 1)))
    else:
        t0 = to_micros(T0)
        stmt = text(FILL[kind])
    for k, code in enumerate(CODES):
        async with engine.begin() as conn:
            await conn.execute(stmt, {"n": seconds, "t0": t0, "sid": sid, "k": k, "code": code})
        print(f"  {kind}: {code} loaded ({time.perf_counter() - t_start:.0f} s)", flush=True)
    frames_sql = FILL_FRAMES[kind].replace("{last}", str(seconds - 1))
    frames_stmt = text(frames_sql)
    if kind == "postgresql":
        frames_stmt = frames_stmt.bindparams(bindparam("t0", type_=DateTime(timezone=True)))
    async with engine.begin() as conn:
        await conn.execute(frames_stmt, {"n": seconds, "t0": t0, "sid": sid})
    print(f"  {kind}: frames loaded ({time.perf_counter() - t_start:.0f} s)", flush=True)
    if kind == "postgresql":
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE points")
            await conn.exec_driver_sql("ANALYZE frames")
    return sid, time.perf_counter() - t_start


async def baseline(store: Any, sid: int, lo: datetime, hi: datetime) -> int:
    from witskit.storage.schema import UTCDateTime

    stmt = text(BASELINE).bindparams(
        bindparam("lo", type_=UTCDateTime()), bindparam("hi", type_=UTCDateTime())
    )
    rows = 0
    async with store._engine.connect() as conn:
        for code in CODES:
            count = (await conn.execute(stmt, {"sid": sid, "code": code, "lo": lo, "hi": hi})).first()
            rows += int(count[0])
    return rows


async def best(runs: int, call: Any) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await call()
        times.append(time.perf_counter() - t0)
    return min(times), result


async def bench(kind: str, admin_url: str | None, days: float, runs: int, points: int) -> dict[str, Any]:
    from witskit.storage import Store

    seconds = int(days * 86400)
    async with scratch(kind, admin_url) as url:
        store = await Store.open(url)
        try:
            sid, fill_s = await fill(store, kind, seconds)
            lo, hi = T0, T0 + timedelta(seconds=seconds)
            rows = seconds * len(CODES)

            async def whole() -> Any:
                return await store.series(SOURCE, CODES, lo, hi, points)

            series_s, got = await best(runs, whole)
            assert sum(sum(s.count) + sum(s.nulls) for s in got.codes.values()) == rows
            base_s, counted = await best(runs, lambda: baseline(store, sid, lo, hi))
            assert counted == rows
            day_lo = T0 + timedelta(seconds=seconds // 2)

            async def one_day() -> Any:
                return await store.series(SOURCE, CODES, day_lo, day_lo + timedelta(days=1), points)

            day_s, _ = await best(runs, one_day)
        finally:
            await store.aclose()
    return {
        "rows": rows,
        "fill_s": fill_s,
        "series_s": series_s,
        "series_rows_per_s": rows / series_s,
        "baseline_s": base_s,
        "baseline_rows_per_s": rows / base_s,
        "ratio": series_s / base_s,
        "one_day_s": day_s,
    }


def report(results: dict[str, Any], days: float, points: int) -> None:
    print(f"\nStore.series over {days:g} days of 1 Hz x {len(CODES)} codes -> {points} buckets per code")
    for kind, r in results.items():
        if isinstance(r, str):
            print(f"{kind:10s} {r}")
            continue
        print(
            f"{kind:10s} {r['rows']:,} rows: series {r['series_s']:.2f} s "
            f"({r['series_rows_per_s']:,.0f} rows/s), "
            f"plain aggregate {r['baseline_s']:.2f} s ({r['baseline_rows_per_s']:,.0f} rows/s), "
            f"ratio {r['ratio']:.2f}; one day: {r['one_day_s'] * 1000:.0f} ms; load {r['fill_s']:.0f} s"
        )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--points", type=int, default=600)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg-url", default=os.environ.get("WITSKIT_TEST_POSTGRES_URL", PG_URL))
    ap.add_argument("--mysql-url", default=os.environ.get("WITSKIT_TEST_MYSQL_URL", MYSQL_URL))
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--mysql", action="store_true", help="MariaDB too (its load is slow)")
    args = ap.parse_args()
    plan: list[tuple[str, str | None]] = []
    if not args.no_sqlite:
        plan.append(("sqlite", None))
    if not args.no_postgres:
        plan.append(("postgresql", args.pg_url))
    if args.mysql:
        plan.append(("mysql", args.mysql_url))
    results: dict[str, Any] = {}
    for kind, url in plan:
        try:
            results[kind] = await bench(kind, url, args.days, args.runs, args.points)
        except OSError as exc:
            results[kind] = f"skipped: {exc}"
    report(results, args.days, args.points)
    OUT.mkdir(exist_ok=True)
    (OUT / "series.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
