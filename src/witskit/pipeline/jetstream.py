"""A fleet's edge sink: every frame published to NATS JetStream, the spool acknowledged on PubAck.

``nats://host:port[,host:port...]/<prefix>?stream=NAME`` (the options: ``witskit.transport.jetstream``;
the message: ``witskit.pipeline.envelope``; the whole path: ``docs/fleet.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from witskit.errors import WitsKitError
from witskit.pipeline.base import Sink
from witskit.pipeline.envelope import encode_bundle, encode_envelope
from witskit.pipeline.records import pack_frame
from witskit.protocol import DecodedFrame
from witskit.transport.jetstream import (
    BrokerError,
    JetStreamTarget,
    connect,
    ensure_stream,
    parse_target,
    subject_token,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

__all__ = ["EdgeStats", "JetStreamSink", "batch_messages"]

#: Publishes awaiting their PubAck that a context may hold: more than a batch's messages (at most
#: ``_BATCH_MAX``, when every frame is a rig's only one), so a batch never waits for a slot. Below
#: it a publish is handed no ``wait_stall``: nats-py then takes its slot without a timer task, and
#: the whole batch leaves in one socket write. With a timer (Python 3.11's ``wait_for`` makes a
#: task of it) every publish yielded to the event loop, whose flusher then sent each message in a
#: write of its own: a task, a loop turn and a ``send`` per frame (``bench/bench_edge.py``).
_MAX_PENDING = 12_000
#: Frames the pipeline hands this sink in one batch at most (its default for other sinks: 2000).
#: A backlog is read oldest first, so a batch holds ``_BATCH_MAX / rigs`` seconds of each rig of
#: the edge: the frames that go in one bundle (40 at 250 rigs). Live, a batch is what came in the
#: last 50 ms, whatever this bound.
_BATCH_MAX = 10_000
#: A bundle holds at most this many frames and bytes (NATS refuses a message above the server's
#: ``max_payload``, 1 MiB by default; a 40-item frame is ~600 bytes).
_BUNDLE_FRAMES = 256
_BUNDLE_BYTES = 256 * 1024


@dataclass
class EdgeStats:
    """What an edge's JetStream sink did (for metrics; "pending" is the pipeline's backlog)."""

    #: Frames published and acknowledged (a bundle counts its frames).
    published: int = 0
    acked: int = 0
    #: Messages published and acknowledged: a bundle is one message.
    messages: int = 0
    acked_messages: int = 0
    #: PubAcks that said "duplicate": a re-publish the stream dropped (after a lost ack or a crash).
    duplicates: int = 0
    failed_batches: int = 0
    connected: bool = False
    #: Monotonic time of the last PubAck (None: none yet), for /readyz.
    last_ack: float | None = None
    #: Monotonic time since which the cluster has not acknowledged (None: it does).
    failing_since: float | None = None
    last_error: str | None = None
    subjects: dict[str, str] = field(default_factory=dict)


class JetStreamSink(Sink):
    """A fleet's edge: every frame published to a JetStream stream, done when every PubAck is in.

    ``nats://host:port[,host:port...]/<prefix>?stream=NAME`` (options: ``witskit.transport.jetstream``).
    The pipeline gives each batch with every frame's spool sequence (:meth:`write_sequenced`) and
    acknowledges the spool only when it returns, which it does only once JetStream has
    acknowledged every message of the batch. A batch that fails (a node down, the cluster
    unreachable, the stream full) raises; the pipeline's breaker waits and the same batch is
    published again, oldest first, with the same message ids (``witskit.pipeline.envelope``).

    Backlog and live data: the pipeline's writer reads the spool oldest first, up to
    ``_BATCH_MAX`` frames a batch, and this sink publishes a whole batch pipelined (every message
    sent, then every PubAck awaited), so a backlog drains at the cluster's throughput, not one
    round trip per frame. The frames of one rig in a batch go in one message, a bundle
    (``witskit.pipeline.envelope``): a backlog of a minute is a few messages per rig, not sixty.
    A rig's single frame (live data) goes alone, as before. Live frames are appended behind the
    backlog and go in the batch after its end: they are delayed by the backlog's drain time
    (measured in ``bench/bench_fleet.py``), never dropped or overtaken, so the stream holds each
    rig's frames in receive order.
    """

    batch_max = _BATCH_MAX
    stable_batches = True

    def __init__(self, url: str) -> None:
        target = parse_target(url, role="edge")
        self.target: JetStreamTarget = target
        self.name = target.url
        self.edge = target.edge or "edge"
        self.stats = EdgeStats()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._subjects: dict[str | None, str] = {}
        self._closing = False
        self._said: str | None = None  # the cluster's last asynchronous error (a refused publish)

    def _async_error(self, text: str) -> None:
        self._said = text

    def __repr__(self) -> str:
        return f"<JetStreamSink {self.target.url} edge={self.edge}>"

    def _subject(self, source: str | None) -> str:
        subject = self._subjects.get(source)
        if subject is None:
            subject = self._subjects[source] = f"{self.target.subject}.{subject_token(source or 'default')}"
        return subject

    async def _context(self) -> JetStreamContext:
        if self._nc is None or self._nc.is_closed:
            # Bounded: nats-py retries the first connection as long as it is told to reconnect.
            try:
                async with asyncio.timeout(self.target.timeout * 2):
                    self._nc = await connect(
                        self.target,
                        name=f"witskit-edge {self.edge}",
                        on_error=self._async_error,
                        closing=lambda: self._closing,
                    )
            except TimeoutError:
                raise BrokerError(f"{self.target.url}: no NATS server answered") from None
            self._js = self._nc.jetstream(timeout=self.target.timeout, publish_async_max_pending=_MAX_PENDING)
            self._stream_ready = False
        assert self._js is not None
        if not self._stream_ready:
            await ensure_stream(self._js, self.target)
            self._stream_ready = True
        self.stats.connected = self._nc.is_connected
        return self._js

    def counters(self) -> dict[str, int]:
        """For ``/metrics`` (``wits_edge_*``): frames published, messages published (a bundle is
        one), frames acked, duplicates, failed batches, and whether the cluster acknowledges now."""
        stats = self.stats
        return {
            "published": stats.published,
            "edge_messages": stats.messages,
            "acked": stats.acked,
            "duplicates": stats.duplicates,
            "failed_batches": stats.failed_batches,
            "broker_up": int(stats.failing_since is None and stats.last_ack is not None),
        }

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Publish ``batch`` as spool records ``upto - len(batch) + 1`` .. ``upto`` (consecutive).

        The pipeline calls :meth:`write_sequenced`, which knows each frame's sequence.
        """
        await self.write_sequenced(batch, range(upto - len(batch) + 1, upto + 1), upto=upto)

    async def write_sequenced(
        self, batch: Sequence[DecodedFrame], sequences: Sequence[int], *, upto: int
    ) -> None:
        """Publish every frame, then wait (``timeout``) for every PubAck; raise unless all came."""
        try:
            await self._publish(batch, sequences)
        except Exception as exc:
            now = time.monotonic()
            self.stats.failed_batches += 1
            self.stats.failing_since = self.stats.failing_since or now
            self.stats.last_error = str(exc)
            self.stats.connected = bool(self._nc is not None and self._nc.is_connected)
            if isinstance(exc, WitsKitError):
                raise
            raise BrokerError(f"{self.target.url}: {type(exc).__name__}: {exc}") from exc
        self.stats.failing_since = None
        self.stats.last_ack = time.monotonic()

    async def _publish(self, batch: Sequence[DecodedFrame], sequences: Sequence[int]) -> None:
        js = await self._context()
        target = self.target
        futures: list[asyncio.Future[Any]] = []
        self._said = None
        try:
            for source, headers, body, count in batch_messages(batch, sequences, edge=self.edge):
                # A free slot is taken at once (no wait_stall: see _MAX_PENDING); only a full
                # context (more in flight than a batch, never expected) waits, bounded.
                stall = None if js.publish_async_pending() < _MAX_PENDING else target.timeout
                future = await js.publish_async(
                    self._subject(source),
                    body,
                    wait_stall=stall,
                    stream=target.stream,
                    headers=headers,
                )
                futures.append(future)
                self.stats.published += count
                self.stats.messages += 1
            if futures:
                _, pending = await asyncio.wait(futures, timeout=target.timeout)
                if pending:
                    said = f" (the cluster said: {self._said})" if self._said else ""
                    raise BrokerError(
                        f"{target.url}: {len(pending)} of {len(futures)} messages not acknowledged "
                        f"within {target.timeout:g} s{said}"
                    )
        finally:
            for future in futures:
                future.cancel()  # no-op when done; releases nats-py's slot when not
        acked = duplicates = 0
        for future in futures:
            exc = future.exception()
            if exc is not None:
                raise BrokerError(f"{target.url}: the stream refused a message: {exc}") from exc
            ack = future.result()
            if ack.stream != target.stream:  # Nats-Expected-Stream makes the server refuse this
                raise BrokerError(f"{target.url}: acknowledged by stream {ack.stream}, not {target.stream}")
            duplicates += bool(ack.duplicate)
            acked += 1
        self.stats.acked += len(batch)
        self.stats.acked_messages += acked
        self.stats.duplicates += duplicates

    async def aclose(self) -> None:
        """Close the connection (pending publishes were awaited by the write that made them)."""
        nc, self._nc = self._nc, None
        self._closing = True
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        self.stats.connected = False


def batch_messages(
    batch: Sequence[DecodedFrame], sequences: Sequence[int], *, edge: str
) -> Iterator[tuple[str | None, dict[str, str], bytes, int]]:
    """(source, headers, body, frames) of each message of a batch: a rig's single frame alone
    (version 1), several frames of one rig in bundles (version 2), each rig's in receive order.

    A function of the batch alone: the same batch makes the same messages, with the same ids
    (the pipeline retries a failed batch whole, after a restart too: ``Sink.stable_batches``).
    """
    by_source: dict[str | None, list[tuple[int, DecodedFrame]]] = {}
    for frame, seq in zip(batch, sequences, strict=True):
        by_source.setdefault(frame.source, []).append((seq, frame))
    for source, frames in by_source.items():
        if len(frames) == 1:
            seq, frame = frames[0]
            headers, body = encode_envelope(frame.frame, edge=edge, sequence=seq)
            yield source, headers, body, 1
            continue
        records: list[tuple[int, bytes]] = []
        size = 0
        for seq, frame in frames:
            record = pack_frame(frame.frame)
            if records and (len(records) >= _BUNDLE_FRAMES or size + len(record) > _BUNDLE_BYTES):
                yield source, *encode_bundle(records, edge=edge), len(records)
                records, size = [], 0
            records.append((seq, record))
            size += len(record) + 12
        if len(records) == 1:
            seq, frame = frames[-1]
            yield source, *encode_envelope(frame.frame, edge=edge, sequence=seq), 1
        else:
            yield source, *encode_bundle(records, edge=edge), len(records)
