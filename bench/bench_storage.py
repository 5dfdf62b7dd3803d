"""Bulk-import speed and size of the SQL stores, next to baselines run in the same process.

Run:  .venv/bin/python bench/bench_storage.py             (about a minute; writes bench/out/storage.json)
      .venv/bin/python bench/bench_storage.py --runs 1 --no-mysql

What it measures, on the file of ``witskit simulate --frames 20000 --records 1`` (20,000 record-1
frames x 30 items = 600,000 points), decoded once up front:

1. ``Store.write`` of all frames in one call (one transaction) into an empty store: points/s
   (targets: SQLite >= 300,000, PostgreSQL >= 500,000). Best of ``--runs``, a fresh database each
   run. Also in pipeline-sized writes of 1,000 frames (one commit each), and ``witskit import``
   end to end (a reader process decodes while the store writes, 20,000-frame writes), for SQLite
   and PostgreSQL, of a larger file: ``--import-frames`` (100,000, five writes) of the same rig,
   so the import is measured as it runs on a long log, its reader working while the store
   writes, not on one batch where one waits for the other. Its points/s is next to the baseline's
   on the 20,000 frames, and its ratio to the baseline is printed.
2. The baselines the store is compared with, on the same rows in the same process. SQLite: the
   standard library's ``executemany`` of the 600,000 point tuples into a table with no key and no
   index (what Python can push into SQLite at all). PostgreSQL: asyncpg's ``copy_records_to_table``
   into a table with no key and no index (what COPY can load at all).
3. Bytes on disk per point: SQLite the database file after close (WAL checkpointed), PostgreSQL
   ``pg_total_relation_size`` of WitsKit's tables (heap, key, TOAST), MariaDB the tablespace files.
4. A CPU reference (a fixed pure-Python loop), to read the other numbers by on another machine.

PostgreSQL and MariaDB are the local servers (``--pg-url``, ``--mysql-url`` or the
``WITSKIT_TEST_POSTGRES_URL`` / ``WITSKIT_TEST_MYSQL_URL`` variables); each run uses a scratch
database that is dropped afterwards. Nothing is asserted: the numbers are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PY = sys.executable
SOURCE = "bench-rig"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
TARGETS = {"sqlite": 300_000, "postgresql": 500_000}
BATCH = 1_000

Opener = Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[None]]]]]


def make_sim_file(frames: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"sim-{frames}-r1.wits"
    if not path.exists():
        subprocess.run(
            [PY, "-m", "witskit", "simulate", "--frames", str(frames), "--records", "1", "-o", str(path)],
            check=True,
        )
    return path


def decode(path: Path) -> tuple[list[Any], float]:
    from witskit.protocol import DecodedFrame, iter_decode

    t0 = time.perf_counter()
    frames = [f for f in iter_decode(path, source=SOURCE) if isinstance(f, DecodedFrame)]
    return frames, time.perf_counter() - t0


def _key(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


async def best_write(
    open_store: Opener, frames: list[Any], runs: int, batch: int | None = None
) -> tuple[float, Any]:
    """Best seconds to write all frames (in one call, or in batches), a fresh store each run."""
    best = float("inf")
    size: Any = None
    for _ in range(runs):
        store, cleanup = await open_store()
        try:
            gc.collect()  # each run starts from the same heap, not from the last run's garbage
            t0 = time.perf_counter()
            inserted = 0
            step = batch or len(frames)
            for i in range(0, len(frames), step):
                inserted += await store.write(frames[i : i + step])
            best = min(best, time.perf_counter() - t0)
            assert inserted == sum(len(f) for f in frames), inserted
            assert await store.write(frames[:100]) == 0  # idempotent
            size = await store.size_on_disk()
        finally:
            await store.aclose()
            await cleanup()
    return best, size


# SQLite -------------------------------------------------------------------------------------------
def sqlite_baseline(frames: list[Any], runs: int) -> float:
    from witskit.storage.schema import to_micros

    rows = []
    for f in frames:
        key, t = _key(f.frame.raw), to_micros(f.timestamp)
        for idx, (code, v) in enumerate(f.items()):
            text = v if type(v) is str else None
            rows.append((1, key, idx, t, code, None if text is not None else v, text))
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            con = sqlite3.connect(Path(tmp) / f"{uuid.uuid4().hex}.db", isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("CREATE TABLE p (source_id, frame_key, idx, time, code, value_num, value_text)")
            gc.collect()
            t0 = time.perf_counter()
            con.execute("BEGIN")
            con.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
            best = min(best, time.perf_counter() - t0)
            con.close()
    return best


async def bench_sqlite(frames: list[Any], runs: int) -> dict[str, float]:
    from witskit.storage import Store

    points = sum(len(f) for f in frames)
    with tempfile.TemporaryDirectory() as tmp:
        paths: list[Path] = []

        async def open_store() -> tuple[Any, Callable[[], Awaitable[None]]]:
            paths.append(Path(tmp) / f"{uuid.uuid4().hex}.db")

            async def cleanup() -> None:
                return None

            return await Store.open(f"sqlite:///{paths[-1]}"), cleanup

        one, _ = await best_write(open_store, frames, runs)
        file_bytes = paths[-1].stat().st_size  # after close: the WAL is checkpointed into the file
        batched, _ = await best_write(open_store, frames, runs, batch=BATCH)
    base = sqlite_baseline(frames, runs)
    return {
        "write_points_per_s": points / one,
        "batched_points_per_s": points / batched,
        "baseline_points_per_s": points / base,
        "time_vs_baseline": one / base,
        "bytes_per_point": file_bytes / points,
    }


async def cli_import(path: Path, runs: int, open_store: Opener) -> float:
    """Best seconds of ``witskit import FILE`` (decode and write, streamed), into a fresh store.

    The command's own code (``witskit.cli._storage._import``) runs in this process, on a new
    empty database each run (the store is opened once first, so the schema exists, as
    ``witskit db upgrade`` would leave it). Run before anything else is loaded: streaming keeps the
    live heap small, which is what an import of a large file does.
    """
    from witskit.cli._storage import _import

    best = float("inf")
    for _ in range(runs):
        store, cleanup = await open_store()
        url = store.url
        await store.aclose()
        try:
            gc.collect()
            t0 = time.perf_counter()
            await _import(url, [path], SOURCE)
            best = min(best, time.perf_counter() - t0)
        finally:
            await cleanup()
    return best


def sqlite_opener(tmp: Path) -> Opener:
    from witskit.storage import Store

    async def open_store() -> tuple[Any, Callable[[], Awaitable[None]]]:
        store = await Store.open(f"sqlite:///{tmp / uuid.uuid4().hex}.db")

        async def cleanup() -> None:
            return None

        return store, cleanup

    return open_store


# Servers ------------------------------------------------------------------------------------------
async def pg_admin(url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def mysql_admin(url: str, sql: str) -> None:
    import asyncmy

    p = urlsplit(url)
    conn = await asyncmy.connect(
        host=p.hostname or "127.0.0.1",
        port=p.port or 3306,
        user=p.username or "root",
        password=p.password or "",
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
    finally:
        conn.close()
        await conn.ensure_closed()


def scratch_opener(kind: str, admin_url: str) -> Opener:
    """Opens a store on a new scratch database; its cleanup drops the database."""
    from witskit.storage import Store

    admin = pg_admin if kind == "postgresql" else mysql_admin
    quote = '"' if kind == "postgresql" else "`"

    async def open_store() -> tuple[Any, Callable[[], Awaitable[None]]]:
        name = f"witskit_bench_{uuid.uuid4().hex[:10]}"
        await admin(admin_url, f"CREATE DATABASE {quote}{name}{quote}")

        async def cleanup() -> None:
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            await admin(admin_url, f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}")

        try:
            return await Store.open(urlsplit(admin_url)._replace(path=f"/{name}").geturl()), cleanup
        except BaseException:
            await cleanup()
            raise

    return open_store


async def pg_baseline(admin_url: str, frames: list[Any], runs: int) -> float:
    import asyncpg

    records = []
    for f in frames:
        key = _key(f.frame.raw)
        for idx, (code, v) in enumerate(f.items()):
            text = v if type(v) is str else None
            records.append((key, f.timestamp, None if text is not None else v, 1, idx, code, text))
    columns = ["frame_key", "time", "value_num", "source_id", "idx", "code", "value_text"]
    conn = await asyncpg.connect(admin_url, timeout=5)
    best = float("inf")
    try:
        await conn.execute(
            "CREATE TEMP TABLE witskit_bench_bare (frame_key bigint, time timestamptz, value_num float8, "
            "source_id int, idx smallint, code char(4), value_text text)"
        )
        for _ in range(runs):
            await conn.execute("TRUNCATE witskit_bench_bare")
            gc.collect()
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table("witskit_bench_bare", records=records, columns=columns)
            best = min(best, time.perf_counter() - t0)
    finally:
        await conn.close()
    return best


async def bench_server(kind: str, admin_url: str, frames: list[Any], runs: int) -> dict[str, float] | str:
    try:
        await (pg_admin if kind == "postgresql" else mysql_admin)(admin_url, "SELECT 1")
    except Exception as exc:
        return f"skipped: {type(exc).__name__}: {exc}"
    points = sum(len(f) for f in frames)
    opener = scratch_opener(kind, admin_url)
    one, size = await best_write(opener, frames, runs)
    batched, batched_size = await best_write(opener, frames, runs, batch=BATCH)
    out = {
        "write_points_per_s": points / one,
        "batched_points_per_s": points / batched,
        "bytes_per_point": (size or 0) / points,
        "batched_bytes_per_point": (batched_size or 0) / points,
    }
    if kind == "postgresql":
        base = await pg_baseline(admin_url, frames, runs)
        out["baseline_points_per_s"] = points / base
        out["time_vs_baseline"] = one / base
    return out


def cpu_reference() -> float:
    """Seconds for a fixed pure-Python loop: how fast this machine is, to read the rest by."""
    t0 = time.perf_counter()
    s = 0
    for i in range(5_000_000):
        s += i
    return time.perf_counter() - t0


def report(results: dict[str, Any]) -> None:
    print(
        f"{results['frames']:,} frames, {results['points']:,} points; "
        f"decode alone {results['decode_points_per_s']:,.0f} points/s; "
        f"CPU reference (5M-iteration Python loop) {results['cpu_reference_s']:.3f} s"
    )
    baselines = {"sqlite": "executemany into a bare table", "postgresql": "COPY into a bare table"}
    for backend in ("sqlite", "postgresql", "mysql"):
        r = results.get(backend)
        if r is None:
            continue
        if isinstance(r, str):
            print(f"{backend:10s} {r}")
            continue
        target = TARGETS.get(backend)
        goal = f"   (target {target:,})" if target else ""
        print(f"{backend:10s} one write         {r['write_points_per_s']:>9,.0f} points/s{goal}")
        print(f"{'':10s} {BATCH:,}-frame writes {r['batched_points_per_s']:>9,.0f} points/s")
        if "decode_and_write_points_per_s" in r:
            ratio = ""
            if "baseline_points_per_s" in r:
                share = r["decode_and_write_points_per_s"] / r["baseline_points_per_s"]
                ratio = f"; {share:.0%} of the baseline"
            print(
                f"{'':10s} witskit import    {r['decode_and_write_points_per_s']:>9,.0f} points/s "
                f"(a {results['import_frames']:,}-frame file, decode + write{ratio})"
            )
        if "baseline_points_per_s" in r:
            print(
                f"{'':10s} baseline          {r['baseline_points_per_s']:>9,.0f} points/s "
                f"({baselines[backend]}); the store takes {r['time_vs_baseline']:.2f}x its time"
            )
        line = f"{'':10s} on disk           {r['bytes_per_point']:>9.1f} bytes/point"
        if "batched_bytes_per_point" in r:
            line += f" ({r['batched_bytes_per_point']:.1f} after {BATCH:,}-frame writes)"
        print(line)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--import-frames", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg-url", default=os.environ.get("WITSKIT_TEST_POSTGRES_URL", PG_URL))
    ap.add_argument("--mysql-url", default=os.environ.get("WITSKIT_TEST_MYSQL_URL", MYSQL_URL))
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-mysql", action="store_true")
    args = ap.parse_args()

    path = make_sim_file(args.frames)
    import_path = make_sim_file(args.import_frames)
    import_points = sum(len(f) for f in decode(import_path)[0])
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        import_s = await cli_import(import_path, args.runs, sqlite_opener(Path(tmp)))
    pg_import_s = None
    if not args.no_postgres:
        try:
            pg_import_s = await cli_import(import_path, args.runs, scratch_opener("postgresql", args.pg_url))
        except Exception as exc:  # reported as skipped by bench_server below
            print(f"postgresql import skipped: {type(exc).__name__}: {exc}")
    frames, decode_s = decode(path)
    points = sum(len(f) for f in frames)
    results: dict[str, Any] = {
        "frames": len(frames),
        "points": points,
        "decode_points_per_s": points / decode_s,
        "cpu_reference_s": min(cpu_reference() for _ in range(3)),
        "sqlite": await bench_sqlite(frames, args.runs),
    }
    results["import_frames"] = args.import_frames
    results["sqlite"]["decode_and_write_points_per_s"] = import_points / import_s
    if not args.no_postgres:
        results["postgresql"] = await bench_server("postgresql", args.pg_url, frames, args.runs)
        if pg_import_s is not None and isinstance(results["postgresql"], dict):
            results["postgresql"]["decode_and_write_points_per_s"] = import_points / pg_import_s
    if not args.no_mysql:
        results["mysql"] = await bench_server("mysql", args.mysql_url, frames, args.runs)
    report(results)
    OUT.mkdir(exist_ok=True)
    (OUT / "storage.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
