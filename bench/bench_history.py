"""History at scale: where PostgreSQL's bytes per point go, partitioned writes and reads.

Run:  .venv/bin/python bench/bench_history.py --breakdown-only     (about 20 s)
      .venv/bin/python bench/bench_history.py --quick               (a few seconds)

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
    """Bytes of each relation of ``points`` and ``frames`` (partitions summed): heap, indexes, TOAST."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetch(
            """
            WITH leaf AS (
              SELECT t.name, c.oid, c.reltoastrelid FROM (VALUES ('points'), ('frames')) AS t(name)
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


_BLOCKS = """
CREATE TABLE bench_blocks (source_id int, code char(4) COLLATE "C", hour timestamptz, times int8[],
  vals float8[], texts text[], keys int8[], idx int2[], PRIMARY KEY (source_id, code, hour));
INSERT INTO bench_blocks SELECT source_id, code, date_trunc('hour', time),
  array_agg((extract(epoch FROM time) * 1e6)::int8 ORDER BY time, frame_key, idx),
  array_agg(value_num ORDER BY time, frame_key, idx),
  CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text ORDER BY time, frame_key, idx) END,
  array_agg(frame_key ORDER BY time, frame_key, idx), array_agg(idx ORDER BY time, frame_key, idx)
  FROM points GROUP BY 1, 2, 3;
"""


async def measure_blocks(url: str) -> tuple[int, int]:
    """The design of docs/history.md: hourly blocks per channel (bytes with keys, without keys)."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(_BLOCKS)
        await conn.execute("VACUUM ANALYZE bench_blocks")
        full = await conn.fetchval("SELECT pg_total_relation_size('bench_blocks')")
        await conn.execute("ALTER TABLE bench_blocks DROP COLUMN keys")
        await conn.execute("VACUUM FULL bench_blocks")
        keyless = await conn.fetchval("SELECT pg_total_relation_size('bench_blocks')")
    finally:
        await conn.close()
    return int(full), int(keyless)


async def breakdown(admin_url: str, frames: list[Any]) -> None:
    from witskit.storage import Store

    points = sum(len(f) for f in frames)
    print(f"bytes per point in PostgreSQL, {len(frames):,} frames, {points:,} points")
    for batch in (len(frames), 1_000):
        async with scratch_database(admin_url) as url:
            store = await Store.open(url)
            try:
                for i in range(0, len(frames), batch):
                    await store.write(frames[i : i + batch])
            finally:
                await store.aclose()
            parts = await measure_breakdown(url)
            blocks = await measure_blocks(url) if batch == len(frames) else None
        total = sum(v for k, v in parts.items() if "raw bytes" not in k)
        print(f"  written in {batch:,}-frame writes: {total / points:6.1f} bytes/point")
        for name, size in sorted(parts.items()):
            print(f"    {name:55s} {size / points:6.1f}")
        if blocks is not None:
            print("  the same points as hourly blocks per channel (design, docs/history.md):")
            print(f"    {'blocks with frame keys and line indexes':55s} {blocks[0] / points:6.1f}")
            print(f"    {'blocks without frame keys':55s} {blocks[1] / points:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("WITSKIT_TEST_POSTGRES_URL", PG_URL))
    parser.add_argument("--frames", type=int, default=20_000, help="frames of the breakdown (30 points each)")
    parser.add_argument("--quick", action="store_true", help="a few seconds: 2,000 frames")
    parser.add_argument("--breakdown-only", action="store_true", help="only the bytes-per-point breakdown")
    args = parser.parse_args()
    frames = sim_frames(2_000 if args.quick else args.frames)
    t0 = time.perf_counter()
    asyncio.run(breakdown(args.pg_url, frames))
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
