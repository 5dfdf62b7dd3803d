"""The central worker against a real JetStream node: bad messages, redelivery, its file, one SQLite writer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from support.commands import clean_env, run_witskit
from support.natscluster import NatsCluster
from support.waiting import until
from witskit.errors import UsageError
from witskit.pipeline.envelope import encode_bundle, encode_envelope
from witskit.pipeline.records import pack_frame
from witskit.pipeline.worker import Worker, worker_problems
from witskit.protocol import DecodedFrame, FrameParser, WITSDecoder, WITSFrame
from witskit.storage.errors import DatabaseUnavailable
from witskit.storage.fleet_status import FleetStatus
from witskit.storage.schema import frame_key
from witskit.storage.store import Store
from witskit.storage.writers import single_writer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    node = NatsCluster(tmp_path_factory.mktemp("nats"), 1)
    node.start()
    yield node
    node.stop()


def _frame(n: int, source: str = "rig-1") -> WITSFrame:
    parser = FrameParser(source=source)
    (frame,) = [
        e for e in parser.feed(b"&&\r\n0104%d\r\n0108%d.5\r\n!!\r\n" % (n, n)) if isinstance(e, WITSFrame)
    ]
    return frame


async def _stored(store: Store) -> list[int]:
    return sorted(int(row.value) for row in [r async for r in store.query(codes=["0104"])])


@pytest.mark.slow
async def test_bad_messages_are_counted_logged_once_and_terminated(
    node: NatsCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import nats

    store = await Store.open(f"sqlite:///{tmp_path / 'central.db'}")
    status = FleetStatus.open(f"sqlite:///{tmp_path / 'central.db'}")
    worker = Worker(
        f"nats://{node.url_hosts}/bad.>?stream=BAD&durable=central&replicas=1&batch=50", store, status=status
    )
    good = [encode_envelope(_frame(n), edge="e1", sequence=n) for n in range(1, 4)]
    headers, body = good[0]
    # A bundle (frames 4-6), and one whose second record is not a frame (7 and 8 are stored, the
    # message is terminated after their commit), and one cut short (refused whole).
    bundle = encode_bundle([(n, pack_frame(_frame(n))) for n in (4, 5, 6)], edge="e1")
    spoiled = encode_bundle(
        [(7, pack_frame(_frame(7))), (70, body[:11] + b"no frame here"), (8, pack_frame(_frame(8)))],
        edge="e1",
    )
    cut_headers, cut_body = encode_bundle([(n, pack_frame(_frame(n))) for n in (9, 10)], edge="e1")
    bad = [
        ({}, b"hello from another app"),  # foreign: no envelope header
        ({}, b"and again"),  # the same kind: counted, not logged again
        ({**headers, "WitsKit-Envelope": "3", "Nats-Msg-Id": "v"}, body),  # a newer envelope
        ({**headers, "Nats-Msg-Id": "t"}, body[:5]),  # truncated
        ({**headers, "Nats-Msg-Id": "n"}, body[:11] + b"no frame here"),  # a record without a frame
        ({"WitsKit-Envelope": "1"}, body),  # no edge or sequence header
    ]
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: worker.stats.connected, timeout=20)
        nc = await nats.connect(servers=node.live_servers)
        try:
            js = nc.jetstream()
            messages = [good[0], *bad[:3], good[1], bundle, *bad[3:], spoiled, good[2]]
            messages.append(({**cut_headers, "Nats-Msg-Id": "cut"}, cut_body[:-3]))
            for h, b in messages:
                await js.publish("bad.rig-1", b, headers=h or None)
        finally:
            await nc.close()
        await until(lambda: worker.stats.acked == 8 and sum(worker.stats.malformed.values()) == 8, timeout=20)
    finally:
        worker.stop()
        await task
    assert await _stored(store) == [1, 2, 3, 4, 5, 6, 7, 8]  # the good ones around the bad, none held back
    assert worker.stats.fetched == 8
    assert worker.stats.messages == 12
    (rig,) = await status.rigs()  # the fleet view: the rig, its edge, its last frame's lag
    await status.aclose()
    assert (rig.source, rig.edge, rig.worker) == ("rig-1", "e1", "witskit-worker")
    assert 0 <= rig.lag_seconds < 60
    assert worker.stats.malformed == {
        "foreign": 2,
        "version": 1,
        "truncated": 2,
        "not-a-frame": 2,
        "header": 1,
    }
    lines = [r.getMessage() for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(lines) == 5  # once per kind
    assert any("(foreign) on bad.rig-1, stream sequence 2" in line for line in lines)
    await store.aclose()
    nc = await nats.connect(servers=node.live_servers)
    try:
        info = await nc.jetstream().consumer_info("BAD", "central")
    finally:
        await nc.close()
    assert info.num_pending == 0
    assert info.num_ack_pending == 0


@pytest.mark.slow
async def test_any_worker_writes_the_key_the_edge_would(node: NatsCluster, tmp_path: Path) -> None:
    """One frame reaches the workers three times: published (worker 1 stores it), re-published
    under another message id (worker 2), and delivered to a worker that dies without acknowledging
    (redelivered to worker 2). One row, under the key the edge computes."""
    import nats

    db = f"sqlite:///{tmp_path / 'keys.db'}"
    url = f"nats://{node.url_hosts}/keys.>?stream=KEYS&durable=central&replicas=1&ack_wait=1"
    frame = _frame(42, source="rig-9")
    expected = frame_key(WITSDecoder().decode(frame))
    headers, body = encode_envelope(frame, edge="e9", sequence=7)
    nc = await nats.connect(servers=node.live_servers)
    js = nc.jetstream()
    try:
        for name in ("w1", "w2"):
            store = await Store.open(db)
            worker = Worker(url, store, name=name)
            task = asyncio.create_task(worker.run())
            try:
                await until(lambda w=worker: w.stats.connected, timeout=20)  # type: ignore[misc]
                if name == "w1":
                    await js.publish("keys.rig-9", body, headers=headers)
                    await until(lambda w=worker: w.stats.acked == 1, timeout=20)  # type: ignore[misc]
                    worker.stop()
                    await task
                    # A worker that takes the next copy and dies before its commit:
                    await js.publish("keys.rig-9", body, headers={**headers, "Nats-Msg-Id": "copy-1"})
                    dying = await js.pull_subscribe("keys.>", durable="central", stream="KEYS")
                    assert len(await dying.fetch(1, timeout=5)) == 1
                else:
                    await js.publish("keys.rig-9", body, headers={**headers, "Nats-Msg-Id": "copy-2"})
                    await until(lambda w=worker: w.stats.acked == 2, timeout=20)  # type: ignore[misc]
                    assert worker.stats.redelivered == 1
            finally:
                worker.stop()
                await task
                await store.aclose()
    finally:
        await nc.close()
    store = await Store.open(db)
    try:
        from sqlalchemy import text

        async with store._engine.connect() as conn:  # the key column itself
            keys = (await conn.execute(text("SELECT frame_key FROM frames"))).scalars().all()
    finally:
        await store.aclose()
    assert keys == [expected]


class _Flaky:
    """A store whose writes take a random while and sometimes fail (a transient database error),
    recording each write's start and commit in one log with the worker's acknowledgements."""

    def __init__(self, store: Store, log: list[tuple[str, frozenset[int]]], rng: random.Random) -> None:
        self.store = store
        self.log = log
        self.rng = rng
        self.fail_rate = 0.2
        self.worker: Worker | None = None
        #: Writes during which the worker fetched more: the next batch came while this one committed.
        self.overlapped = 0

    async def write(self, frames: Sequence[DecodedFrame]) -> int:
        seqs = frozenset(int(str(f.values[f.codes.index("0104")])) for f in frames)
        assert self.worker is not None
        before = self.worker.stats.fetched
        self.log.append(("write", seqs))
        await asyncio.sleep(self.rng.uniform(0, 0.15))
        if self.rng.random() < self.fail_rate:
            raise DatabaseUnavailable("injected: the database went away", url="sqlite://")
        count = await self.store.write(frames)
        self.log.append(("commit", seqs))
        self.overlapped += self.worker.stats.fetched > before
        return count


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
async def test_pipelined_acks_follow_their_commit_and_redelivery_adds_nothing(
    node: NatsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """A model check of the worker's bookkeeping with the next batch fetched while one commits:
    random commit times, injected commit failures (retried), acknowledgements lost at random
    (redelivered after ``ack_wait``), a worker stopped while its commit fails (its batch and its
    buffer redelivered to the next). Every acknowledgement comes after the commit of a write
    holding its frame; every frame is stored once; the consumer ends empty."""
    import nats
    from nats.aio.msg import Msg

    rng = random.Random(seed)
    log: list[tuple[str, frozenset[int]]] = []
    real_ack = Msg.ack

    async def ack(msg: Msg) -> None:
        seq = int(msg.headers["WitsKit-Spool-Seq"]) if msg.headers else -1
        log.append(("ack", frozenset({seq})))
        if rng.random() < 0.05:
            return  # lost on the way: JetStream redelivers it after ack_wait
        await real_ack(msg)

    monkeypatch.setattr(Msg, "ack", ack)
    stream = f"MODEL{seed}"
    url = f"nats://{node.url_hosts}/model{seed}.>?stream={stream}&durable=central&replicas=1&batch=40&ack_wait=1"
    db = f"sqlite:///{tmp_path / 'model.db'}"
    total = 400
    nc = await nats.connect(servers=node.live_servers)
    try:
        js = nc.jetstream()
        for phase in range(2):
            store = await Store.open(db)
            flaky = _Flaky(store, log, rng)
            worker = Worker(url, cast(Store, flaky), name=f"w{phase}")
            flaky.worker = worker
            task = asyncio.create_task(worker.run())
            try:
                await until(lambda w=worker: w.stats.connected, timeout=20)  # type: ignore[misc]
                if phase == 0:
                    for n in range(1, total + 1):  # in bursts, while the worker commits
                        headers, body = encode_envelope(_frame(n), edge="e1", sequence=n)
                        await js.publish(f"model{seed}.rig-1", body, headers=headers)
                        if n % 50 == 0:
                            await asyncio.sleep(rng.uniform(0, 0.3))
                    await until(lambda w=worker: w.stats.committed >= total // 2, timeout=60)  # type: ignore[misc]
                    flaky.fail_rate = 1.0  # the database goes away; the worker is stopped meanwhile
                    await asyncio.sleep(0.5)
                else:
                    flaky.fail_rate = 0.2
                    await until(lambda: _consumer_empty(js, stream), timeout=60)
            finally:
                worker.stop()
                await task
                await store.aclose()
            if phase == 0:
                assert flaky.overlapped > 0  # the next batch was fetched while one committed
    finally:
        await nc.close()
    committed: set[int] = set()
    for kind, seqs in log:
        if kind == "commit":
            committed |= seqs
        elif kind == "ack":
            assert seqs <= committed, f"acknowledged before its commit: {sorted(seqs)}"
    store = await Store.open(db)
    try:
        stored = await _stored(store)
    finally:
        await store.aclose()
    assert stored == list(range(1, total + 1))  # each once


async def _consumer_empty(js: Any, stream: str) -> bool:
    info = await js.consumer_info(stream, "central")
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"sources": [{"url": "tcp://h:1"}], "sinks": [{"url": "sqlite:///x.db"}]},
            "sources.0.url",
            "not a JetStream",
        ),
        (
            {"sources": [{"url": "nats://h/w.>?stream=S"}], "sinks": [{"url": "sqlite:///x.db"}]},
            "sources.0.url",
            "durable=NAME is required",
        ),
        (
            {"sources": [{"url": "nats://h/w.>?stream=S&durable=d"}], "sinks": [{"url": "jsonl://x.jsonl"}]},
            "sinks.0.url",
            "a worker writes a database",
        ),
        ({"sources": [{"url": "nats://h/w.>?stream=S&durable=d"}], "sinks": []}, "sinks", "not 0 sinks"),
        (
            {
                "sources": [{"url": "nats://h/w.>?stream=S&durable=d"}],
                "sinks": [{"url": "sqlite:///x.db"}],
                "spool": {},
            },
            "spool",
            "no spool",
        ),
    ],
)
def test_a_central_file_is_checked_whole(data: dict[str, object], field: str, message: str) -> None:
    problems = dict(worker_problems(data))
    assert field in problems
    assert message in problems[field]


def test_sqlite_takes_one_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    refused = r"SQLite takes one writer and process \d+ \(witskit worker\)"
    with single_writer(url, role="witskit worker"), pytest.raises(UsageError, match=refused):  # noqa: SIM117
        with single_writer(url, role="witskit worker"):
            pass
    with single_writer(url, role="witskit worker"):  # released: the next one may start
        pass
    with (
        single_writer("postgresql://u@h/db", role="witskit worker"),
        single_writer("postgresql://u@h/db", role="witskit worker"),
    ):
        pass  # a server database takes several


def test_the_second_sqlite_worker_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    central = tmp_path / "central.yaml"
    central.write_text(
        "sources:\n  - url: nats://127.0.0.1:1/wits.>?stream=WITS&durable=central\n"
        f"sinks:\n  - url: sqlite:///{db}\n"
    )
    env = clean_env(PYTHONPATH=str(ROOT / "src"))
    with single_writer(f"sqlite:///{db}", role="witskit worker"):  # the first worker, in this process
        done = run_witskit("worker", "--config", str(central), env=env, cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "SQLite takes one writer" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_central_file_names_the_file_and_fields(tmp_path: Path) -> None:
    central = tmp_path / "central.yaml"
    central.write_text("sources:\n  - url: nats://h:4222/wits.>?stream=WITS\nsinks:\n  - url: csv://x.csv\n")
    done = run_witskit(
        "worker", "--config", str(central), env=clean_env(PYTHONPATH=str(ROOT / "src")), cwd=tmp_path
    )
    assert done.returncode != 0
    assert f"{central}: invalid pipeline" in done.stderr
    assert "sources.0.url" in done.stderr
    assert "sinks.0.url" in done.stderr
    assert "Traceback" not in done.stderr


def test_readyz_fails_when_the_cluster_stays_unreachable(tmp_path: Path) -> None:
    """``witskit worker --metrics-port``: /readyz turns 503 once the cluster has been unreachable
    for longer than --broker-grace, and /metrics says the broker is down."""
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from support.natscluster import free_ports

    (closed,) = free_ports(1)  # nothing listens there
    central = tmp_path / "central.yaml"
    central.write_text(
        f"sources:\n  - url: nats://127.0.0.1:{closed}/wits.>?stream=WITS&durable=central&timeout=1\n"
        f"sinks:\n  - url: sqlite:///{tmp_path / 'c.db'}\n"
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "witskit",
                "worker",
                "--config",
                str(central),
                "--metrics-port",
                "0",
                "--broker-grace",
                "1",
            ],
            env=clean_env(PYTHONPATH=str(ROOT / "src")),
            stdout=out,
            stderr=out,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            found = re.search(r"/metrics on http://127\.0\.0\.1:(\d+)", log.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.1)
        assert port is not None, log.read_text()
        status = 0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                body = exc.read().decode()
                break
            time.sleep(0.2)
        assert status == 503
        assert "broker" in body
        assert "not ready" in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert re.search(r'witskit_worker_broker_up\{worker="[^"]+"\} 0', metrics), metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert "Traceback" not in log.read_text()


async def _drain_bundles(node: NatsCluster, worker: Worker, stream: str, *, bundles: int, size: int) -> Any:
    """Publish ``bundles`` bundles of ``size`` frames of rig-1 (frames numbered from 1) on a new
    stream ``stream`` (subjects ``<stream in lower case>.>``), run ``worker`` until it has
    acknowledged every frame, and return its consumer's info."""
    import nats

    nc = await nats.connect(servers=node.live_servers)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        for b in range(bundles):
            numbers = range(b * size + 1, b * size + size + 1)
            headers, body = encode_bundle([(n, pack_frame(_frame(n))) for n in numbers], edge="e1")
            await js.publish(f"{stream.lower()}.rig-1", body, headers=headers)
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: worker.stats.acked == bundles * size, timeout=60)
        finally:
            worker.stop()
            await task
        return await js.consumer_info(stream, "central")
    finally:
        await nc.close()


@pytest.mark.slow
async def test_bundles_are_committed_a_batch_at_a_time(node: NatsCluster, tmp_path: Path) -> None:
    """A backlog's bundles (one message, many frames) fetched at once are committed in
    transactions of at most ``batch`` frames, whole messages each: 6 bundles of 30 frames with
    batch=50 are 6 commits, every frame stored once, every message acknowledged."""
    store = await Store.open(f"sqlite:///{tmp_path / 'bundles.db'}")
    worker = Worker(f"nats://{node.url_hosts}/bun.>?stream=BUN&durable=central&replicas=1&batch=50", store)
    info = await _drain_bundles(node, worker, "BUN", bundles=6, size=30)
    assert await _stored(store) == list(range(1, 181))
    await store.aclose()
    assert worker.stats.commits == 6
    assert (worker.stats.fetched, worker.stats.committed, worker.stats.messages) == (180, 180, 6)
    assert info.num_pending == 0
    assert info.num_ack_pending == 0


class _Slow:
    """A store whose every write takes ``seconds`` more."""

    def __init__(self, store: Store, seconds: float) -> None:
        self.store = store
        self.seconds = seconds

    async def write(self, frames: Sequence[DecodedFrame]) -> int:
        await asyncio.sleep(self.seconds)
        return await self.store.write(frames)


@pytest.mark.slow
async def test_a_full_buffer_hands_bundles_back_and_keeps_its_own(node: NatsCluster, tmp_path: Path) -> None:
    """batch=50: the buffer holds 200 frames. A fetch of 6 bundles of 100 keeps 2 and hands 4 back
    (``nak``: delivered again later). Commits take 1.5 s with ack_wait=2 s, so the second bundle
    waits in the buffer past ack_wait: it is marked in progress, and only the handed-back bundles
    are ever delivered twice. Every frame stored once, one bundle a transaction."""
    store = await Store.open(f"sqlite:///{tmp_path / 'full.db'}")
    url = f"nats://{node.url_hosts}/fullbuf.>?stream=FULLBUF&durable=central&replicas=1&batch=50&ack_wait=2"
    worker = Worker(url, cast(Any, _Slow(store, 1.5)))
    info = await _drain_bundles(node, worker, "FULLBUF", bundles=6, size=100)
    assert await _stored(store) == list(range(1, 601))
    await store.aclose()
    assert worker.stats.deferred >= 4
    assert worker.stats.redelivered == worker.stats.deferred  # none came back from ack_wait
    assert worker.stats.commits == 6
    assert info.num_pending == 0
    assert info.num_ack_pending == 0
