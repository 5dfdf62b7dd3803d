"""The fleet's central side: a JetStream durable consumer into a SQL store, acknowledged after commit.

Any number of :class:`Worker` processes (``witskit worker --config central.yaml``), on one or many
machines, share one durable pull consumer: JetStream hands each message to one of them and, when
a worker dies before acknowledging, redelivers its messages to the others after ``ack_wait``.

A worker runs two tasks joined by one buffer of decoded frames (about ``batch`` of them):

* the **fetcher** fetches what the consumer has (up to the buffer's room), decodes each envelope
  (:func:`~witskit.pipeline.envelope.decode_message`: one frame, or a bundle's) into the buffer,
  and fetches again; a message that is not a WitsKit frame is counted by kind, logged once per
  kind with its subject and stream sequence, and *terminated* (JetStream will not deliver it again
  and publishes a ``$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED`` advisory: that advisory stream is
  the dead-letter record); the messages around it go on;
* the **committer** takes the buffer (at most ``batch`` frames, whole messages), writes its frames
  in one SQL transaction
  (:meth:`witskit.storage.Store.write`), retried with a growing pause while the database is down
  (the messages in hand and in the buffer kept ours meanwhile: ``in_progress``), and only after
  that commit acknowledges the messages it took; then it takes the buffer again;
* every second, each rig's newest commit goes to the fleet view (``fleet_rigs``), beside the
  commits, not between a commit and its acknowledgements.

So the next batch is fetched and decoded while the current one commits, and an acknowledgement
never precedes the commit that covers its message (a message is acknowledged by the committer,
after the write of the batch it was taken in, or never). The batch size is not chosen, it is what
waited: under a backlog the buffer fills to ``batch`` while a commit runs, so transactions are
``batch`` frames; live, the committer takes what came since its previous round, which starts at
most every ``_MIN_ROUND`` (0.1 s): 50-100 frames a transaction at 1000 rigs and two workers, and
a live frame waits at most that plus one commit in the worker, not a batch. A fetch never lingers
longer than the commit in progress is expected to last (at most ``_FETCH_WAIT``, a second), and
``_FETCH_IDLE`` (0.1 s) when the committer has nothing: what a fetch collects is invisible to the
committer until it returns.

The store's frame key is a hash of the source name, the frame time and the frame's bytes, all of
which travel in the envelope unchanged, so whichever worker writes a frame, after whatever edge
restart or redelivery, it gets the same key, and a second write of it inserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from witskit.errors import WitsKitError
from witskit.pipeline.envelope import EnvelopeError, decode_message
from witskit.protocol import DecodedFrame, WITSDecoder
from witskit.storage.fleet_status import FleetStatus, RigRow
from witskit.transport.jetstream import BrokerError, JetStreamTarget, connect, ensure_stream, parse_target

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from witskit.storage.store import Store

__all__ = ["Latencies", "RigStatus", "Worker", "WorkerStats", "worker_problems"]

log = logging.getLogger("witskit.pipeline.worker")

#: Longest a fetch lingers for messages (seconds): while a commit runs, about as long as it is
#: expected to last (the messages a fetch collects reach the committer when it returns).
_FETCH_WAIT: Final = 1.0
#: How long a fetch lingers when the committer waits for frames (seconds): a live frame that finds
#: no commit running waits at most this before its transaction starts.
_FETCH_IDLE: Final = 0.1
#: Seconds between two writes of the fleet view's rows (``fleet_rigs``): each rig's newest commit
#: of the interval, in one transaction off the commit path (it was an upsert of every rig of the
#: batch after each commit, before its acknowledgements: many a second with small live batches).
_STATUS_EVERY: Final = 1.0
#: Shortest round of the committer (seconds): live, a transaction starts at most this often (what
#: came meanwhile joins it), so a worker does not commit a few dozen frames at a time, paying a
#: transaction's fixed cost (and the server's WAL flush) each time; under a backlog a commit takes
#: longer than this and the next one starts at once.
_MIN_ROUND: Final = 0.1
#: Weight of the newest commit in the running estimate of a commit's duration.
_COMMIT_EWMA: Final = 0.3
#: Most messages one fetch asks for. A fetch asks for the buffer's room in frames over the frames
#: a message carried in the previous fetch; when live single frames give way to a backlog's
#: bundles (40 frames each at 250 rigs an edge), this bounds what one fetch brings (a worker
#: holding a whole backlog would commit it alone, the others idle); what exceeds a transaction's
#: ``batch`` waits in the buffer for the next one.
_FETCH_MESSAGES: Final = 100
#: The buffer holds at most this many transactions' frames (``batch`` each): what a fetch brings
#: beyond is handed back to the stream (``nak``) for a later fetch, undecoded.
_BUFFER_BATCHES: Final = 4
#: Seconds before JetStream offers a message handed back again.
_BACK_OFF: Final = 1.0
#: First and longest pause between two attempts of a failing commit (seconds).
_RETRY_FIRST: Final = 0.2
_RETRY_MAX: Final = 5.0
#: Latencies above an hour are counted as an hour (a backlog that old is an outage, not a latency).
_LATENCY_CAP_MS: Final = 3_600_000
#: Seconds between two consumer-info requests (the lag): one API call, not one per round.
_LAG_EVERY: Final = 5.0
#: Repeat a still-failing condition in the log this often (seconds), not once per retry.
_REMIND_EVERY: Final = 30.0


class Latencies:
    """Receive-to-commit latencies, counted per millisecond: exact percentiles in bounded memory
    (one counter per distinct millisecond seen, at most ``_LATENCY_CAP_MS`` of them)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, seconds: float) -> None:
        """Count one latency (negative ones, from a clock step, count as 0)."""
        ms = min(max(int(seconds * 1000), 0), _LATENCY_CAP_MS)
        self.counts[ms] = self.counts.get(ms, 0) + 1
        self.total += 1

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100) in seconds; None before the first commit."""
        if not self.total:
            return None
        rank = max(1, round(p / 100 * self.total))
        seen = 0
        for ms in sorted(self.counts):
            seen += self.counts[ms]
            if seen >= rank:
                return ms / 1000
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class RigStatus:
    """The last frame of one rig (source) that this worker committed."""

    received_at: datetime
    committed_at: datetime
    edge: str

    @property
    def lag(self) -> float:
        """Seconds from the rig's frame reaching its edge to its central commit."""
        return (self.committed_at - self.received_at).total_seconds()


@dataclass
class WorkerStats:
    """What a worker did, for metrics and health."""

    #: Frames fetched, committed, and acknowledged (a bundle counts its frames).
    fetched: int = 0
    committed: int = 0
    acked: int = 0
    #: Messages fetched: a bundle of frames is one.
    messages: int = 0
    #: Messages handed back undecoded because the buffer was full (redelivered later).
    deferred: int = 0
    #: Messages delivered more than once (a worker died, an ack was lost, a commit took too long).
    redelivered: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    commit_failures: int = 0
    #: Monotonic time since which commits fail (None: they work).
    commit_failing_since: float | None = None
    #: Messages in the stream not yet delivered to any worker, plus delivered but not acknowledged.
    consumer_lag: int | None = None
    connected: bool = False
    #: Monotonic time since which the cluster is unreachable (None: reachable).
    broker_down_since: float | None = None
    last_error: str | None = None
    latencies: Latencies = field(default_factory=Latencies)
    #: Receive at the edge to fetched by this worker: the part of the latency before the worker
    #: (edge spool, publish, the stream); the rest is the buffer's wait and the commit.
    fetch_latencies: Latencies = field(default_factory=Latencies)
    #: Fetched by this worker to committed: the worker's own part (the buffer's wait, the commit).
    worker_latencies: Latencies = field(default_factory=Latencies)
    #: Transactions written, and the frames in them (their mean is the batch the load made).
    commits: int = 0
    rigs: dict[str, RigStatus] = field(default_factory=dict)


@dataclass
class _Batch:
    """Decoded frames and the messages that carry them (a message one frame, or a bundle of
    several), in fetch order, waiting for the committer."""

    msgs: list[Msg] = field(default_factory=list)
    #: The frames each message carries (a bundle's count), for the acknowledged count.
    counts: list[int] = field(default_factory=list)
    #: Messages with a record that is not a frame: terminated after the commit of their others.
    spoiled: set[int] = field(default_factory=set)
    frames: list[DecodedFrame] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    #: Monotonic time each frame was fetched.
    fetched: list[float] = field(default_factory=list)

    def split(self, limit: int) -> tuple[_Batch, _Batch]:
        """(the first messages, whole, with at most ``limit`` frames but at least one message;
        the rest): a fetch of bundles may bring more than a transaction's ``batch``."""
        if len(self.frames) <= limit:
            return self, _Batch()
        taken = frames = 0
        for count in self.counts:
            if taken and frames + count > limit:
                break
            taken += 1
            frames += count
        head = _Batch(
            self.msgs[:taken],
            self.counts[:taken],
            {i for i in self.spoiled if i < taken},
            self.frames[:frames],
            self.edges[:frames],
            self.fetched[:frames],
        )
        rest = _Batch(
            self.msgs[taken:],
            self.counts[taken:],
            {i - taken for i in self.spoiled if i >= taken},
            self.frames[frames:],
            self.edges[frames:],
            self.fetched[frames:],
        )
        return head, rest


class Worker:
    """Reads a JetStream durable consumer into a SQL store, acknowledging after each commit."""

    def __init__(
        self,
        source_url: str,
        store: Store,
        *,
        decoder: WITSDecoder | None = None,
        name: str = "witskit-worker",
        status: FleetStatus | None = None,
    ) -> None:
        self.target: JetStreamTarget = parse_target(source_url, role="worker")
        self.store = store
        self.decoder = decoder or WITSDecoder()
        self.name = name
        #: Where each rig's last commit is recorded for the fleet view (None: nowhere).
        self.status = status
        self._status_said = -_REMIND_EVERY
        #: Each rig's newest committed frame not yet written to the fleet view.
        self._status_rows: dict[str, RigRow] = {}
        self.stats = WorkerStats()
        self._stop = asyncio.Event()
        self._said: set[str] = set()
        self._nc: Client | None = None
        self._lag_at = 0.0
        self._closing = False
        self._started = time.monotonic()
        #: Fetched and decoded, not yet taken by the committer (up to ``_BUFFER_BATCHES`` times
        #: ``batch`` frames; a transaction takes ``batch``).
        self._buffer = _Batch()
        self._filled = asyncio.Event()  # the buffer holds something, or the fetcher ended
        self._room = asyncio.Event()  # the committer took the buffer
        #: Monotonic time the commit in progress started (None: the committer waits for frames).
        self._commit_since: float | None = None
        self._round_start = 0.0  # monotonic time the committer last took the buffer
        #: Running estimate of one commit's seconds.
        self._commit_secs = 0.2
        #: Frames a message carried in the last fetch (1; a backlog's bundles more).
        self._per_message = 1.0
        #: Monotonic time the buffer's messages were last marked in progress (``_keep_buffered``).
        self._touched = 0.0

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def readiness(self, grace: float) -> tuple[bool, dict[str, object]]:
        """(ready, checks): not ready once the cluster has been unreachable, or commits have
        failed, for longer than ``grace`` seconds (a blip does not take the worker out)."""
        now = time.monotonic()
        checks: dict[str, object] = {}
        ok = True
        for name, since in (
            ("broker", self.stats.broker_down_since if self.stats.connected else self._started),
            ("database", self.stats.commit_failing_since),
        ):
            down = None if since is None else now - since
            healthy = down is None or down <= grace
            ok = ok and healthy
            if down is None:
                checks[name] = "ok"
            else:
                checks[name] = f"failing for {down:.0f} s" + ("" if healthy else " (not ready)")
        return ok, checks

    def stop(self) -> None:
        """Ask :meth:`run` to return after the round in hand (its commit and acks)."""
        self._stop.set()

    async def run(self) -> None:
        """Connect (retrying), then fetch, store and acknowledge until :meth:`stop`."""
        fetcher = asyncio.create_task(self._fetch_loop())
        status = asyncio.create_task(self._status_loop())
        try:
            await self._commit_loop(fetcher)
        finally:
            for task in (fetcher, status):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._flush_status()  # the last commits' rows
            self._closing = True
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await self._nc.close()
        log.info("worker %s stopped (%s)", self.name, self.target.url)

    async def _fetch_loop(self) -> None:
        """Fill the buffer until :meth:`stop`: subscribe (retrying), fetch what is there, decode."""
        sub = None
        try:
            while not self._stop.is_set():
                try:
                    if sub is None:
                        sub = await self._subscribe()
                    room = self.target.batch - len(self._buffer.frames)
                    if room <= 0:
                        self._room.clear()
                        await self._wait_for(self._room, _FETCH_WAIT)
                        continue
                    # Messages to ask for: the frames' room over the frames a message carried in
                    # the last fetch (a backlog comes in bundles), at least one, at most
                    # _FETCH_MESSAGES (the first fetch of a backlog after live singles).
                    await self._fetch(sub, max(1, min(int(room / self._per_message), _FETCH_MESSAGES)))
                except (BrokerError, WitsKitError, OSError, TimeoutError) as exc:
                    self._broker_failed(exc)
                    await self._pause(1.0)
                except Exception as exc:
                    if type(exc).__module__.split(".")[0] != "nats":
                        raise
                    self._broker_failed(exc)
                    await self._pause(1.0)
        finally:
            self._filled.set()  # the committer sees the end

    def _fetch_wait(self) -> float:
        """Seconds the next fetch may linger: until the commit in progress is expected to end."""
        since = self._commit_since
        if since is None:
            return _FETCH_IDLE
        left = since + self._commit_secs - time.monotonic()
        return min(max(left, _FETCH_IDLE), _FETCH_WAIT)

    async def _fetch(self, sub: Any, room: int) -> None:
        import nats.errors

        try:
            msgs: list[Msg] = await sub.fetch(room, timeout=self._fetch_wait())
        except (nats.errors.TimeoutError, TimeoutError):  # nothing came within the wait
            msgs = []
        self._reachable()
        await self._update_lag(sub)
        if not msgs:
            return
        self.stats.messages += len(msgs)
        now = time.time()
        fetched = time.monotonic()
        decode = self.decoder.decode
        add_latency = self.stats.fetch_latencies.add
        frames_in = 0
        cap = self.target.batch * _BUFFER_BATCHES
        for i, msg in enumerate(msgs):
            if len(self._buffer.frames) >= cap:
                # Bundles beyond the buffer's bound go back undecoded, for later (a fetch of 100
                # bundles may hold far more frames than a few transactions take).
                for later in msgs[i:]:
                    await later.nak(delay=_BACK_OFF)
                self.stats.deferred += len(msgs) - i
                msgs = msgs[:i]
                break
            if msg.metadata.num_delivered > 1:
                self.stats.redelivered += 1
            try:
                envelopes, bad = decode_message(msg.headers, msg.data)
            except EnvelopeError as exc:
                await self._malformed(msg, exc)
                continue
            for error in bad:
                self._count_malformed(msg, error)
            if not envelopes:  # a bundle none of whose records is a frame
                await msg.term()
                continue
            buffer = self._buffer  # the committer may have taken it during a term() above
            if bad:
                buffer.spoiled.add(len(buffer.msgs))
            buffer.msgs.append(msg)
            buffer.counts.append(len(envelopes))
            frames_in += len(envelopes)
            for envelope in envelopes:
                frame = decode(envelope.frame)
                add_latency(now - frame.received_at.timestamp())
                buffer.frames.append(frame)
                buffer.edges.append(envelope.edge)
                buffer.fetched.append(fetched)
        self.stats.fetched += frames_in
        self._per_message = max(frames_in, 1) / max(len(msgs), 1)
        if self._buffer.msgs:
            self._filled.set()

    async def _commit_loop(self, fetcher: asyncio.Task[None]) -> None:
        """Take the buffer, commit it, acknowledge it; after :meth:`stop`, the rest of the buffer."""
        while True:
            if not self._buffer.msgs:
                if fetcher.done():
                    fetcher.result()  # a bug in the fetcher stops the worker, loudly
                    return
                self._filled.clear()
                await self._filled.wait()
                continue
            linger = self._round_start + _MIN_ROUND - time.monotonic()
            if linger > 0 and len(self._buffer.frames) < self.target.batch and not self._stop.is_set():
                await asyncio.sleep(linger)
            self._round_start = time.monotonic()
            batch, self._buffer = self._buffer.split(self.target.batch)
            self._room.set()
            try:
                await self._take(batch)
            except WitsKitError:  # raised only once stopping, the commit still failing:
                return  # nothing acknowledged, JetStream redelivers it all to another worker

    async def _take(self, batch: _Batch) -> None:
        """Commit one batch, then (only then) acknowledge its messages."""
        start = self._commit_since = time.monotonic()
        try:
            await self._commit(batch.frames, batch.msgs)
        finally:
            self._commit_since = None
        done = time.monotonic()
        took = done - start
        add = self.stats.worker_latencies.add
        for fetched in batch.fetched:
            add(done - fetched)
        self._commit_secs += _COMMIT_EWMA * (took - self._commit_secs)
        self.stats.commits += 1
        self._note_rigs(batch.frames, batch.edges)
        try:
            spoiled = batch.spoiled
            for i, msg in enumerate(batch.msgs):
                # A bundle with a record that is not a frame: its frames are stored, and the
                # message is terminated (the dead-letter advisory), not acknowledged.
                await (msg.term() if i in spoiled else msg.ack())
            if self._nc is not None:
                await self._nc.flush(timeout=max(1, round(self.target.timeout)))
        except Exception as exc:  # committed: an ack lost is a redelivery the frame key skips
            if type(exc).__module__.split(".")[0] != "nats" and not isinstance(exc, OSError | TimeoutError):
                raise
            self._broker_failed(exc)
            return
        self.stats.acked += sum(batch.counts)
        await self._keep_buffered()

    async def _keep_buffered(self) -> None:
        """Tell JetStream the buffer's messages are being worked on once they have waited a third of
        ``ack_wait``: a fetch of bundles can fill several transactions, and the last must not be
        redelivered to another worker meanwhile."""
        buffer = self._buffer
        now = time.monotonic()
        if not buffer.fetched or now - max(buffer.fetched[0], self._touched) < self.target.ack_wait / 3:
            return
        self._touched = now
        with contextlib.suppress(Exception):  # a lost in_progress is a redelivery the key skips
            for msg in buffer.msgs:
                await msg.in_progress()

    async def _wait_for(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def _pause(self, seconds: float) -> None:
        await self._wait_for(self._stop, seconds)

    def _broker_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        first = self.stats.broker_down_since is None
        self.stats.broker_down_since = self.stats.broker_down_since or now
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if first or "broker" not in self._said:
            log.warning("%s: %s; retrying", self.target.url, self.stats.last_error)
            self._said.add("broker")  # said again once it has answered in between

    async def _subscribe(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        target = self.target
        if self._nc is None or self._nc.is_closed:
            async with asyncio.timeout(target.timeout * 2):
                self._nc = await connect(target, name=self.name, closing=lambda: self._closing)
        js: JetStreamContext = self._nc.jetstream(timeout=target.timeout)
        await ensure_stream(js, target)
        config = ConsumerConfig(
            durable_name=target.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=target.ack_wait,
            max_deliver=-1,
            # Enough in flight for every worker's batch, several times over.
            max_ack_pending=max(20 * target.batch, 1000),
            filter_subject=target.subject,
        )
        sub = await js.pull_subscribe(
            target.subject, durable=target.durable, stream=target.stream, config=config
        )
        self.stats.connected = True
        log.info("worker %s reads %s (consumer %s)", self.name, target.url, target.durable)
        return sub

    def _reachable(self) -> None:
        if self.stats.broker_down_since is not None:
            log.warning(
                "%s: the NATS cluster answers again after %.1f s",
                self.target.url,
                time.monotonic() - self.stats.broker_down_since,
            )
            self._said.discard("broker")
        self.stats.broker_down_since = None
        self.stats.connected = True

    async def _update_lag(self, sub: Any) -> None:
        now = time.monotonic()
        if now - self._lag_at < _LAG_EVERY:
            return
        self._lag_at = now
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            self.stats.consumer_lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _malformed(self, msg: Msg, exc: EnvelopeError) -> None:
        self._count_malformed(msg, exc)
        await msg.term()

    def _count_malformed(self, msg: Msg, exc: EnvelopeError) -> None:
        """Count a message (or a bundle's record) that is not a frame; log its kind once."""
        kind = exc.kind
        self.stats.malformed[kind] = self.stats.malformed.get(kind, 0) + 1
        if kind not in self._said:
            self._said.add(kind)
            log.error(
                "malformed message (%s) on %s, stream sequence %d: %s; terminated (counted from now "
                "on, not logged again)",
                kind,
                msg.subject[:200],
                msg.metadata.sequence.stream,
                exc,
            )

    async def _commit(self, frames: list[DecodedFrame], msgs: list[Msg]) -> None:
        """Write ``frames`` in one transaction, retrying while the database fails; the messages stay
        ours (``in_progress`` before ``ack_wait`` runs out) until it works or the worker stops."""
        delay = _RETRY_FIRST
        failing_since: float | None = None
        said = 0.0
        touched = time.monotonic()
        while True:
            try:
                await self.store.write(frames)
            except WitsKitError as exc:
                now = time.monotonic()
                self.stats.commit_failures += 1
                self.stats.last_error = str(exc)
                failing_since = failing_since or now
                self.stats.commit_failing_since = failing_since
                if now - said >= _REMIND_EVERY:
                    said = now
                    log.error(
                        "commit of %d frames failed for %.0f s (%s); retrying, messages held",
                        len(frames),
                        now - failing_since,
                        exc,
                    )
                if self._stop.is_set():
                    raise  # not acknowledged: JetStream redelivers them to another worker
                await self._pause(delay)
                delay = min(delay * 2, _RETRY_MAX)
                if time.monotonic() - touched > self.target.ack_wait / 3:
                    touched = time.monotonic()
                    for msg in [*msgs, *self._buffer.msgs]:  # the next batch waits too
                        with contextlib.suppress(Exception):
                            await msg.in_progress()
                continue
            if failing_since is not None:
                log.warning("commit works again after %.1f s", time.monotonic() - failing_since)
                self.stats.commit_failing_since = None
            self.stats.committed += len(frames)
            return

    def _note_rigs(self, frames: list[DecodedFrame], edges: list[str]) -> None:
        """Count the latencies; keep the newest frame of each rig for the fleet view."""
        now = datetime.now(UTC)
        rigs = self.stats.rigs
        newest = self._status_rows
        for frame, edge in zip(frames, edges, strict=True):
            received = frame.received_at
            self.stats.latencies.add((now - received).total_seconds())
            source = frame.source or "default"
            status = rigs.get(source)
            if status is None or received >= status.received_at:
                rigs[source] = RigStatus(received, now, edge)
            row = newest.get(source)
            if row is None or received >= row.last_received_at:
                newest[source] = RigRow(source, edge, self.name, received, now)

    async def _status_loop(self) -> None:
        """Write the fleet view's rows every ``_STATUS_EVERY`` seconds, beside the commits."""
        while True:
            await asyncio.sleep(_STATUS_EVERY)
            await self._flush_status()

    async def _flush_status(self) -> None:
        """The fleet view's rows: best effort (the frames are committed; a failure here is said
        every _REMIND_EVERY seconds and changes nothing else)."""
        rows, self._status_rows = self._status_rows, {}
        if self.status is None or not rows:
            return
        try:
            await self.status.record(list(rows.values()))
        except WitsKitError as exc:
            now = time.monotonic()
            if now - self._status_said >= _REMIND_EVERY:
                self._status_said = now
                log.warning("could not record the fleet status (%s); the frames are stored", exc)


def worker_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with a central pipeline file for ``witskit worker``, as (field, message).

    A worker reads one JetStream consumer (``sources``: one ``nats://`` URL with ``durable=``)
    into one SQL database (``sinks``: one database URL); it has no spool, the stream is its log.
    """
    from witskit.pipeline.sinks import sink_kind

    problems: list[tuple[str, str]] = []
    sources = data.get("sources")
    if isinstance(sources, list):
        if len(sources) != 1:
            problems.append(("sources", f"a worker reads one nats:// source, not {len(sources)}"))
        for i, src in enumerate(sources):
            url = src.get("url") if isinstance(src, dict) else None
            if not isinstance(url, str):
                continue
            try:
                parse_target(url, role="worker")
            except WitsKitError as exc:
                problems.append((f"sources.{i}.url", str(exc)))
            if isinstance(src, dict) and src.get("options"):
                problems.append((f"sources.{i}.options", "a nats:// source takes its options in the URL"))
    sinks = data.get("sinks")
    if not isinstance(sinks, list) or len(sinks) != 1:
        count = len(sinks) if isinstance(sinks, list) else 0
        problems.append(("sinks", f"a worker writes one database URL, not {count} sinks"))
    else:
        url = sinks[0].get("url") if isinstance(sinks[0], dict) else None
        if isinstance(url, str):
            try:
                kind = sink_kind(url)
            except WitsKitError as exc:
                problems.append(("sinks.0.url", str(exc)))
            else:
                if kind != "sql":
                    problems.append(
                        ("sinks.0.url", f"a worker writes a database (redelivery-safe by key), not {kind}://")
                    )
    if "spool" in data:
        problems.append(("spool", "a worker has no spool: the JetStream stream is its durable log"))
    return problems
