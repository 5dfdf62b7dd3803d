"""Speed of the service's two hot routes, through a real ``witskit`` server process over loopback.

Run:  .venv/bin/python bench/bench_service.py          (about a minute; writes bench/out/service.json)
      .venv/bin/python bench/bench_service.py --points 200000 --seconds 5   (quicker)
      .venv/bin/python bench/bench_service.py --postgres   (the export from PostgreSQL too)

What it measures (targets from the service issue):
1. Latest values for 100 sources at 200 requests/s: ``GET /api/v1/latest?source=rig-NNN`` for a
   random rig, sent on a fixed schedule (open loop: a slow answer does not delay the next request,
   and each latency is counted from when the request was due, so queueing is not hidden). Target
   p99 < 20 ms. Two servers: ``witskit serve`` (values re-read from the store when it changes) and
   ``witskit run`` ingesting the 100 rigs live at 1 Hz (values from memory), with the rigs sending
   out of step as independent rigs do, and (worst case) all in the same millisecond.
2. A one-million-point time-range export streamed as CSV, JSON Lines and JSON
   (``GET /api/v1/data``), in rows per second as received by the client. Target >= 200,000 rows/s.

The server is a separate process, as in production, so the load generator does not share its CPU
time with the server's event loop (on a 2-core machine the two still share the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ADMIN = "bench-admin"
ADMIN_PASSWORD = "bench-password-0123456789"
SERVING = re.compile(r"WitsKit is serving at (http://\S+)")


# Data -------------------------------------------------------------------------------------------
def frames_for(source: str, count: int, seed: int) -> list[Any]:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.sim.model import DrillingSimulator

    data = b"".join(DrillingSimulator(seed, records=(1,)).frames(count))
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


async def populate(url: str, sources: int, frames_each: int, export_points: int) -> int:
    """100 sources of a few frames, and one source of ``export_points`` points; returns its point count."""
    from witskit.storage.store import Store

    store = await Store.open(url)
    try:
        for i in range(sources):
            await store.write(frames_for(f"rig-{i:03d}", frames_each, seed=i))
        template = frames_for("export", 2000, seed=99)
        per_frame = sum(len(f.codes) for f in template) / len(template)
        needed = int(export_points / per_frame) + 1
        batch: list[Any] = []
        written = 0
        # One long simulated run, written in batches: DATE/TIME advance, so every frame is new.
        from witskit.protocol import DecodedFrame, iter_decode
        from witskit.sim.model import DrillingSimulator

        sim = DrillingSimulator(99, records=(1,))
        for raw in sim.frames(needed):
            batch.extend(f for f in iter_decode(raw, source="export") if isinstance(f, DecodedFrame))
            if len(batch) >= 5000:
                written += await store.write(batch)
                batch.clear()
        if batch:
            written += await store.write(batch)
        return written
    finally:
        await store.aclose()


# The server process ----------------------------------------------------------------------------
@contextmanager
def server(command: list[str], data_dir: Path, db_url: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env.update(
        WITS_DATA_DIR=str(data_dir),
        WITS_DATABASE_URL=db_url,
        WITS_ADMIN_USERNAME=ADMIN,
        WITS_ADMIN_PASSWORD=ADMIN_PASSWORD,
        WITS_LOG_LEVEL="WARNING",
        WITS_METRICS_ENABLED="false",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "witskit", *command, "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            m = SERVING.search(line)
            if m:
                url = m.group(1)
                break
        if url is None:
            raise RuntimeError(f"the server did not start: {proc.stderr.read()}")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def token(url: str) -> str:
    response = httpx.post(f"{url}/api/v1/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    response.raise_for_status()
    return str(response.json()["access_token"])


# A minimal HTTP/1.1 client ---------------------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection, with just enough parsing for these responses.

    httpx costs ~1 ms of CPU per request: at 200 requests/s on a 2-core machine the load generator
    would measure itself. This costs a few tens of microseconds.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, auth: str
    ) -> None:
        self.reader, self.writer = reader, writer
        self.head = f"Host: {host}\r\nAuthorization: Bearer {auth}\r\n\r\n".encode()

    @classmethod
    async def open(cls, url: str, auth: str) -> Connection:
        host, _, port = url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        return cls(reader, writer, f"{host}:{port}", auth)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length >= 0:
            return status, await self.reader.readexactly(length)
        return status, await self._chunked()

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])

    async def stream_rows(self, path: str) -> tuple[int, int]:
        """GET a chunked response, counting newlines without keeping it: (rows, bytes)."""
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(head.decode(errors="replace"))
        rows = size_total = 0
        while True:
            size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return rows, size_total
            rows += data.count(b"\n") - 1
            size_total += size

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# 1. Latest values at a fixed rate --------------------------------------------------------------
async def latest_load(url: str, auth: str, *, rate: float, seconds: float, sources: int) -> dict[str, float]:
    connections = [await Connection.open(url, auth) for _ in range(16)]
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in connections:
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    for i in range(2 * sources):  # warm up: every source once, then again
        status, _ = await connections[0].get(f"/api/v1/latest?source=rig-{i % sources:03d}")
        errors += status != 200

    async def one(due: float, source: str) -> None:
        nonlocal errors
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await idle.get()
        try:
            status, body = await conn.get(f"/api/v1/latest?source={source}")
        finally:
            idle.put_nowait(conn)
        if status != 200 or b'"values":[{' not in body:
            errors += 1
        latencies.append(time.perf_counter() - due)

    start = time.perf_counter() + 0.2
    count = int(rate * seconds)
    rng = random.Random(7)
    await asyncio.gather(*(one(start + i / rate, f"rig-{rng.randrange(sources):03d}") for i in range(count)))
    elapsed = time.perf_counter() - start
    for conn in connections:
        await conn.close()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": count,
        "achieved_rate": round(count / elapsed, 1),
        "errors": errors,
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * len(ms)) - 1], 2),
        "p99_ms": round(ms[int(0.99 * len(ms)) - 1], 2),
        "max_ms": round(ms[-1], 2),
    }


# 2. The export ----------------------------------------------------------------------------------
async def export(url: str, auth: str, fmt: str, expected: int) -> dict[str, float]:
    path = f"/api/v1/data?source=export&format={fmt}"
    if fmt == "json":
        path += "&limit=1000000"
    conn = await Connection.open(url, auth)
    t0 = time.perf_counter()
    if fmt == "json":
        status, body = await conn.get(path)
        if status != 200:
            raise RuntimeError(body.decode(errors="replace"))
        rows, size = len(json.loads(body)["rows"]), len(body)
    else:
        rows, size = await conn.stream_rows(path)
        if fmt == "csv":
            rows -= 1  # the header line
    elapsed = time.perf_counter() - t0
    await conn.close()
    return {
        "rows": rows,
        "expected": min(expected, 1_000_000) if fmt == "json" else expected,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "mb": round(size / 1e6, 1),
    }


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for the run, dropped afterwards."""
    import uuid

    import asyncpg

    name = f"witskit_bench_{uuid.uuid4().hex[:8]}"
    admin = admin_url.replace("postgresql://", "postgres://", 1)

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(sql(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pipeline_file(path: Path, sources: int) -> Path:
    lines = ["sources:"]
    for i in range(sources):
        lines += [f"  - url: sim://rig-{i:03d}?rate=1&records=1&seed={i}", f"    name: rig-{i:03d}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        nargs="?",
        const=os.environ.get("WITSKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="also export from PostgreSQL (a scratch database made through ADMIN_URL, dropped after)",
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="witskit-bench-") as tmp:
        base = Path(tmp)
        db_url = f"sqlite:///{base / 'bench.db'}"
        t0 = time.perf_counter()
        points = asyncio.run(populate(db_url, args.sources, 30, args.points))
        results["populate"] = {"export_points": points, "seconds": round(time.perf_counter() - t0, 1)}
        took = results["populate"]["seconds"]
        print(f"stored {points:,} export points and {args.sources} sources in {took} s")

        with server(["serve"], base / "serve", db_url) as url:
            auth = token(url)
            latest = asyncio.run(
                latest_load(url, auth, rate=args.rate, seconds=args.seconds, sources=args.sources)
            )
            results["latest_serve"] = latest
            print(f"latest (witskit serve, {args.sources} sources, {args.rate:.0f} req/s): {latest}")
            for fmt in ("csv", "jsonl", "json"):
                results[f"export_{fmt}"] = asyncio.run(export(url, auth, fmt, points))
                print(f"export {fmt}: {results[f'export_{fmt}']}")

        if args.postgres:
            with scratch_postgres(args.postgres) as pg_url:
                asyncio.run(populate(pg_url, args.sources, 30, args.points))
                with server(["serve"], base / "serve-pg", pg_url) as url:
                    auth = token(url)
                    for fmt in ("csv", "jsonl"):
                        results[f"export_{fmt}_postgresql"] = asyncio.run(export(url, auth, fmt, points))
                        print(f"export {fmt} (PostgreSQL): {results[f'export_{fmt}_postgresql']}")

        # The rigs are added one by one through the API, 1/N s apart, so that they send out of
        # step as independent rigs do (rigs started together would all send in the same
        # millisecond every second). The pipeline file's lockstep start is measured too.
        run_db = f"sqlite:///{base / 'run.db'}"
        with server(["run"], base / "run", run_db) as url:
            auth = token(url)
            headers = {"Authorization": f"Bearer {auth}"}
            for i in range(args.sources):
                body = {"url": f"sim://rig-{i:03d}?rate=1&records=1&seed={i}", "name": f"rig-{i:03d}"}
                httpx.post(f"{url}/api/v1/connections", json=body, headers=headers).raise_for_status()
                time.sleep(1 / args.sources)
            time.sleep(3)  # every rig has sent a few frames
            latest = asyncio.run(
                latest_load(url, auth, rate=args.rate, seconds=args.seconds, sources=args.sources)
            )
            results["latest_run"] = latest
            what = f"witskit run, ingesting {args.sources} rigs at 1 Hz"
            print(f"latest ({what}, {args.rate:.0f} req/s): {latest}")

        config = pipeline_file(base / "pipeline.yaml", args.sources)
        with server(
            ["run", "--config", str(config)], base / "lockstep", f"sqlite:///{base / 'lockstep.db'}"
        ) as url:
            auth = token(url)
            time.sleep(3)
            latest = asyncio.run(
                latest_load(url, auth, rate=args.rate, seconds=args.seconds, sources=args.sources)
            )
            results["latest_run_lockstep"] = latest
            what = f"witskit run, {args.sources} rigs sending in lockstep"
            print(f"latest ({what}, {args.rate:.0f} req/s): {latest}")

    results["targets"] = {
        "latest_p99_ms_below": 20,
        "export_rows_per_s_at_least": 200_000,
        "latest_serve_ok": results["latest_serve"]["p99_ms"] < 20,
        "latest_run_ok": results["latest_run"]["p99_ms"] < 20,
        "latest_run_lockstep_ok": results["latest_run_lockstep"]["p99_ms"] < 20,
        "export_csv_ok": results["export_csv"]["rows_per_s"] >= 200_000,
    }
    (OUT / "service.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["targets"], indent=2))


if __name__ == "__main__":
    main()
