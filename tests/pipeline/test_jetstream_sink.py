"""The edge's JetStream sink: its ack bookkeeping (a model test), a full stream, a foreign stream.

The model test drives the real pipeline and spool with a stand-in for the stream that keeps what a
JetStream stream keeps (messages, de-duplicated by ``Nats-Msg-Id``) and whose acknowledgements fail
as hypothesis draws: a publish refused, PubAcks lost after some or all messages were stored, and
the edge stopped with a backlog and started again on the same spool. Whatever happens, the spool
never lets go of a record before the stream has it, every record reaches the stream exactly once,
and in spool order. The sink cuts batches into messages as the real one does (bundles of a rig's
frames: ``batch_messages``), so the model covers that a retried batch, after a restart too, makes
the same messages. The other tests run against a real ``nats-server``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.natscluster import NatsCluster
from witskit.errors import ConnectError
from witskit.pipeline import Pipeline, Sink
from witskit.pipeline.envelope import HEADER_MSG_ID, decode_message
from witskit.pipeline.jetstream import JetStreamSink, batch_messages
from witskit.protocol import DecodedFrame, WITSFrame
from witskit.storage.spool import Spool
from witskit.transport.jetstream import BrokerError
from witskit.transport.urls import open_source


def frame(n: int) -> bytes:
    return b"&&\r\n0104%d\r\n0108%d.5\r\n!!\r\n" % (n, n)


class ModelStream:
    """What a JetStream stream keeps: messages in arrival order, each message id at most once."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, str], bytes]] = []
        self.ids: set[str] = set()
        self.duplicates = 0

    def publish(self, headers: dict[str, str], body: bytes) -> None:
        if headers[HEADER_MSG_ID] in self.ids:
            self.duplicates += 1
            return
        self.ids.add(headers[HEADER_MSG_ID])
        self.messages.append((headers, body))

    def frames(self) -> list[tuple[int, WITSFrame]]:
        """(spool sequence, frame) of every frame stored, in stream order."""
        return [(e.sequence, e.frame) for h, b in self.messages for e in decode_message(h, b)[0]]


class FlakySink(Sink):
    """Publishes through the envelope into a :class:`ModelStream`; each call fails as scripted.

    An outcome is ``-1`` (every PubAck comes: success), ``0`` (the publish is refused: nothing
    stored), or ``k > 0`` (the first ``k`` messages are stored, then the PubAcks are lost: the call
    raises though the stream has them). Past the script every call succeeds, or with ``down`` fails.
    """

    name = "model"
    stable_batches = True

    def __init__(self, stream: ModelStream, outcomes: list[int], spool: Spool, *, down: bool) -> None:
        self.stream = stream
        self.outcomes = list(outcomes)
        self.spool = spool
        self.down = down

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        raise AssertionError("the pipeline gives the sequences: write_sequenced")

    async def write_sequenced(
        self, batch: Sequence[DecodedFrame], sequences: Sequence[int], *, upto: int
    ) -> None:
        # The spool still holds everything of this batch, and nothing before it is pending: the
        # batch starts right after what the stream acknowledged.
        assert list(sequences) == list(range(sequences[0], sequences[0] + len(batch)))
        assert sequences[0] == self.spool.acked_seq + 1
        assert upto == sequences[-1]
        outcome = self.outcomes.pop(0) if self.outcomes else (0 if self.down else -1)
        messages = list(batch_messages(batch, sequences, edge="edge-1"))
        stored = len(messages) if outcome < 0 else min(outcome, len(messages))
        for _, headers, body, _ in messages[:stored]:
            self.stream.publish(headers, body)
        if outcome >= 0:
            raise BrokerError(f"scripted failure after {stored} of {len(messages)} messages")


lives = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=25),  # frames received in this life
        st.lists(st.integers(min_value=-1, max_value=6), max_size=6),  # outcomes of its publishes
        st.booleans(),  # the life ends with the stream down (a backlog left in the spool)
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=25, deadline=None)
@given(lives=lives)
def test_the_spool_lets_go_only_of_what_the_stream_has(lives: list[tuple[int, list[int], bool]]) -> None:
    run_model(lives)


def run_model(lives: list[tuple[int, list[int], bool]]) -> ModelStream:
    """Each life receives its frames into the spool and publishes as scripted; then a last life
    with the stream up. Checks the bookkeeping; returns the stream."""
    import tempfile

    stream = ModelStream()
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for life, (count, outcomes, down) in enumerate(lives):
            path = Path(tmp) / f"life-{life}.wits"
            path.write_bytes(b"".join(frame(n) for n in range(total + 1, total + count + 1)))
            # One rig: a batch of several frames is a bundle, whose id depends on the batch's cut.
            total += count
            spool = Spool(Path(tmp) / "spool", fsync="never")
            sink = FlakySink(stream, outcomes, spool, down=down)
            pipe = Pipeline(
                [open_source(f"file://{path}")],
                [sink],
                spool,
                batch_max=4,
                batch_interval=0.01,
                breaker_threshold=100,
                breaker_timeout=0.01,
                drain_timeout=0.2,
            )
            asyncio.run(pipe.run())
            # Acknowledged means in the stream.
            assert {seq for seq, _ in stream.frames()} >= set(range(1, spool.acked_seq + 1))
            spool.close()
        spool = Spool(Path(tmp) / "spool", fsync="never")  # a last life with the stream up
        sink = FlakySink(stream, [], spool, down=False)
        empty = Path(tmp) / "empty.wits"
        empty.write_bytes(b"")
        asyncio.run(Pipeline([open_source(f"file://{empty}")], [sink], spool, batch_max=4).run())
        assert spool.acked_seq == spool.last_seq == total
        spool.close()
    seqs = [seq for seq, _ in stream.frames()]
    assert seqs == list(range(1, total + 1))  # each once, in spool order
    numbers = [int(f.raw.split(b"0104")[1].split(b"\r")[0]) for _, f in stream.frames()]
    assert numbers == list(range(1, total + 1))
    return stream


def test_the_model_covers_bundles_and_a_restart_mid_batch() -> None:
    """One run of the model that surely bundles: 12 frames, batches of 4, the first batch's
    PubAcks lost and the edge stopped with the stream down; the next life resumes the same cut."""
    stream = run_model([(12, [1, 0], True), (3, [], False)])
    assert any(h["WitsKit-Envelope"] == "2" for h, _ in stream.messages)
    assert stream.duplicates >= 1  # the re-published bundle was recognised by its id


# Against a real server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> NatsCluster:
    node = NatsCluster(tmp_path_factory.mktemp("nats"), 1)
    node.start()
    yield node  # type: ignore[misc]
    node.stop()


def _decoded(numbers: range, rigs: int = 1) -> list[DecodedFrame]:
    """Frames ``numbers``, frame ``n`` from rig ``n % rigs``."""
    from witskit.protocol import FrameParser, WITSDecoder

    parsers = [FrameParser(source=f"rig-{r}") for r in range(rigs)]
    frames = [e for n in numbers for e in parsers[n % rigs].feed(frame(n)) if isinstance(e, WITSFrame)]
    return [WITSDecoder().decode(f) for f in frames]


@pytest.mark.slow
async def test_a_full_stream_refuses_and_the_spool_keeps_the_frames(node: NatsCluster) -> None:
    """discard=new: when the stream is at max_bytes a publish is refused (the batch fails, the
    pipeline keeps it spooled); once a worker has taken messages out, the same batch goes in.
    Batches of 10 frames of 4 rigs: bundles of 2-3 frames, as an edge's backlog would be."""
    import nats

    url = f"nats://{node.url_hosts}/full?stream=FULL&replicas=1&max_bytes=4096&edge=e1&timeout=1"
    sink = JetStreamSink(url)
    try:
        await sink.write_sequenced(_decoded(range(1, 11), 4), list(range(1, 11)), upto=10)
        refused: BrokerError | None = None
        for start in range(11, 200, 10):
            try:
                await sink.write_sequenced(
                    _decoded(range(start, start + 10), 4), list(range(start, start + 10)), upto=start + 9
                )
            except BrokerError as exc:
                refused, refused_at = exc, start
                break
        assert refused is not None, "a 4 KiB stream took 200 frames"
        assert "maximum bytes exceeded" in str(refused)
        nc = await nats.connect(servers=node.live_servers)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe("full.>", durable="drain", stream="FULL")
            for msg in await sub.fetch(100, timeout=2):
                await msg.ack()  # work-queue retention: acknowledged messages leave the stream
            await nc.flush()
            await asyncio.sleep(0.5)
            again = list(range(refused_at, refused_at + 10))
            await sink.write_sequenced(_decoded(range(refused_at, refused_at + 10), 4), again, upto=again[-1])
            msgs = await sub.fetch(100, timeout=2)
            assert {m.headers["WitsKit-Envelope"] for m in msgs if m.headers} == {"2"}
            seqs = sorted(e.sequence for m in msgs for e in decode_message(m.headers, m.data)[0])
            # Only what was never stored comes now: the part of the refused batch the stream took
            # before it filled up is de-duplicated by its message id.
            assert seqs[-1] == again[-1]
            assert len(seqs) == len(set(seqs))
        finally:
            await nc.close()
    finally:
        await sink.aclose()


@pytest.mark.slow
async def test_a_stream_that_does_not_take_our_subjects_is_refused(node: NatsCluster) -> None:
    import nats

    nc = await nats.connect(servers=node.live_servers)
    try:
        await nc.jetstream().add_stream(name="OTHER", subjects=["elsewhere.>"])
    finally:
        await nc.close()
    sink = JetStreamSink(f"nats://{node.url_hosts}/wits?stream=OTHER&replicas=1")
    try:
        with pytest.raises(ConnectError, match="takes subjects"):
            await sink.write_sequenced(_decoded(range(1, 2)), [1], upto=1)
    finally:
        await sink.aclose()


class RecordingSink(Sink):
    """Records the spool sequences of every batch it is given; fails while ``down``."""

    name = "recording"

    def __init__(self, *, stable: bool, down: bool) -> None:
        self.stable_batches = stable
        self.down = down
        self.batches: list[list[int]] = []

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        raise AssertionError("the pipeline gives the sequences: write_sequenced")

    async def write_sequenced(
        self, batch: Sequence[DecodedFrame], sequences: Sequence[int], *, upto: int
    ) -> None:
        self.batches.append(list(sequences))
        if self.down:
            raise BrokerError("down")


@pytest.mark.parametrize("stable", [True, False])
def test_a_batch_cut_before_a_restart_is_cut_the_same_after_it(tmp_path: Path, stable: bool) -> None:
    """A stable-batch sink (the JetStream sink) gets the batch it failed on again, whole and alone,
    after a restart on a spool that has grown meanwhile: the same bundles, the same message ids.
    Any other sink gets the spool cut afresh."""
    from witskit.pipeline.records import pack_frame

    empty = tmp_path / "empty.wits"
    empty.write_bytes(b"")

    def life(sink: RecordingSink) -> None:
        spool = Spool(tmp_path / "spool", fsync="never")
        options = {
            "batch_interval": 0.01,
            "breaker_threshold": 100,
            "breaker_timeout": 0.01,
            "drain_timeout": 0.2,
        }
        asyncio.run(Pipeline([open_source(f"file://{empty}")], [sink], spool, batch_max=4, **options).run())
        spool.close()

    def spooled(numbers: range) -> None:
        spool = Spool(tmp_path / "spool", fsync="never")
        for f in _decoded(numbers, 2):
            spool.append(pack_frame(f.frame))
        spool.close()

    spooled(range(1, 4))  # three records, a batch of 3 < batch_max
    down = RecordingSink(stable=stable, down=True)
    life(down)
    assert set(map(tuple, down.batches)) == {(1, 2, 3)}
    spooled(range(4, 8))  # the spool grows while the edge is stopped
    up = RecordingSink(stable=stable, down=False)
    life(up)
    if stable:
        assert up.batches == [[1, 2, 3], [4, 5, 6, 7]]
    else:
        assert up.batches == [[1, 2, 3, 4], [5, 6, 7]]
