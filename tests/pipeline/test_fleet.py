"""A fleet end to end: simulated rigs -> 2 edges -> a 3-node JetStream cluster -> 2 workers -> PostgreSQL.

Every scenario runs the real processes (``witskit stream --config edge.yaml`` and ``witskit worker
--config central.yaml``, made from ``examples/fleet/`` with this run's ports) while a fault
happens, and ends with every frame the rigs sent stored exactly once, counted by the sequence
number each rig's record 1 carries (item 0104), read back from the database's raw frames.

The rigs (:class:`~witskit.sim.server.RigServer`, 3 per edge, 5 Hz) serve ``FRAMES`` record-1
frames per connection and close; the edges read them with ``reconnect=0``, so each rig sends one
contiguous run of sequence numbers per edge process. PostgreSQL is never stopped (it is shared):
its outage is a TCP proxy on loopback between the workers and the server, which drops every
connection and refuses new ones for 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.commands import clean_env
from support.databases import admin_url, temporary_database
from support.natscluster import NatsCluster
from support.waiting import until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "fleet"
RIGS_PER_EDGE = 3
RATE = 5.0
#: The stream name and the message ack wait of the tests: short, so a dead worker's messages come back soon.
ACK_WAIT = 3
_SEQ = re.compile(rb"(?:^|[\r\n])0104(\d+)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), 3) as c:
        yield c


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with temporary_database("postgresql", admin_url("postgresql")) as url:
        yield url


class Proxy:
    """A TCP forwarder on 127.0.0.1 to ``port`` that can be cut (connections dropped, refused)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self.flowing.wait()  # stalled: the bytes wait here, the peers hang
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def cut(self) -> None:
        """Stop listening and drop every connection (both ways), as a dead server would."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        await self.cut()


class Fleet:
    """One scenario's processes: rigs in this process, edges and workers as ``witskit`` commands."""

    def __init__(self, tag: str, cluster: NatsCluster, db_url: str, tmp: Path, frames: int) -> None:
        self.tag = tag
        self.cluster = cluster
        self.db_url = db_url
        self.tmp = tmp
        self.frames = frames
        self.stream = tag.upper().replace("-", "_")
        self.rigs: list[Any] = []
        self.edges: dict[int, asyncio.subprocess.Process] = {}
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self.env = clean_env(PYTHONPATH=str(ROOT / "src"), WITS_DATA_DIR=str(tmp / "data"))

    def sink_url(self, edge: int) -> str:
        return (
            f"nats://{self.cluster.url_hosts}/{self.tag}?stream={self.stream}&edge={self.tag}-e{edge}"
            "&replicas=3&timeout=3&duplicate_window=120&max_bytes=67108864"
        )

    def source_url(self) -> str:
        return (
            f"nats://{self.cluster.url_hosts}/{self.tag}.>?stream={self.stream}&durable=central"
            f"&ack_wait={ACK_WAIT}&batch=200&replicas=3&timeout=3&duplicate_window=120&max_bytes=67108864"
        )

    def names(self, edge: int) -> list[str]:
        return [f"{self.tag}-e{edge}-rig{j}" for j in range(RIGS_PER_EDGE)]

    async def start_rigs(self) -> None:
        from witskit.sim.server import RigServer

        for edge in range(2):
            rigs = RigServer(rigs=RIGS_PER_EDGE, seed=edge * 10, rate=RATE, records=(1,), frames=self.frames)
            await rigs.serve_tcp("127.0.0.1", 0)
            self.rigs.append(rigs)

    def edge_file(self, edge: int) -> Path:
        plan = yaml.safe_load((EXAMPLES / "edge.yaml").read_text())
        plan["sources"] = [
            {"url": f"tcp://127.0.0.1:{port}?reconnect=0", "name": name}
            for port, name in zip(self.rigs[edge].ports, self.names(edge), strict=True)
        ]
        plan["sinks"][0]["url"] = self.sink_url(edge)
        plan["spool"]["dir"] = str(self.tmp / f"spool-e{edge}")
        path = self.tmp / f"edge-{edge}.yaml"
        path.write_text(yaml.safe_dump(plan))
        return path

    def central_file(self) -> Path:
        plan = yaml.safe_load((EXAMPLES / "central.yaml").read_text())
        plan["sources"][0]["url"] = self.source_url()
        plan["sinks"][0]["url"] = self.db_url
        path = self.tmp / "central.yaml"
        path.write_text(yaml.safe_dump(plan))
        return path

    async def _spawn(self, *args: str, log: str) -> asyncio.subprocess.Process:
        out = (self.tmp / log).open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "witskit", *args, env=self.env, stdout=out, stderr=out, cwd=self.tmp
            )
        finally:
            out.close()

    async def start_edge(self, edge: int) -> None:
        self.edges[edge] = await self._spawn(
            "stream", "--config", str(self.edge_file(edge)), "--format", "jsonl", log=f"edge-{edge}.log"
        )

    async def start_worker(self, n: int, db_url: str | None = None) -> None:
        path = self.central_file()
        if db_url is not None:
            plan = yaml.safe_load(path.read_text())
            plan["sinks"][0]["url"] = db_url
            path = self.tmp / f"central-{n}.yaml"
            path.write_text(yaml.safe_dump(plan))
        self.workers[n] = await self._spawn(
            "worker", "--config", str(path), "--name", f"{self.tag}-w{n}", log=f"worker-{n}.log"
        )

    @staticmethod
    async def kill(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        async with asyncio.timeout(30):
            await proc.wait()

    async def stored(self) -> dict[str, Counter[int]]:
        """Per rig: how many times each record-1 sequence number is in the database."""
        import asyncpg

        conn = await asyncpg.connect(self.db_url)
        try:
            rows = await conn.fetch(
                "SELECT s.name, f.raw FROM frames f JOIN sources s ON s.id = f.source_id "
                "WHERE s.name LIKE $1",
                f"{self.tag}-%",
            )
        except asyncpg.UndefinedTableError:
            return {}
        finally:
            await conn.close()
        out: dict[str, Counter[int]] = {}
        for name, raw in rows:
            for match in _SEQ.finditer(bytes(raw)):
                out.setdefault(name, Counter())[int(match.group(1))] += 1
        return out

    async def consumer_redelivered(self) -> int:
        """Messages the shared consumer delivered more than once (JetStream's own count)."""
        import nats

        nc = await nats.connect(servers=self.cluster.live_servers)
        try:
            info = await nc.jetstream().consumer_info(self.stream, "central")
        finally:
            await nc.close()
        return int(info.num_redelivered or 0)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.tmp.glob("*.log"))
        )

    async def aclose(self) -> None:
        for proc in [*self.edges.values(), *self.workers.values()]:
            if proc.returncode is None:
                await self.kill(proc, signal.SIGTERM)
        for rigs in self.rigs:
            await rigs.aclose()


@contextlib.asynccontextmanager
async def fleet(tag: str, cluster: NatsCluster, db_url: str, tmp: Path, frames: int) -> AsyncIterator[Fleet]:
    f = Fleet(f"{tag}-{uuid.uuid4().hex[:6]}", cluster, db_url, tmp, frames)
    try:
        await f.start_rigs()
        await f.start_worker(0)
        await f.start_worker(1)
        await f.start_edge(0)
        await f.start_edge(1)
        yield f
    finally:
        await f.aclose()


def runs(counts: Counter[int]) -> list[tuple[int, int]]:
    """Contiguous runs (first, last) of the sequence numbers in ``counts``."""
    out: list[tuple[int, int]] = []
    for seq in sorted(counts):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


async def exactly_once(f: Fleet, sessions: int = 1, timeout: float = 90.0) -> dict[str, Counter[int]]:
    """Wait until every rig's ``sessions`` runs of FRAMES numbers are stored; then assert each once."""
    names = [n for edge in range(2) for n in f.names(edge)]

    async def complete() -> dict[str, Counter[int]] | None:
        got = await f.stored()
        done = all(sum(1 for _ in got.get(n, ())) >= sessions * f.frames for n in names)
        return got if done else None

    try:
        got = await until(complete, timeout=timeout, interval=1.0)
    except TimeoutError:
        got = await f.stored()
        short = {n: (len(got.get(n, ())), runs(got.get(n, Counter()))) for n in names}
        pytest.fail(f"not every frame arrived within {timeout} s: {short}\n{f.logs()}")
    await asyncio.sleep(ACK_WAIT + 2)  # a redelivery still in flight would show as a duplicate now
    got = await f.stored()
    for name in names:
        counts = got[name]
        twice = sorted(seq for seq, n in counts.items() if n > 1)
        assert not twice, f"{name}: stored more than once: {twice[:20]}"
        if sessions == 1:
            assert runs(counts) == [(min(counts), min(counts) + f.frames - 1)], f"{name}: {runs(counts)}"
    return got


async def during(f: Fleet, seconds: float, fault: Callable[[], Awaitable[None]]) -> None:
    """Wait until frames flow into the database, then run ``fault``."""

    async def flowing() -> bool:
        got = await f.stored()
        return sum(len(c) for c in got.values()) >= 6 * RIGS_PER_EDGE

    try:
        await until(flowing, timeout=30, interval=0.5)
    except TimeoutError:
        pytest.fail(f"no frame reached the database within 30 s\n{f.logs()}")
    await asyncio.sleep(seconds)
    await fault()


async def test_nats_node_killed_and_restarted(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    async with fleet("node", cluster, pg_url, tmp_path, frames=100) as f:

        async def kill_one() -> None:
            cluster.kill(1)
            await asyncio.sleep(4)
            cluster.start_node(1)

        await during(f, 1.0, kill_one)
        await exactly_once(f)
        await cluster.wait_ready()


async def test_every_nats_node_down_for_30_s(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    async with fleet("alldown", cluster, pg_url, tmp_path, frames=240) as f:

        async def all_down() -> None:
            cluster.stop()
            await asyncio.sleep(30)
            for i in range(cluster.size):
                cluster.start_node(i)
            await cluster.wait_ready()

        await during(f, 1.0, all_down)
        await exactly_once(f, timeout=120)


async def test_worker_killed_mid_batch(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    """Worker 0 reaches the database through a proxy that stalls: its next batch hangs in its
    commit, fetched and unacknowledged, when it is killed; worker 1 gets those messages again."""
    proxy, proxied = await _proxy_to(pg_url)
    f = Fleet(f"wkill-{uuid.uuid4().hex[:6]}", cluster, pg_url, tmp_path, frames=100)
    try:
        await f.start_rigs()
        await f.start_worker(0, proxied)
        await f.start_worker(1)
        await f.start_edge(0)
        await f.start_edge(1)

        async def kill_worker() -> None:
            proxy.flowing.clear()
            await asyncio.sleep(3)  # worker 0 fetches a batch and waits on its commit
            await f.kill(f.workers[0])
            proxy.flowing.set()

        await during(f, 1.0, kill_worker)
        await exactly_once(f)
        await f.kill(f.workers[1], signal.SIGTERM)  # it prints its counts as it stops
        counts = re.search(r"redelivered (\d+)", (tmp_path / "worker-1.log").read_text())
        assert counts is not None, f.logs()
        assert int(counts.group(1)) > 0, f.logs()
    finally:
        await f.aclose()
        await proxy.aclose()


async def _proxy_to(db_url: str) -> tuple[Proxy, str]:
    """A started :class:`Proxy` to the database of ``db_url``, and the URL through it."""
    from urllib.parse import urlsplit

    parts = urlsplit(db_url)
    proxy = Proxy(parts.port or 5432)
    await proxy.start()
    user = parts.netloc.rpartition("@")[0]
    return proxy, parts._replace(netloc=f"{user}@127.0.0.1:{proxy.port}").geturl()


async def test_database_cut_for_20_s(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    proxy, proxied = await _proxy_to(pg_url)
    f = Fleet(f"pgcut-{uuid.uuid4().hex[:6]}", cluster, pg_url, tmp_path, frames=200)
    try:
        await f.start_rigs()
        await f.start_worker(0, proxied)
        await f.start_worker(1, proxied)
        await f.start_edge(0)
        await f.start_edge(1)

        async def cut() -> None:
            await proxy.cut()
            await asyncio.sleep(20)
            await proxy.start()  # same port

        await during(f, 1.0, cut)
        await exactly_once(f, timeout=120)
    finally:
        await f.aclose()
        await proxy.aclose()


async def test_edge_killed_and_restarted(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    async with fleet("ekill", cluster, pg_url, tmp_path, frames=60) as f:

        async def kill_edge() -> None:
            await f.kill(f.edges[0])
            await f.start_edge(0)  # same spool: what was spooled and not acknowledged is sent now

        await during(f, 1.0, kill_edge)
        names = f.names(0)

        async def second_session() -> bool:
            got = await f.stored()
            return all(len(runs(got.get(n, Counter()))) >= 2 and len(got[n]) >= f.frames + 1 for n in names)

        await until(second_session, timeout=90, interval=1.0)
        await asyncio.sleep(ACK_WAIT + 2)
        got = await f.stored()
        for name in names:
            counts = got[name]
            assert max(counts.values()) == 1, (
                f"{name}: stored twice: {[s for s, n in counts.items() if n > 1]}"
            )
            # Two runs: the killed edge's, whole up to the kill (the frames the kernel held unread
            # at the kill, and those due while no edge listened, are not sent again by a rig), and
            # the restarted edge's, whole: FRAMES numbers.
            first, second = runs(counts)
            assert second[1] - second[0] + 1 == f.frames, f"{name}: {runs(counts)}"
            assert first[1] - first[0] + 1 >= 5, f"{name}: {runs(counts)}"
        for name in f.names(1):  # the other edge was not touched: everything, once
            counts = got[name]
            assert max(counts.values()) == 1
            assert runs(counts) == [(min(counts), min(counts) + f.frames - 1)]


async def test_message_published_twice(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    """The same message twice with one id (the stream drops it), and a copy with another id (past
    the duplicate window: the store's frame key skips it)."""
    import nats

    from witskit.pipeline.envelope import HEADER_MSG_ID, encode_envelope
    from witskit.protocol import FrameParser, WITSFrame

    async with fleet("twice", cluster, pg_url, tmp_path, frames=20) as f:
        parser = FrameParser(source=f"{f.tag}-extra")
        (frame,) = [e for e in parser.feed(b"&&\r\n01047\r\n0108100.5\r\n!!\r\n") if isinstance(e, WITSFrame)]
        headers, body = encode_envelope(frame, edge="hand", sequence=1)
        nc = await nats.connect(servers=cluster.live_servers)
        try:
            js = nc.jetstream()
            await until(f.stored, timeout=30, interval=0.5)  # the stream exists by then
            first = await js.publish(f"{f.tag}.extra", body, headers=dict(headers))
            again = await js.publish(f"{f.tag}.extra", body, headers=dict(headers))
            other = await js.publish(f"{f.tag}.extra", body, headers={**headers, HEADER_MSG_ID: "another-id"})
        finally:
            await nc.close()
        assert not first.duplicate
        assert again.duplicate
        assert not other.duplicate
        await exactly_once(f)
        got = await f.stored()
        assert got[f"{f.tag}-extra"] == Counter({7: 1})
