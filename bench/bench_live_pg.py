"""Live ingest: 1000 rigs x 1 frame/s x 40 items through the whole pipeline into PostgreSQL.

Run:  .venv/bin/python bench/bench_live_pg.py                     (1000 rigs, 60 s)
      .venv/bin/python bench/bench_live_pg.py --rigs 200 --seconds 20
      WITSKIT_BENCH_PG=postgresql://postgres@127.0.0.1:5432/postgres (the default admin URL)

Rigs push over TCP into a ``tcp-listen://`` source (a separate process sends, as in
``bench_listener.py``); every frame goes to the durable spool (fsync interval 100 ms), then to
PostgreSQL in batches through the SQL sink. Reported: frames received vs committed, and the
latency from receive (the parser was fed the frame's last bytes) to the commit that covers it,
p50/p99 (target p99 < 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_listener import rigs_process

OUT = Path(__file__).resolve().parent / "out"
ADMIN = os.environ.get("WITSKIT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def run(rigs: int, seconds: float) -> dict[str, Any]:
    import asyncpg

    from witskit.pipeline import Pipeline, SQLSink
    from witskit.protocol import DecodedFrame
    from witskit.storage.spool import Spool
    from witskit.transport.listener import ListenerSource

    name = f"witskit_bench_{uuid.uuid4().hex[:8]}"
    admin = ADMIN.replace("postgresql://", "postgres://")
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    latencies: list[float] = []

    class TimedSink(SQLSink):
        async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
            await super().write(batch, upto=upto)
            done = datetime.now(UTC)
            latencies.extend((done - f.received_at).total_seconds() for f in batch)

    try:
        source = ListenerSource("127.0.0.1", 0, max_connections=rigs + 10, idle_timeout=30)
        await source.start()
        with tempfile.TemporaryDirectory() as tmp, Spool(Path(tmp) / "spool", fsync="interval") as spool:
            sink = TimedSink(url, pool_size=4)
            await sink._get_store()  # connect and create the schema before the rigs start
            pipe = Pipeline([source], [sink], spool, batch_interval=0.2)
            task = asyncio.create_task(pipe.run())
            ready = multiprocessing.Event()
            proc = multiprocessing.Process(target=rigs_process, args=(source.port, rigs, seconds, ready))
            proc.start()
            while proc.is_alive():
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)
            pipe.stop()
            await asyncio.wait_for(task, 120)
            received = spool.last_seq
        sent = json.loads((OUT / "listener-sent.json").read_text())
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    latencies.sort()
    return {
        "rigs": rigs,
        "seconds": seconds,
        "frames_sent": sent,
        "frames_received": received,
        "frames_committed": len(latencies),
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[int(len(latencies) * 0.99) - 1],
        "max_s": latencies[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rigs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.rigs + 100)), hard))
    OUT.mkdir(exist_ok=True)
    started = time.perf_counter()
    report = asyncio.run(run(args.rigs, args.seconds))
    print(
        f"{report['rigs']} rigs for {report['seconds']:.0f} s into PostgreSQL: sent {report['frames_sent']}, "
        f"received {report['frames_received']}, committed {report['frames_committed']}\n"
        f"receive -> commit: p50 {report['p50_s'] * 1000:.0f} ms, p99 {report['p99_s'] * 1000:.0f} ms "
        f"(target < 1000 ms), max {report['max_s'] * 1000:.0f} ms;"
        f" run took {time.perf_counter() - started:.0f} s"
    )
    (OUT / "live_pg.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
