"""A fleet under load: rigs -> 4 edges -> a 3-node JetStream cluster -> 2 workers -> PostgreSQL.

Run:  PYTHONPATH=src .venv/bin/python bench/bench_fleet.py            (1000 rigs, 120 s, 60 s outage)
      PYTHONPATH=src .venv/bin/python bench/bench_fleet.py --quick    (100 rigs, 20 s, 10 s outage)
      PYTHONPATH=src .venv/bin/python bench/bench_fleet.py --trace    (the stream each second of the catch-up)

Everything is real and on 127.0.0.1: this process plays the rigs (each a TCP connection sending one
40-item frame a second, numbered in item 0104, its rig named in 0101); four ``witskit stream
--config edge.yaml`` processes each read a quarter of them into their spool and publish to a
three-node ``nats-server`` cluster (replicas 3, file storage, in a temporary directory); two
``witskit worker`` processes store the stream into a fresh PostgreSQL database (created with a
unique name, dropped after).

Phases and what is printed (never asserted):

1. **live** (``--seconds``): the workers print their receive-at-edge -> central-commit latency
   (p50, p99) when stopped at its end, and two new workers take over;
2. **outage** (``--outage``): every NATS node is killed; the edges keep receiving into their
   spools; then the nodes start again on their storage;
3. **catch-up**: the time until every frame sent before the restart is stored; the backlog drained
   per second, against the live rate (the goal: >= 5x); what waited in the stream for the workers
   meanwhile (sampled each second: high when the workers are the bound, low when the edges are);
4. **totals**: frames sent (by the rigs' numbers), committed (distinct numbers stored), lost (sent,
   not stored: must be 0), duplicated (stored twice: must be 0); points per second; the CPU
   seconds each process used, and per core-second of the run.

Every wait is bounded; the whole run takes about ``seconds + outage + 60`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # the test helpers imported below leave no __pycache__ in the tree
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402

from support.databases import admin_url, temporary_database  # noqa: E402
from support.natscluster import NatsCluster, free_ports  # noqa: E402

EDGES = 4
WORKERS = 2
ITEMS = 40
#: Seconds before the live phase: every rig connected, the stream made, the first batches through.
WARMUP = 10.0
#: Seconds the measured workers run beside the warm-up's before those stop (a process start,
#: imports and the consumer bound take a few seconds on a loaded machine).
OVERLAP = 10.0
#: Bound on the catch-up and the final drain (seconds).
WAIT = 300.0
_TICK = os.sysconf("SC_CLK_TCK")


#: Items of record 1 (08-43) whose type is S or L: they get whole numbers, as a rig sends them (a
#: decimal there is a decode problem, logged per frame, which a bench must not measure).
_INTEGER_ITEMS = frozenset({20, 23, 24, 25, 28, 37, 38})


def frame(rig: int, seq: int, at: float | None = None) -> bytes:
    """A 40-item record-1 frame: rig name (0101), sequence (0104), date/time (now, or ``at``: a
    backlog's frames are a second apart), and 36 readings."""
    now = time.gmtime(at)
    lines = [
        f"0101RIG-{rig:04d}",
        f"0104{seq}",
        f"0105{time.strftime('%y%m%d', now)}",
        f"0106{time.strftime('%H%M%S', now)}",
    ]
    lines += [
        f"01{8 + i:02d}{seq % 997 + i}"
        if 8 + i in _INTEGER_ITEMS
        else f"01{8 + i:02d}{1000 + seq % 997 + i / 10:.2f}"
        for i in range(ITEMS - 4)
    ]
    return ("&&\r\n" + "\r\n".join(lines) + "\r\n!!\r\n").encode("ascii")


class Rigs:
    """Rigs as TCP servers on one port per edge: each accepted connection is one rig, 1 frame/s."""

    def __init__(self) -> None:
        self.sent = 0
        self.conns = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self.stop = asyncio.Event()

    async def serve(self, port: int) -> None:
        self._servers.append(await asyncio.start_server(self._rig, "127.0.0.1", port))

    async def _rig(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rig = self.conns
        self.conns += 1
        await asyncio.sleep(random.random())  # spread the rigs over the second
        seq = 0
        start = time.monotonic()
        with contextlib.suppress(OSError):
            while not self.stop.is_set():
                seq += 1
                writer.write(frame(rig, seq))
                await writer.drain()
                self.sent += 1
                await asyncio.sleep(max(0.0, start + seq - time.monotonic()))
        writer.close()

    async def aclose(self) -> None:
        self.stop.set()
        for server in self._servers:
            server.close()
        await asyncio.sleep(1.5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


async def stored(db_url: str) -> tuple[int, int, float]:
    """(distinct (source, number) pairs, rows, points) of the rigs' frames in the database."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(DISTINCT (source_id, value_num)) AS d, count(*) AS n "
            "FROM points_all WHERE code = '0104'"
        )
        points = await conn.fetchval("SELECT COALESCE(sum(point_count), 0) FROM sources")
    except asyncpg.UndefinedTableError:
        return 0, 0, 0
    finally:
        await conn.close()
    return int(row["d"]), int(row["n"]), float(points)


class Fleet:
    def __init__(self, tmp: Path, cluster: NatsCluster, db_url: str, rigs: int, ports: list[int]) -> None:
        self.tmp = tmp
        self.cluster = cluster
        self.db_url = db_url
        self.rigs = rigs
        self.ports = ports
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "WITS_DATA_DIR": str(tmp / "data")}
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.cpu: dict[str, float] = {}
        self.worker_lines: list[str] = []

    async def spawn(self, name: str, *args: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        try:
            self.procs[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "witskit", *args, env=self.env, stdout=log, stderr=log, cwd=self.tmp
            )
        finally:
            log.close()

    async def start_edges(self) -> None:
        hosts = self.cluster.url_hosts
        for k in range(EDGES):
            count = self.rigs // EDGES + (1 if k < self.rigs % EDGES else 0)
            plan = {
                "sources": [
                    {"url": f"tcp://127.0.0.1:{self.ports[k]}", "name": f"e{k}-rig{j:04d}"}
                    for j in range(count)
                ],
                "sinks": [{"url": f"nats://{hosts}/bench?stream=BENCH&edge=edge{k}&replicas=3"}],
                "spool": {"dir": str(self.tmp / f"spool-{k}"), "fsync": "interval"},
            }
            path = self.tmp / f"edge-{k}.yaml"
            path.write_text(yaml.safe_dump(plan))
            await self.spawn(f"edge-{k}", "stream", "--config", str(path), "--format", "table")

    async def start_workers(self, generation: int) -> None:
        plan = {
            "sources": [
                {"url": f"nats://{self.cluster.url_hosts}/bench.>?stream=BENCH&durable=central&replicas=3"}
            ],
            "sinks": [{"url": self.db_url}],
        }
        path = self.tmp / "central.yaml"
        path.write_text(yaml.safe_dump(plan))
        for n in range(WORKERS):
            await self.spawn(
                f"worker-{generation}-{n}", "worker", "--config", str(path), "--name", f"w{generation}{n}"
            )

    async def stop(self, prefix: str) -> None:
        for name, proc in list(self.procs.items()):
            if name.startswith(prefix) and proc.returncode is None:
                self.cpu[name] = cpu_seconds(proc.pid)
                proc.send_signal(signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            if name.startswith(prefix):
                try:
                    async with asyncio.timeout(60):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

    def latency_lines(self, generation: int) -> list[str]:
        out = []
        for n in range(WORKERS):
            text = (self.tmp / f"worker-{generation}-{n}.log").read_text(errors="replace")
            out += [line.strip() for line in text.splitlines() if "receive-to-commit" in line]
        return out


class Backlog:
    """Samples, every second, what waits for the workers in the stream (the consumer's pending
    plus unacknowledged messages): near 0 while the centre waits for the edges, high while the
    edges wait for the centre."""

    def __init__(self, servers: list[str], *, trace: bool = False) -> None:
        self.servers = servers
        self.trace = trace
        self.t0 = time.monotonic()
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        import nats

        nc = await nats.connect(servers=self.servers, connect_timeout=2)
        try:
            js = nc.jetstream(timeout=2)
            while True:
                with contextlib.suppress(Exception):
                    info = await js.consumer_info("BENCH", "central")
                    self.samples.append(int(info.num_pending or 0) + int(info.num_ack_pending or 0))
                    if self.trace:
                        last = (await js.stream_info("BENCH")).state.last_seq
                        print(
                            f"  {time.monotonic() - self.t0:5.1f} s: {info.num_pending} messages not yet "
                            f"fetched, {info.num_ack_pending} fetched and not acknowledged; stream "
                            f"sequence {last}, acknowledged up to {info.ack_floor.stream_seq}",
                            flush=True,
                        )
                await asyncio.sleep(1.0)
        finally:
            await nc.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> str:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if not self.samples:
            return "no sample"
        mean = sum(self.samples) / len(self.samples)
        return f"max {max(self.samples):,}, mean {mean:,.0f} over {len(self.samples)} samples"


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every CPU of the machine so far (/proc/stat's first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


async def wait_for(db_url: str, target: int, timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until ``target`` distinct frames are stored (None: not within ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        distinct, _, _ = await stored(db_url)
        if distinct >= target:
            return time.monotonic() - start
        await asyncio.sleep(interval)
    return None


async def run(
    tmp: Path,
    cluster: NatsCluster,
    db_url: str,
    rigs: int,
    seconds: float,
    outage: float,
    *,
    trace: bool = False,
) -> None:
    rig_server = Rigs()
    ports = free_ports(EDGES)
    for port in ports:
        await rig_server.serve(port)
    fleet = Fleet(tmp, cluster, db_url, rigs, ports)
    t0 = time.monotonic()
    try:
        await fleet.start_workers(0)
        await fleet.start_edges()
        print(
            f"fleet: {rigs} rigs x 1 Hz x {ITEMS} items -> {EDGES} edges -> 3 NATS nodes -> "
            f"{WORKERS} workers -> PostgreSQL"
        )
        # Warm-up: every rig connected, the stream made, the first batches through; then the
        # workers measured are new ones, over the live phase only.
        await asyncio.sleep(WARMUP)
        # The new workers start (a process start, imports, the consumer bound) while the old ones
        # still consume, as an operator would roll workers over: stopping first left the stream
        # unread for the new processes' start, seconds that made the live p99 a measure of that.
        await fleet.start_workers(1)
        await asyncio.sleep(OVERLAP)
        await fleet.stop("worker-0")
        before_sent = rig_server.sent
        before_distinct, _, before_points = await stored(db_url)
        await asyncio.sleep(seconds)
        live_sent = rig_server.sent - before_sent
        live_distinct, _, live_points = await stored(db_url)
        await fleet.stop("worker-1")
        print(
            f"live {seconds:.0f} s: {live_sent} frames sent, {live_distinct - before_distinct} stored, "
            f"{(live_points - before_points) / seconds:,.0f} points/s"
        )
        for line in fleet.latency_lines(1):
            print(f"  {line}")
        await fleet.start_workers(2)
        await asyncio.sleep(5)
        cluster.stop()
        await asyncio.sleep(outage)
        for i in range(cluster.size):
            cluster.start_node(i)
        sent_at_restart = rig_server.sent
        busy_at_restart = machine_busy()
        distinct_at_restart, _, _ = await stored(db_url)
        backlog = sent_at_restart - distinct_at_restart
        backlog_seen = Backlog(cluster.live_servers, trace=trace)
        backlog_seen.start()
        resumed = await wait_for(db_url, distinct_at_restart + 1, WAIT, interval=0.2)
        distinct_at_resume, _, _ = await stored(db_url)
        took = await wait_for(db_url, sent_at_restart, WAIT, interval=0.2)
        in_stream = await backlog_seen.stop()
        busy = machine_busy()
        live_rate = rigs  # frames/s
        if resumed is not None:
            print(
                f"outage {outage:.0f} s: {backlog} frames waited in the edges' spools; the first commit came "
                f"{resumed:.1f} s after the cluster restarted (nodes up, leaders elected, clients back)"
            )
        if took is None:
            print(f"catch-up: the {backlog} frames of a {outage:.0f} s outage not stored within {WAIT:.0f} s")
        elif sent_at_restart - distinct_at_resume <= 0 or took < 0.5:
            print(
                f"catch-up: the whole backlog ({backlog} frames) was in at the first look "
                "after the first commit"
            )
        else:
            rate = (sent_at_restart - distinct_at_resume) / took  # timed from the first commit on
            print(
                f"catch-up: the rest of the backlog ({sent_at_restart - distinct_at_resume} frames) "
                f"drained in {took:.1f} s = {rate:,.0f} frames/s while {live_rate} live frames/s went on: "
                f"{rate / live_rate:.1f}x the live rate"
            )
        print(f"  waiting in the stream for the workers during the catch-up: {in_stream}")
        spent, span = busy[0] - busy_at_restart[0], busy[1] - busy_at_restart[1]
        if span > 0:
            print(
                f"  the machine's CPU from the restart to the backlog stored: {spent / span:.0%} busy "
                f"({os.cpu_count()} cores; every process on it, PostgreSQL included)"
            )
        await rig_server.aclose()
        total = rig_server.sent
        await wait_for(db_url, total, WAIT)
        distinct, rows, points = await stored(db_url)
        elapsed = time.monotonic() - t0
        print(
            f"totals: sent {total}, committed {distinct}, lost {total - distinct}, "
            f"duplicated {rows - distinct}; {points:,.0f} points stored"
        )
        for name, proc in fleet.procs.items():
            if proc.returncode is None:
                fleet.cpu[name] = cpu_seconds(proc.pid)
        for i, proc in enumerate(cluster.procs):
            if proc is not None:
                fleet.cpu[f"nats-{i}"] = cpu_seconds(proc.pid)
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        fleet.cpu["rigs (this process)"] = usage.ru_utime + usage.ru_stime
        print(f"CPU seconds over {elapsed:.0f} s (per core-second of the run in brackets):")
        for name, cpu in sorted(fleet.cpu.items()):
            print(f"  {name:22s} {cpu:7.1f} s  ({cpu / elapsed:.2f})")
        edge_cpu = sum(c for n, c in fleet.cpu.items() if n.startswith("edge"))
        worker_cpu = sum(c for n, c in fleet.cpu.items() if n.startswith("worker"))
        print(
            f"per core: an edge ~{total / max(edge_cpu, 1e-9):,.0f} frames per CPU second, "
            f"a worker ~{total / max(worker_cpu, 1e-9):,.0f} frames per CPU second"
        )
    finally:
        await fleet.stop("edge")
        await fleet.stop("worker")
        cluster.stop()
        with contextlib.suppress(Exception):
            await rig_server.aclose()
        for line in fleet.latency_lines(2):
            print(f"  (over the outage) {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 rigs, 20 s live, 10 s outage")
    parser.add_argument("--rigs", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--outage", type=float, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="copy the processes' logs here at the end")
    parser.add_argument(
        "--trace", action="store_true", help="print the stream and its consumer each second of the catch-up"
    )
    args = parser.parse_args()
    rigs = args.rigs or (100 if args.quick else 1000)
    seconds = args.seconds or (20.0 if args.quick else 120.0)
    outage = args.outage or (10.0 if args.quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="witskit-bench-fleet-") as tmp_text:
        tmp = Path(tmp_text)
        cluster = NatsCluster(tmp / "nats", 3)
        cluster.start()
        try:
            with temporary_database("postgresql", admin_url("postgresql")) as db_url:
                asyncio.run(run(tmp, cluster, db_url, rigs, seconds, outage, trace=args.trace))
        finally:
            cluster.stop()
            if args.keep is not None:
                import shutil

                args.keep.mkdir(parents=True, exist_ok=True)
                for log in tmp.glob("*.log"):
                    shutil.copy(log, args.keep / log.name)


if __name__ == "__main__":
    main()
