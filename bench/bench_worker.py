"""A fleet's central worker draining a backlog: JetStream -> ``witskit worker`` -> PostgreSQL.

Run:  PYTHONPATH=src .venv/bin/python bench/bench_worker.py                 (30,000 frames, 1 worker)
      PYTHONPATH=src .venv/bin/python bench/bench_worker.py --bundle 40     (the backlog in bundles)
      PYTHONPATH=src .venv/bin/python bench/bench_worker.py --workers 2     (two workers share it)
      PYTHONPATH=src .venv/bin/python bench/bench_worker.py --src /tmp/old/src --src src --rounds 2
      PYTHONPATH=src .venv/bin/python bench/bench_worker.py --profile /tmp/worker.prof

The catch-up phase of ``bench/bench_fleet.py`` alone: this process starts its own ``nats-server``
(JetStream, one node by default, ``--nodes 3`` for an R3 cluster, free loopback ports, never the
shared one on 4222), publishes a backlog of ``--frames`` envelopes as the edges would (1000 rigs,
bench_fleet's 40-item frames, one edge identity per 250 rigs), then starts ``--workers`` ``witskit
worker`` processes on a fresh PostgreSQL database (a unique name, dropped after) and times them
until every frame is stored.

Printed, never asserted: per tree (``--src``, before/after, run in turn ``--rounds`` times on the
same server: on a shared machine compare within a run), the drain's wall time and frames per
second, the workers' CPU seconds and frames per CPU second, and the same for the PostgreSQL
backends that served them (read from ``/proc``: the server must run on this machine).
``--profile FILE`` runs one worker of the first tree under cProfile and prints its top functions.
``--batch N`` sets the consumer URL's ``batch=`` (messages per transaction at most).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import yaml  # noqa: E402

from bench_fleet import cpu_seconds, frame, stored  # noqa: E402
from support.databases import admin_url, temporary_database  # noqa: E402
from support.natscluster import NatsCluster  # noqa: E402

STREAM = "BENCHWORKER"
RIGS = 1000
#: Spool sequences handed out so far: every message id of a run is new (the stream's duplicate
#: window would drop a repeat).
_published = 0
#: A rig's backlog is a frame a second, from three hours ago (bundles are sliced into blocks, not
#: sorted: as a real backlog, unlike frames all stamped with the same second).
_START = time.time() - 3 * 3600
#: Bound on one drain (seconds).
WAIT = 600.0


async def publish_backlog(
    servers: list[str], frames: int, replicas: int, first_seq: int, bundle: int = 1
) -> None:
    """``frames`` frames, rig after rig, as four edges would publish a backlog: ``bundle`` frames of
    a rig in one message (1: each alone, as a live edge; an edge's backlog batch of 10,000 frames
    over 250 rigs makes bundles of 40)."""
    import nats

    global _published
    from witskit.pipeline.envelope import encode_bundle, encode_envelope
    from witskit.pipeline.records import pack_frame
    from witskit.protocol import FrameParser, WITSFrame

    nc = await nats.connect(servers=servers, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=30, publish_async_max_pending=5000)
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

        try:
            await js.stream_info(STREAM)
        except Exception:
            await js.add_stream(
                StreamConfig(
                    name=STREAM,
                    subjects=["bw.>"],
                    retention=RetentionPolicy.WORK_QUEUE,
                    storage=StorageType.FILE,
                    num_replicas=replicas,
                    discard=DiscardPolicy.NEW,
                    duplicate_window=300,
                )
            )
        futures = []
        pending: dict[int, list[tuple[int, bytes]]] = {}
        for n in range(frames):
            rig = n % RIGS
            seq = first_seq + n // RIGS
            parser = FrameParser(source=f"rig-{rig:04d}")
            (wits,) = [e for e in parser.feed(frame(rig, seq, at=_START + seq)) if isinstance(e, WITSFrame)]
            if bundle == 1:
                headers, body = encode_envelope(wits, edge=f"edge{rig // 250}", sequence=_published + n)
            else:
                records = pending.setdefault(rig, [])
                records.append((_published + n, pack_frame(wits)))
                if len(records) < bundle and n + RIGS < frames:
                    continue
                headers, body = encode_bundle(pending.pop(rig), edge=f"edge{rig // 250}")
            futures.append(await js.publish_async(f"bw.rig-{rig:04d}", body, headers=headers))
            if len(futures) >= 4000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
        _published += frames
    finally:
        await nc.close()


async def backend_pids(db_url: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving ``db_url``'s database (the server is local)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


async def drain(
    tmp: Path,
    tree: Path,
    cluster: NatsCluster,
    db_url: str,
    workers: int,
    target: int,
    profile: Path | None,
    batch: int = 1000,
) -> tuple[float, float, float]:
    """(seconds, worker CPU seconds, their database backends' CPU seconds) until ``target``
    distinct frames are stored."""
    plan = {
        "sources": [
            {
                "url": f"nats://{cluster.url_hosts}/bw.>?stream={STREAM}&durable=central"
                f"&replicas={cluster.size}&batch={batch}"
            }
        ],
        "sinks": [{"url": db_url}],
    }
    path = tmp / "central.yaml"
    path.write_text(yaml.safe_dump(plan))
    env = {**os.environ, "PYTHONPATH": str(tree), "WITS_DATA_DIR": str(tmp / "data")}
    procs = []
    start = time.monotonic()
    for n in range(workers):
        prof = ["-m", "cProfile", "-o", str(profile)] if profile is not None and n == 0 else []
        log = (tmp / f"worker-{n}.log").open("ab")
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                *prof,
                "-m",
                "witskit",
                "worker",
                "--config",
                str(path),
                "--name",
                f"bw{n}",
                env=env,
                stdout=log,
                stderr=log,
                cwd=tmp,
            )
        )
        log.close()
    took = WAIT
    cpu = server = 0.0
    pids: dict[int, float] = {}
    try:
        while time.monotonic() - start < WAIT:
            for pid in await backend_pids(db_url):  # the workers' connections, as they open
                pids.setdefault(pid, cpu_seconds(pid))
            distinct, _, _ = await stored(db_url)
            if distinct >= target:
                took = time.monotonic() - start
                break
            await asyncio.sleep(0.2)
        cpu = sum(cpu_seconds(p.pid) for p in procs)
        server = sum(max(cpu_seconds(pid) - first, 0.0) for pid, first in pids.items())
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                async with asyncio.timeout(60):
                    await p.wait()
            except TimeoutError:
                p.kill()
                await p.wait()
    return took, cpu, server


async def one_round(
    args: argparse.Namespace, tmp: Path, tree: Path, cluster: NatsCluster, db_url: str, profile: Path | None
) -> tuple[float, float, float]:
    # A startup's schema and the sources made first, not timed: one frame per rig.
    await publish_backlog(cluster.live_servers, RIGS, cluster.size, first_seq=1)
    await drain(tmp, tree, cluster, db_url, 1, RIGS, None)
    await publish_backlog(cluster.live_servers, args.frames, cluster.size, first_seq=2, bundle=args.bundle)
    return await drain(tmp, tree, cluster, db_url, args.workers, RIGS + args.frames, profile, args.batch)


def run(args: argparse.Namespace, tmp: Path, cluster: NatsCluster) -> None:
    trees = [Path(s).resolve() for s in args.src] or [ROOT / "src"]
    round_no = 0
    for r in range(args.rounds):
        for tree in trees:
            with temporary_database("postgresql", admin_url("postgresql")) as db_url:
                profile = args.profile if (args.profile is not None and round_no == 0) else None
                took, cpu, server = asyncio.run(one_round(args, tmp, tree, cluster, db_url, profile))
            round_no += 1
            load = os.getloadavg()[0]
            print(
                f"round {r + 1} {tree}: {args.frames} frames in {took:.1f} s = "
                f"{args.frames / took:,.0f} frames/s; workers' CPU {cpu:.1f} s = "
                f"{args.frames / max(cpu, 1e-9):,.0f} frames per CPU second; their PostgreSQL backends' "
                f"CPU {server:.1f} s = {args.frames / max(server, 1e-9):,.0f} frames per CPU second "
                f"(load {load:.1f})",
                flush=True,
            )
    if args.profile is not None:
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30_000, help="backlog size (frames)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000, help="the consumer URL's batch=")
    parser.add_argument("--nodes", type=int, default=1, help="NATS nodes (stream replicas)")
    parser.add_argument(
        "--bundle", type=int, default=1, help="frames of a rig per message (an edge's backlog: 40; 1: single)"
    )
    parser.add_argument("--src", action="append", default=[], help="a src tree to run (repeatable)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the first worker here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="witskit-bench-worker-") as tmp_text:
        tmp = Path(tmp_text)
        cluster = NatsCluster(tmp / "nats", args.nodes, name="bench-worker")
        cluster.start()
        try:
            run(args, tmp, cluster)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
