"""CPU per frame of one fleet edge: rigs -> ``witskit stream --config edge.yaml`` -> JetStream.

Run:  .venv/bin/python bench/bench_edge.py                 (250 rigs x 1 Hz, 30 s measured)
      .venv/bin/python bench/bench_edge.py --hz 4          (the same rigs four times as fast)
      .venv/bin/python bench/bench_edge.py --src /tmp/old/src --src src --rounds 2   (before/after)
      .venv/bin/python bench/bench_edge.py --profile /tmp/edge.prof   (the edge under cProfile)

One edge as ``bench/bench_fleet.py`` starts it (a pipeline file of ``tcp://`` sources, one per
rig, a ``nats://`` sink, a spool with ``fsync: interval``; ``--format table`` to a log file): this
process plays the rigs (TCP servers sending bench_fleet's 40-item frames) and starts its own
``nats-server`` with JetStream on a free loopback port (never the shared one on 4222).

Printed, never asserted:

1. **edge**: frames published (counted in the stream, which no one consumes) and the edge's CPU
   seconds over the measured window, after a warm-up: frames per CPU second, the share of a core
   it used, and the frames still unpublished at the end (sent by the rigs, not in the stream).
   With several ``--src`` trees (before/after), each runs in turn on the same server, ``--rounds``
   times interleaved: on a shared machine the load moves between runs, so compare within a run;
2. **baseline**: the same number of messages (same size and headers) published by a bare
   pipelined ``publish_async`` loop in this process: the floor of what nats-py costs per message,
   so the edge's figure reads as a multiple of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.dont_write_bytecode = True  # the helpers imported below leave no __pycache__ in the tree
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402

from bench_fleet import Rigs, cpu_seconds, frame  # noqa: E402
from support.natscluster import NatsCluster, free_ports  # noqa: E402

STREAM = "BENCHEDGE"
#: Seconds before the measured window: every rig connected, the stream made, batches flowing.
WARMUP = 8.0


async def stream_messages(servers: list[str]) -> int:
    """Messages in the bench's stream now (0 before it exists)."""
    import nats
    import nats.js.errors

    nc = await nats.connect(servers=servers, connect_timeout=2, allow_reconnect=False)
    try:
        info = await nc.jetstream(timeout=5).stream_info(STREAM)
        return int(info.state.messages)
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


async def run_edge(
    tmp: Path, cluster: NatsCluster, args: argparse.Namespace, src: Path, run: int
) -> tuple[int, float, float, int, int]:
    """(frames published in the window, edge CPU seconds in it, window seconds, frames the rigs sent
    and frames of this run in the stream, both at the window's end)."""
    base = await stream_messages(cluster.live_servers)
    original = Rigs._rig

    if args.hz != 1.0:  # the rigs' 1 frame/s, scaled: each rig's sleep shortened

        async def fast_rig(self: Rigs, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            rig = self.conns
            self.conns += 1
            seq = 0
            start = time.monotonic()
            with contextlib.suppress(OSError):
                while not self.stop.is_set():
                    seq += 1
                    writer.write(frame(rig, seq))
                    await writer.drain()
                    self.sent += 1
                    await asyncio.sleep(max(0.0, start + seq / args.hz - time.monotonic()))
            writer.close()

        Rigs._rig = fast_rig  # type: ignore[method-assign]
    rigs = Rigs()
    port = free_ports(1)[0]
    await rigs.serve(port)
    plan = {
        "sources": [{"url": f"tcp://127.0.0.1:{port}", "name": f"e0-rig{j:04d}"} for j in range(args.rigs)],
        "sinks": [
            {"url": f"nats://{cluster.url_hosts}/bench?stream={STREAM}&edge=edge{run}&replicas={args.nodes}"}
        ],
        "spool": {"dir": str(tmp / f"spool-{run}"), "fsync": "interval"},
    }
    path = tmp / f"edge-{run}.yaml"
    path.write_text(yaml.safe_dump(plan))
    env = {**os.environ, "PYTHONPATH": str(src.resolve()), "WITS_DATA_DIR": str(tmp / "data")}
    prefix = [sys.executable]
    if args.profile is not None:
        prefix += ["-m", "cProfile", "-o", str(args.profile.resolve())]
    log = (tmp / "edge.log").open("ab")
    try:
        proc = await asyncio.create_subprocess_exec(
            *prefix, "-m", "witskit", "stream", "--config", str(path), "--format", args.format,
            env=env, stdout=log, stderr=log, cwd=tmp,
        )  # fmt: skip
    finally:
        log.close()
    try:
        await asyncio.sleep(WARMUP)
        servers = cluster.live_servers
        cpu0, msgs0, t0 = cpu_seconds(proc.pid), await stream_messages(servers), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1, msgs1, t1 = cpu_seconds(proc.pid), await stream_messages(servers), time.monotonic()
        sent = rigs.sent
        return msgs1 - msgs0, cpu1 - cpu0, t1 - t0, sent, msgs1 - base
    finally:
        Rigs._rig = original  # type: ignore[method-assign]
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await rigs.aclose()


async def bare_publish(servers: list[str], count: int, batch: int) -> float:
    """CPU seconds of this process publishing ``count`` edge-sized messages, ``batch`` pipelined
    ``publish_async`` calls then their PubAcks, as the edge's sink does, with nothing else."""
    import nats

    body = bytes(11) + b"e0-rig0000" + frame(0, 1)
    nc = await nats.connect(servers=servers)
    try:
        js = nc.jetstream(timeout=10)
        start = time.process_time()
        sent = 0
        while sent < count:
            futures = []
            for _ in range(min(batch, count - sent)):
                sent += 1
                headers = {
                    "WitsKit-Envelope": "1",
                    "WitsKit-Edge": "bare",
                    "WitsKit-Spool-Seq": str(sent),
                    "Nats-Msg-Id": f"bare:{sent}:0123456789abcdef",
                }
                futures.append(await js.publish_async("bench.bare", body, stream=STREAM, headers=headers))
            await asyncio.gather(*futures)
        return time.process_time() - start
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", type=int, default=250, help="rigs on the edge (250)")
    parser.add_argument("--hz", type=float, default=1.0, help="frames per second per rig (1)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (30 s)")
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 3), help="nats-server nodes (1)")
    parser.add_argument("--format", default="table", help="the edge's --format (table, as bench_fleet)")
    parser.add_argument(
        "--src",
        type=Path,
        action="append",
        help="an edge's PYTHONPATH (this tree's src); repeat to compare trees, run in turn",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each --src, interleaved (1)")
    parser.add_argument("--profile", type=Path, default=None, help="write the edge's cProfile here")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare publish loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="witskit-bench-edge-") as tmp_text:
        tmp = Path(tmp_text)
        cluster = NatsCluster(tmp / "nats", args.nodes)
        cluster.start()
        try:
            fleet = f"{args.rigs} rigs x {args.hz:g} Hz x 40 items -> 1 edge -> {args.nodes} NATS node(s)"
            print(f"edge: {fleet}")
            trees = args.src or [ROOT / "src"]
            for n in range(args.rounds * len(trees)):
                src = trees[n % len(trees)]
                frames, cpu, window, sent, stored = asyncio.run(run_edge(tmp, cluster, args, src, n))
                print(
                    f"  {src}: {frames} frames published in {window:.1f} s with {cpu:.2f} CPU s: "
                    f"{frames / max(cpu, 1e-9):,.0f} frames per CPU second ({cpu / window:.2f} of a core); "
                    f"{max(sent - stored, 0)} of {sent} sent not yet in the stream at the end"
                )
                if args.profile is not None:
                    break  # one profiled run: the file is the first tree's
            if not args.no_baseline and frames:
                bare = asyncio.run(bare_publish(cluster.live_servers, frames, 2000))
                print(
                    f"baseline: a bare publish_async loop, {frames} messages: {bare:.2f} CPU s = "
                    f"{frames / max(bare, 1e-9):,.0f} per CPU second (the last edge cost "
                    f"{cpu / max(bare, 1e-9):.1f}x that)"
                )
        finally:
            cluster.stop()
            if sys.exc_info()[0] is not None or os.environ.get("BENCH_EDGE_LOG"):
                log = tmp / "edge.log"
                if log.exists():
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
