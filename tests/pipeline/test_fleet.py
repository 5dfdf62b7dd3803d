"""A fleet end to end: simulated rigs -> 2 edges -> a 3-node JetStream cluster -> 2 workers -> PostgreSQL.

Every scenario runs the real processes (``witskit stream --config edge.yaml`` and ``witskit worker
--config central.yaml``, made from ``examples/fleet/`` with this run's ports) while a fault
happens, and ends with every frame the rigs sent stored exactly once, counted by the sequence
number each rig's record 1 carries (item 0104), read back from the database's raw frames.

The rigs (:class:`~witskit.sim.server.RigServer`, 3 per edge, ``RATE`` Hz) serve a fixed number of
record-1 frames per connection and close; the edges read them with ``reconnect=0``, so each rig
sends one contiguous run of sequence numbers per edge process, and an edge exits once its rigs are
done and its spool is acknowledged by the cluster. A scenario is over (:func:`settled`) when every
edge has exited and the shared consumer has nothing pending or unacknowledged: only then are the
frames counted, so no scenario guesses how long the pipeline takes under load. PostgreSQL is
never stopped (it is shared): its outage is a TCP proxy on loopback between the workers and the
server, which drops every connection and refuses new ones for 20 s.

To keep the module short, the scenarios that mostly wait run in background threads
(:class:`Lane`, each with its own event loop) while the others run: each node fault (every node
down 30 s; one node killed) on a 3-node cluster of its own; the database cut (20 s) then
the worker kill, both through a database proxy, on the module's cluster, whose nodes no scenario
there stops. Each scenario still has its own test, which reports that scenario's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
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
#: Record-1 frames per second and rig: a scenario's rig sessions last ``frames / RATE`` seconds.
RATE = 10.0
#: The consumer's ack wait in the tests: short, so a dead worker's messages come back soon.
ACK_WAIT = 3
_SEQ = re.compile(rb"(?:^|[\r\n])0104(\d+)")
#: What ``witskit stream`` says when it exits with frames its sinks have not taken.
_LEFT = re.compile(r"\b[1-9]\d* frames wait in the spool")


def frames_for(seconds: float) -> int:
    """Frames per rig session for a session of ``seconds``."""
    return int(seconds * RATE)


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

    async def drained(self) -> bool:
        """True when the shared consumer has nothing left: every message delivered and acknowledged
        (a worker acknowledges after its commit, so everything published is in the database)."""
        import nats

        try:
            nc = await nats.connect(
                servers=self.cluster.live_servers,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )
        except Exception:
            return False  # a node restarting: ask again
        try:
            info = await nc.jetstream(timeout=2).consumer_info(self.stream, "central")
        except Exception:
            return False
        finally:
            await nc.close()
        return not info.num_pending and not info.num_ack_pending

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
async def fleet(
    tag: str,
    cluster: NatsCluster,
    db_url: str,
    tmp: Path,
    frames: int,
    *,
    worker0_url: str | None = None,
    worker1_url: str | None = None,
) -> AsyncIterator[Fleet]:
    """Rigs, 2 workers (through ``worker<n>_url`` when given) and 2 edges, stopped on the way out."""
    f = Fleet(f"{tag}-{uuid.uuid4().hex[:6]}", cluster, db_url, tmp, frames)
    try:
        await f.start_rigs()
        await f.start_worker(0, worker0_url)
        await f.start_worker(1, worker1_url)
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


def summary(f: Fleet, got: dict[str, Counter[int]]) -> dict[str, list[tuple[int, int]]]:
    """Per rig of ``f``: the runs of sequence numbers in ``got`` (for failure messages)."""
    return {n: runs(got.get(n, Counter())) for edge in range(2) for n in f.names(edge)}


async def settled(f: Fleet, timeout: float = 90.0) -> dict[str, Counter[int]]:
    """Wait until every edge has exited (its rigs done, its spool acknowledged by the stream) and
    the consumer has nothing pending nor unacknowledged; then what the database holds.

    Nothing is counted before that, so a slow pipeline (a loaded machine) is waited for, not
    mistaken for a loss; a frame lost or stored twice shows all the same.
    """
    try:
        async with asyncio.timeout(timeout):
            for proc in f.edges.values():
                await proc.wait()
    except TimeoutError:
        got = await f.stored()
        pytest.fail(f"the edges did not finish within {timeout} s: {summary(f, got)}\n{f.logs()}")
    # 2: a source ended and reconnect=0 (the rig closed after its session), as expected here.
    codes = {edge: proc.returncode for edge, proc in f.edges.items()}
    assert set(codes.values()) <= {0, 2}, f"edge exit codes {codes}\n{f.logs()}"
    left = [p.name for p in f.tmp.glob("edge-*.log") if _LEFT.search(p.read_text(errors="replace"))]
    assert not left, f"an edge exited with frames in its spool: {left}\n{f.logs()}"
    try:
        await until(f.drained, timeout=timeout, interval=0.5)
    except TimeoutError:
        got = await f.stored()
        pytest.fail(f"the consumer still has messages after {timeout} s: {summary(f, got)}\n{f.logs()}")
    return await f.stored()


async def exactly_once(f: Fleet, timeout: float = 90.0) -> dict[str, Counter[int]]:
    """Once :func:`settled`: every rig's one session of FRAMES numbers stored, each exactly once."""
    got = await settled(f, timeout)
    for edge in range(2):
        for name in f.names(edge):
            counts = got.get(name, Counter())
            twice = sorted(seq for seq, n in counts.items() if n > 1)
            assert not twice, f"{name}: stored more than once: {twice[:20]}"
            assert counts, f"{name}: nothing stored\n{f.logs()}"
            assert runs(counts) == [(min(counts), min(counts) + f.frames - 1)], (
                f"{name}: {runs(counts)} (want one run of {f.frames})\n{f.logs()}"
            )
    return got


async def during(
    f: Fleet, fault: Callable[[], Awaitable[None]], *, edges: tuple[int, ...] = (0, 1), at_least: int = 3
) -> None:
    """Wait until every rig of ``edges`` has ``at_least`` frames in the database, then run ``fault``."""
    names = [n for edge in edges for n in f.names(edge)]

    async def flowing() -> bool:
        got = await f.stored()
        return all(len(got.get(n, ())) >= at_least for n in names)

    try:
        await until(flowing, timeout=60, interval=0.3)
    except TimeoutError:
        pytest.fail(f"frames did not reach the database within 60 s\n{f.logs()}")
    await fault()


async def _proxy_to(db_url: str) -> tuple[Proxy, str]:
    """A started :class:`Proxy` to the database of ``db_url``, and the URL through it."""
    from urllib.parse import urlsplit

    parts = urlsplit(db_url)
    proxy = Proxy(parts.port or 5432)
    await proxy.start()
    user = parts.netloc.rpartition("@")[0]
    return proxy, parts._replace(netloc=f"{user}@127.0.0.1:{proxy.port}").geturl()


# -- the scenarios ------------------------------------------------------------------------------


async def every_node_down_for_30_s(cluster: NatsCluster, pg_url: str, tmp: Path) -> None:
    # The rigs send for 40 s: before, through and after the 30 s without any node.
    async with fleet("alldown", cluster, pg_url, tmp, frames_for(40)) as f:

        async def all_down() -> None:
            cluster.stop()
            await asyncio.sleep(30)
            for i in range(cluster.size):
                cluster.start_node(i)
            await cluster.wait_ready()

        await during(f, all_down)
        await exactly_once(f, timeout=120)


async def node_killed_and_restarted(cluster: NatsCluster, pg_url: str, tmp: Path) -> None:
    async with fleet("node", cluster, pg_url, tmp, frames_for(10)) as f:

        async def kill_one() -> None:
            cluster.kill(1)
            await asyncio.sleep(4)
            cluster.start_node(1)

        await during(f, kill_one)
        await exactly_once(f)
        await cluster.wait_ready()


async def database_cut_for_20_s(cluster: NatsCluster, pg_url: str, tmp: Path) -> None:
    proxy, proxied = await _proxy_to(pg_url)
    try:
        # The rigs send for 10 s, from before the cut into it: the edges are not affected (they
        # publish to the cluster); the workers meet the cut with frames to write, and write them
        # (and those that came meanwhile) once the database is back.
        async with fleet(
            "pgcut", cluster, pg_url, tmp, frames_for(10), worker0_url=proxied, worker1_url=proxied
        ) as f:

            async def cut() -> None:
                await proxy.cut()
                await asyncio.sleep(20)
                await proxy.start()  # same port

            await during(f, cut)
            await exactly_once(f, timeout=120)
    finally:
        await proxy.aclose()


async def worker_killed_mid_batch(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    """Worker 0 reaches the database through a proxy that stalls: its next batch hangs in its
    commit, fetched and unacknowledged, when it is killed; worker 1 gets those messages again."""
    proxy, proxied = await _proxy_to(pg_url)
    try:
        async with fleet("wkill", cluster, pg_url, tmp_path, frames_for(10), worker0_url=proxied) as f:

            async def kill_worker() -> None:
                proxy.flowing.clear()
                await asyncio.sleep(3)  # worker 0 fetches a batch and waits on its commit
                await f.kill(f.workers[0])
                proxy.flowing.set()

            await during(f, kill_worker)
            await exactly_once(f)
            await f.kill(f.workers[1], signal.SIGTERM)  # it prints its counts as it stops
            counts = re.search(r"redelivered (\d+)", (tmp_path / "worker-1.log").read_text())
            assert counts is not None, f.logs()
            assert int(counts.group(1)) > 0, f.logs()
    finally:
        await proxy.aclose()


class Lane(threading.Thread):
    """Scenarios run one after the other in a thread of their own (own event loop), on ``cluster``
    or on a 3-node cluster the lane starts (in ``base``) and stops; a test gets its result with
    :meth:`result`."""

    def __init__(
        self,
        steps: list[tuple[str, Callable[[NatsCluster, str, Path], Coroutine[Any, Any, None]]]],
        pg_url: str,
        base: Path,
        cluster: NatsCluster | None = None,
    ) -> None:
        super().__init__(name=f"fleet-lane-{steps[0][0]}", daemon=True)
        self.steps = steps
        self.pg_url = pg_url
        self.base = base
        self.cluster = cluster
        self.errors: dict[str, BaseException | None] = {}
        self.done = {name: threading.Event() for name, _ in steps}

    def run(self) -> None:
        try:
            with contextlib.ExitStack() as stack:
                cluster = self.cluster or stack.enter_context(NatsCluster(self.base / "nats", 3))
                for name, step in self.steps:
                    tmp = self.base / name
                    tmp.mkdir()
                    try:
                        asyncio.run(step(cluster, self.pg_url, tmp))
                        self.errors[name] = None
                    except BaseException as exc:  # handed to the test that reports it
                        self.errors[name] = exc
                    finally:
                        self.done[name].set()
        except BaseException as exc:  # the lane's cluster would not start
            for name, event in self.done.items():
                if not event.is_set():
                    self.errors[name] = exc
                    event.set()

    async def result(self, name: str, timeout: float = 280.0) -> None:
        """Wait for scenario ``name`` and re-raise its failure, if any."""
        if not await asyncio.to_thread(self.done[name].wait, timeout):
            pytest.fail(f"{name} did not end within {timeout} s")
        error = self.errors[name]
        if error is not None:
            raise error


#: The scenarios that run in the background, by test: (lane, scenario). Each node fault has a
#: cluster of its own; the scenarios with a database proxy use the module's (none of its nodes
#: is ever stopped).
_BACKGROUND: dict[str, tuple[str, Callable[[NatsCluster, str, Path], Coroutine[Any, Any, None]]]] = {
    "test_every_nats_node_down_for_30_s": ("all-nodes", every_node_down_for_30_s),
    "test_nats_node_killed_and_restarted": ("one-node", node_killed_and_restarted),
    "test_database_cut_for_20_s": ("proxied", database_cut_for_20_s),
    "test_worker_killed_mid_batch": ("proxied", worker_killed_mid_batch),
}


@pytest.fixture(scope="module", autouse=True)
def lanes(
    request: pytest.FixtureRequest,
    cluster: NatsCluster,
    pg_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Lane]]:
    """Start the background scenarios whose tests are selected, as the module starts."""
    selected = {
        item.name for item in request.session.items if getattr(item, "module", None) is request.module
    }
    steps: dict[str, list[tuple[str, Any]]] = {}
    for test, (lane, scenario) in _BACKGROUND.items():
        if test in selected:
            steps.setdefault(lane, []).append((test, scenario))
    started: dict[str, Lane] = {}
    for lane, lane_steps in steps.items():
        base = tmp_path_factory.mktemp(f"lane-{lane}")
        started[lane] = Lane(lane_steps, pg_url, base, cluster if lane == "proxied" else None)
        started[lane].start()
    by_test = {test: started[lane] for test, (lane, _) in _BACKGROUND.items() if lane in started}
    yield by_test
    for thread in started.values():
        thread.join(300)


# -- the tests --------------------------------------------------------------------------------


async def test_edge_killed_and_restarted(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    frames = frames_for(6)
    async with fleet("ekill", cluster, pg_url, tmp_path, frames) as f:

        async def kill_edge() -> None:
            await f.kill(f.edges[0])
            await f.start_edge(0)  # same spool: what was spooled and not acknowledged is sent now

        # Every rig of edge 0 has 5 frames stored before the kill: its first run has at least 5.
        await during(f, kill_edge, edges=(0,), at_least=5)
        got = await settled(f)
        for name in f.names(0):
            counts = got.get(name, Counter())
            twice = sorted(seq for seq, n in counts.items() if n > 1)
            assert not twice, f"{name}: stored more than once: {twice[:20]}"
            # Two runs: the killed edge's, whole up to the kill (the frames the kernel held unread
            # at the kill, and those due while no edge listened, are not sent again by a rig), and
            # the restarted edge's, whole: FRAMES numbers. The gap between them is at least the
            # restart (a Python process starting: far more than one frame at RATE).
            assert len(runs(counts)) == 2, f"{name}: {runs(counts)}\n{f.logs()}"
            first, second = runs(counts)
            assert second[1] - second[0] + 1 == frames, f"{name}: {runs(counts)}\n{f.logs()}"
            assert first[1] - first[0] + 1 >= 5, f"{name}: {runs(counts)}"
        for name in f.names(1):  # the other edge was not touched: everything, once
            counts = got.get(name, Counter())
            assert counts, f"{name}: nothing stored"
            assert max(counts.values()) == 1, f"{name}: {counts}"
            assert runs(counts) == [(min(counts), min(counts) + frames - 1)], f"{name}: {runs(counts)}"


async def test_message_published_twice(cluster: NatsCluster, pg_url: str, tmp_path: Path) -> None:
    """The same message twice with one id (the stream drops it), and a copy with another id (past
    the duplicate window: the store's frame key skips it)."""
    import nats

    from witskit.pipeline.envelope import HEADER_MSG_ID, encode_envelope
    from witskit.protocol import FrameParser, WITSFrame

    async with fleet("twice", cluster, pg_url, tmp_path, frames_for(2)) as f:
        parser = FrameParser(source=f"{f.tag}-extra")
        (frame,) = [e for e in parser.feed(b"&&\r\n01047\r\n0108100.5\r\n!!\r\n") if isinstance(e, WITSFrame)]
        headers, body = encode_envelope(frame, edge="hand", sequence=1)
        nc = await nats.connect(servers=cluster.live_servers)
        try:
            js = nc.jetstream()
            await until(f.stored, timeout=30, interval=0.3)  # the stream exists by then
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


# The background scenarios (see :class:`Lane`): last, so the tests above run meanwhile.


async def test_database_cut_for_20_s(lanes: dict[str, Lane]) -> None:
    await lanes["test_database_cut_for_20_s"].result("test_database_cut_for_20_s")


async def test_worker_killed_mid_batch(lanes: dict[str, Lane]) -> None:
    await lanes["test_worker_killed_mid_batch"].result("test_worker_killed_mid_batch")


async def test_every_nats_node_down_for_30_s(lanes: dict[str, Lane]) -> None:
    await lanes["test_every_nats_node_down_for_30_s"].result("test_every_nats_node_down_for_30_s")


async def test_nats_node_killed_and_restarted(lanes: dict[str, Lane]) -> None:
    await lanes["test_nats_node_killed_and_restarted"].result("test_nats_node_killed_and_restarted")
