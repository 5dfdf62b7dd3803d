"""The one ingest loop: sources -> spool -> decoder -> sinks, with back-pressure and no loss.

* Every frame a source delivers is appended to the spool **before** anything else happens to it.
* One writer task per sink reads the spool from that sink's position, oldest first, decodes, and
  writes batches through the sink's :class:`~witskit.transport.resilience.CircuitBreaker`. The spool
  is acknowledged up to the lowest position every sink has committed, so a record leaves the spool
  only after the commit that covers it, in every sink.
* When a sink fails its breaker opens, its writer waits, and the spool grows; sources keep being
  read. When the sink recovers the backlog is written oldest first, before newer data, because the
  writer always reads the spool in order. Nothing is held in an unbounded queue.
* When the spool is full (policy ``block``), sources pause: the socket is not read, and TCP pushes
  back on the rig. With ``drop_oldest`` sources never wait: the spool drops its oldest records to
  make room, and counts and logs them.
* When the spool cannot write (disk full), sources pause the same way, the append is retried on
  its own, and :attr:`Pipeline.spool_error` says why until it works.
* Live sinks (:class:`~witskit.pipeline.sinks.LiveSink`: the WITS relay) are offered each frame
  as soon as it is spooled, by the source's read loop; they never wait and never hold the spool.
* Sources can be added and removed while it runs (:meth:`Pipeline.add_source`); with
  ``keep_running`` the pipeline runs until stopped even when no source is left (the service).
* :meth:`Pipeline.stop` (wired to SIGTERM/SIGINT by :meth:`Pipeline.run_until_signal`) stops the
  sources, lets the writers drain what is in the spool within ``drain_timeout``, syncs and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from witskit.errors import CircuitOpenError, FrameError, WitsKitError
from witskit.pipeline.records import SpoolRecordError, pack_frame, unpack_frame
from witskit.pipeline.sinks import LiveSink, Sink
from witskit.protocol import DecodedFrame, WITSDecoder, WITSFrame
from witskit.storage.spool import Spool, SpoolError, SpoolFullError
from witskit.transport.base import Source
from witskit.transport.resilience import CircuitBreaker, CircuitState

__all__ = ["Pipeline", "PipelineStats"]

log = logging.getLogger("witskit.pipeline")

#: Frames per sink write: large enough to amortise a transaction, small enough to commit often.
DEFAULT_BATCH_MAX = 2000
#: How long a writer waits for more frames before committing a partial batch (seconds): the
#: receive-to-commit latency at low rates.
DEFAULT_BATCH_INTERVAL = 0.2
#: How long a paused source waits before checking for spool room again (seconds); also the first
#: pause before retrying an append that failed.
_FULL_POLL = 0.05
#: The longest pause between retries of an append that failed (disk full): a second, so the feed
#: resumes within a second of space coming back.
_ERROR_RETRY_MAX = 1.0
#: Frames decoded at receive time are kept until every sink has them, up to this many; beyond it
#: (a sink is down) the writers decode from the spool instead, so memory stays bounded.
_CACHE_MAX = 50_000
#: First pause after an unexpected error in a writer step (seconds), doubled up to the max.
_STEP_RETRY = 0.1
_STEP_RETRY_MAX = 5.0
#: At a stop, how long the sources' read loops may take to hand over what their sources had
#: already read (a listener queues up to queue_size frames while the spool is full or failing):
#: each frame gets one more append, or is counted lost. A queue drains in milliseconds; the bound
#: only matters for a source that does not end when closed.
_READ_AHEAD_GRACE = 2.0
#: While a fault lasts (spool cannot write, spool full, acks failing), the log line is repeated
#: this often (seconds): loud enough to be seen in a tail, not a line per frame.
_REMIND_EVERY = 30.0


@dataclass
class PipelineStats:
    """Counters for metrics and health checks."""

    frames_received: int = 0
    frame_errors: int = 0
    decode_errors: int = 0
    frames_written: dict[str, int] = field(default_factory=dict)
    write_failures: dict[str, int] = field(default_factory=dict)
    source_pauses: int = 0
    #: Appends the spool refused with an error (disk full, I/O error); each one is retried.
    spool_write_failures: int = 0
    #: Frames received but not stored: only when stopped while the spool was full or failing.
    frames_lost: int = 0
    ack_failures: int = 0
    last_error: str | None = None


class _SinkState:
    def __init__(self, sink: Sink, breaker: CircuitBreaker, position: int, batch_max: int) -> None:
        self.sink = sink
        #: The most frames one write of this sink takes (the sink's own bound, or the pipeline's).
        self.batch_max = sink.batch_max or batch_max
        self.breaker = breaker
        self.position = position  # last spool sequence this sink has committed
        self.failing_since: float | None = None  # monotonic time of the first failure of an outage
        self.said_at = 0.0  # when a failure of this sink was last logged above DEBUG
        self.said_open = False  # whether the breaker was open at the last failure
        #: Records of the batch that failed, read again alone until it succeeds (None: no failed
        #: batch): the same frames, so a JetStream sink makes the same messages and message ids,
        #: and the stream drops what the failed attempt had stored.
        self.retry_records: int | None = None
        #: (position, records) last noted in the spool's directory (``Sink.stable_batches``).
        self.noted: tuple[int, int] | None = None


class Pipeline:
    """Runs sources into sinks through a durable spool (see the module docstring)."""

    def __init__(
        self,
        sources: Sequence[Source],
        sinks: Sequence[Sink],
        spool: Spool,
        *,
        decoder: WITSDecoder | None = None,
        batch_max: int = DEFAULT_BATCH_MAX,
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
        breaker_threshold: int = 3,
        breaker_timeout: float = 5.0,
        drain_timeout: float = 30.0,
        keep_running: bool = False,
        on_frame: Callable[[DecodedFrame], None] | None = None,
        on_frame_error: Callable[[FrameError], None] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.spool = spool
        self.decoder = decoder or WITSDecoder()
        self.batch_max = batch_max
        self.batch_interval = batch_interval
        self.drain_timeout = drain_timeout
        self.on_frame = on_frame
        self.on_frame_error = on_frame_error
        self.stats = PipelineStats()
        start = spool.acked_seq
        #: The sinks fed at receive time (the relay), outside the spool's acknowledgements.
        self.live_sinks = [s for s in sinks if isinstance(s, LiveSink)]
        self._live_logged = -_REMIND_EVERY
        self._sinks = [
            _SinkState(
                s,
                CircuitBreaker(breaker_threshold, breaker_timeout, expected_exception=Exception, name=s.name),
                max(start, s.resume_after()),
                batch_max,
            )
            for s in sinks
            if not isinstance(s, LiveSink)
        ]
        for state in self._sinks:
            self._resume_batch(state)
        self._decoded: dict[int, DecodedFrame] = {}
        self._new_data = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sources_done = False
        self._tasks: list[asyncio.Task[None]] = []
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self.keep_running = keep_running
        self._ack_logged = 0.0  # monotonic time of the last "ack failed" line (0: acks work)
        self._callback_logged = -_REMIND_EVERY  # monotonic time of the last "callback failed" line
        self._lost_why = ""  # why the last frame counted in stats.frames_lost was not stored
        #: The spool's last append error while it lasts (None: appends work): readiness says it.
        self.spool_error: str | None = None
        #: Sources waiting for the spool (full, or failing to write): not read meanwhile.
        self.paused_sources: set[str] = set()
        #: Sources whose read loop ended on an error (it gave up), with the error.
        self.failed_sources: dict[str, str] = {}
        self._fault: tuple[str, float] | None = None  # ("full" | "error", since when)
        self._fault_logged = 0.0
        self._drops = spool.overflow == "drop_oldest"

    # Introspection ------------------------------------------------------------------------------
    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Each sink's circuit breaker, by sink name."""
        return {s.sink.name: s.breaker for s in self._sinks}

    @property
    def sinks(self) -> list[Sink]:
        """The sinks fed from the spool (the live sinks are :attr:`live_sinks`)."""
        return [state.sink for state in self._sinks]

    def sink_counters(self) -> dict[str, dict[str, int]]:
        """Each sink's own counters by sink name (the relay's consumers and drops, MQTT's messages
        published), for :meth:`witskit.monitoring.metrics.WitsMetrics.observe_sink`."""
        out: dict[str, dict[str, int]] = {}
        for sink in [*self.live_sinks, *(state.sink for state in self._sinks)]:
            counters = getattr(sink, "counters", None)
            if callable(counters):
                out[sink.name] = dict(counters())
        return out

    @property
    def backlog(self) -> int:
        """Records in the spool not yet committed by every sink."""
        return int(self.spool.last_seq - min((s.position for s in self._sinks), default=self.spool.last_seq))

    # Running ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until every source ends (files) or :meth:`stop` is called, then drain and return.

        Every sink is started first (a relay listens): one that cannot start (a port in use) is
        raised before any source is read, the sinks already started closed again.
        """
        started: list[Sink] = []
        try:
            for sink in [*self.live_sinks, *(state.sink for state in self._sinks)]:
                await sink.start()
                started.append(sink)
        except BaseException:
            for sink in started:
                with contextlib.suppress(Exception):
                    await sink.aclose()
            raise
        writers = [
            asyncio.create_task(self._write_loop(s), name=f"witskit-sink {s.sink.name}") for s in self._sinks
        ]
        self._running = True
        for src in self.sources:
            self._readers[src.name] = asyncio.create_task(
                self._read_loop(src), name=f"witskit-source {src.name}"
            )
        readers = list(self._readers.values())
        syncer = asyncio.create_task(self._sync_loop(), name="witskit-spool-sync")
        self._tasks = [*writers, *readers, syncer]
        self._new_data.set()  # write any backlog left by a previous run first
        stop = asyncio.create_task(self._stopping.wait(), name="witskit-stop")
        sources_done = asyncio.ensure_future(asyncio.gather(*readers, return_exceptions=True))
        waiters: list[asyncio.Future[Any]] = [stop] if self.keep_running else [stop, sources_done]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Cancelled (SIGTERM through run_async): a stop, so a sink that is down does not hold
            # the exit for drain_timeout; what it has not written stays in the spool.
            self._stopping.set()
            raise
        finally:
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop
            for src in self.sources:
                with contextlib.suppress(Exception):
                    await src.aclose()
            # The sources are closed: let the read loops take what they had already read from
            # them (spooled, or counted lost), then cancel what is left. Cancelling at once
            # dropped a listener's queued frames, taken from the rig, without a count.
            readers = list(self._readers.values())
            if readers:
                await asyncio.wait(readers, timeout=_READ_AHEAD_GRACE)
            if not sources_done.done():
                sources_done.cancel()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            if self.stats.frames_lost > 1:
                log.error(
                    "%d frames received before the stop were not stored (the last: %s)",
                    self.stats.frames_lost,
                    self._lost_why,
                )
            with contextlib.suppress(asyncio.CancelledError):
                await sources_done  # retrieve it, or asyncio warns about an unretrieved future
            self._running = False
            self._sources_done = True
            self._new_data.set()
            interrupted = False
            try:
                _, pending = await asyncio.wait(writers, timeout=self.drain_timeout) if writers else ((), ())
            except asyncio.CancelledError:
                # Stopped while draining (Ctrl-C or SIGTERM while a sink is down): stop waiting;
                # what the sinks have not written stays in the spool. Clean up, then re-raise.
                interrupted = True
                pending = {task for task in writers if not task.done()}
            if pending and not interrupted:
                log.warning(
                    "drain timed out after %.0f s with %d records still in the spool; they will be "
                    "written on the next start",
                    self.drain_timeout,
                    self.backlog,
                )
            for task in pending:
                task.cancel()
            results = await asyncio.gather(*writers, return_exceptions=True)
            for task, result in zip(writers, results, strict=True):
                if isinstance(result, Exception):  # never expected: _write_loop retries errors
                    log.error("%s ended with an error: %s", task.get_name(), result)
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            if self._sinks or self.live_sinks:
                self._try_ack()  # a failed ack of the last batch gets one more chance
            try:
                self.spool.sync()
            except SpoolError as exc:
                log.error("%s", exc)
            for sink in [*self.live_sinks, *(state.sink for state in self._sinks)]:
                with contextlib.suppress(Exception):
                    await sink.aclose()
            if interrupted:
                raise asyncio.CancelledError

    def add_source(self, source: Source) -> None:
        """Start reading another source while the pipeline runs (connections added at run time)."""
        if any(s.name == source.name for s in self.sources):
            from witskit.errors import UsageError

            raise UsageError(f"a source named {source.name!r} is already running")
        self.sources.append(source)
        if self._running:
            task = asyncio.create_task(self._read_loop(source), name=f"witskit-source {source.name}")
            self._readers[source.name] = task

    async def remove_source(self, name: str) -> bool:
        """Stop and forget a source; False when there is none by that name."""
        for source in list(self.sources):
            if source.name == name:
                self.sources.remove(source)
                await source.aclose()
                task = self._readers.pop(name, None)
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                return True
        return False

    def stop(self) -> None:
        """Ask the pipeline to stop: sources close, writers drain the spool, then :meth:`run` returns."""
        self._stopping.set()

    async def run_until_signal(self) -> None:
        """:meth:`run`, stopping cleanly on SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        try:
            await self.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    async def _sync_loop(self) -> None:
        # With fsync="interval" the spool syncs on the next append; a feed that goes quiet would
        # leave its last records unsynced, so sync them on a timer too (bounds the loss window).
        interval = self.spool.fsync_interval_ms / 1000
        said = 0.0
        while True:
            await asyncio.sleep(interval)
            if self.live_sinks and not self._sinks:
                # Only live sinks (a relay alone): nothing waits for the spooled frames, so they
                # are acknowledged here, on the timer, rather than with an fsync per frame.
                self._try_ack()
            if self.spool.fsync != "never" and self.spool.synced_seq < self.spool.last_seq:
                try:
                    await asyncio.to_thread(self.spool.sync)
                except SpoolError as exc:  # a failing disk: say so, keep trying (never die silently)
                    self.stats.last_error = str(exc)
                    now = time.monotonic()
                    if now - said >= _REMIND_EVERY:
                        said = now
                        log.error("%s", exc)

    # Sources ------------------------------------------------------------------------------------
    async def _read_loop(self, source: Source) -> None:
        try:
            async for event in source:
                if isinstance(event, FrameError):
                    self.stats.frame_errors += 1
                    if self.on_frame_error is not None:
                        self.on_frame_error(event)
                    continue
                await self._spool(event, source.name)
        except WitsKitError as exc:
            self.stats.last_error = str(exc)
            self.failed_sources[source.name] = str(exc)
            log.error("source %s stopped: %s", source.name, exc)

    async def _spool(self, frame: WITSFrame, source: str) -> None:
        payload = pack_frame(frame)
        seq = await self._append(payload, source)
        if seq is None:
            return
        self.stats.frames_received += 1
        decoded = self.decoder.decode(frame)
        if decoded.errors:
            self.stats.decode_errors += len(decoded.errors)
        if len(self._decoded) < _CACHE_MAX:
            self._decoded[seq] = decoded
        self._new_data.set()
        for live in self.live_sinks:
            try:
                live.offer(decoded)
            except Exception as exc:  # a bug in a live sink must not stop the source's read loop
                now = time.monotonic()
                if now - self._live_logged >= _REMIND_EVERY:
                    self._live_logged = now
                    log.error(
                        "live sink %s failed (%s: %s); the frame is stored",
                        live.name,
                        type(exc).__name__,
                        exc,
                    )
        if self.on_frame is not None:
            try:
                self.on_frame(decoded)
            except Exception as exc:
                # The frame is spooled already: a callback that fails (printing to a full disk)
                # must not end the source's read loop, which silently stopped the ingestion.
                now = time.monotonic()
                if now - self._callback_logged >= _REMIND_EVERY:
                    self._callback_logged = now
                    log.error(
                        "source %s: the frame callback failed (%s: %s); the frame is stored, reading goes on",
                        source,
                        type(exc).__name__,
                        exc,
                    )

    async def _append(self, payload: bytes, source: str) -> int | None:
        """Append to the spool, waiting (the source not read) while it is full or cannot write.

        Both are back-pressure: the source is not read, so once its buffers are full (a listener
        queues up to ``queue_size`` frames) its socket is not read and TCP pushes back on the rig.
        What the source had read ahead is handed over at a stop: spooled, or counted lost. A
        write error (disk full, I/O error) is retried on its own, every ``_ERROR_RETRY_MAX``
        seconds at most, until it works or the pipeline stops.
        Returns the sequence number, or None when stopped first (the frame is counted as lost).
        """
        delay = _FULL_POLL
        stored = False
        try:
            while True:
                # With drop_oldest the append itself makes room (dropping the oldest records,
                # counted and logged by the spool): the source never waits for the sinks.
                if not self._drops and not self.spool.has_room(len(payload)):
                    # Back-pressure: do not read the source until the sinks free spool space.
                    self.stats.source_pauses += 1
                    self._pause(source, "full", self._full_reason())
                    if self._stopping.is_set():
                        self._lose(source, self._full_reason())
                        return None
                    await self._wait_unless_stopping(_FULL_POLL)
                    continue
                try:
                    seq = self.spool.append(payload)
                except SpoolFullError:  # room was taken meanwhile: wait like above
                    self.stats.source_pauses += 1
                    self._pause(source, "full", self._full_reason())
                    await asyncio.sleep(_FULL_POLL)
                    continue
                except SpoolError as exc:
                    self.stats.spool_write_failures += 1
                    self.spool_error = str(exc)
                    self._pause(source, "error", str(exc))
                    if self._stopping.is_set():
                        self._lose(source, f"the spool cannot write ({exc})")
                        return None
                    await self._wait_unless_stopping(delay)
                    delay = min(delay * 2, _ERROR_RETRY_MAX)
                    continue
                self.spool_error = None
                stored = True
                return seq
        except asyncio.CancelledError:
            if source in self.paused_sources:  # stopped while waiting: this frame is not stored
                self._lose(source, self.spool_error or self._full_reason())
            raise
        finally:
            self._resume(source, stored)

    def _full_reason(self) -> str:
        spool = self.spool
        return (
            f"spool full: {spool.size_bytes:,} of {spool.max_bytes:,} bytes on disk, "
            f"{spool.pending_count:,} records wait for the sinks (overflow=block)"
        )

    async def _wait_unless_stopping(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the pipeline is asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _lose(self, source: str, why: str) -> None:
        self.stats.frames_lost += 1
        self.stats.last_error = f"{source}: a frame received before the stop was not stored: {why}"
        self._lost_why = f"source {source}: {why}"
        if self.stats.frames_lost == 1:  # one line, not one per frame: run() sums them up at the end
            log.error("source %s: a frame received before the stop was not stored: %s", source, why)

    def _pause(self, source: str, kind: str, reason: str) -> None:
        """Note that ``source`` waits for the spool; log the first pause of an episode and remind."""
        now = time.monotonic()
        first = source not in self.paused_sources
        self.paused_sources.add(source)
        if self._fault is None or self._fault[0] != kind:
            self._fault = (kind, now)
            self._fault_logged = 0.0
        if first or now - self._fault_logged >= _REMIND_EVERY:
            since = now - self._fault[1]
            lasting = f" for {since:.0f} s" if since >= 1 else ""
            paused = ", ".join(sorted(self.paused_sources))
            if kind == "error":
                log.error(
                    "spool cannot write%s: %s; source(s) %s paused (not read) until it can, retrying "
                    "every %.0f s at most",
                    lasting,
                    reason,
                    paused,
                    _ERROR_RETRY_MAX,
                )
            else:
                log.warning(
                    "%s%s; source(s) %s paused (not read) until there is room", reason, lasting, paused
                )
            self._fault_logged = now

    def _resume(self, source: str, stored: bool) -> None:
        if source not in self.paused_sources:
            return
        self.paused_sources.discard(source)
        if stored and self._fault is not None and not self.paused_sources:
            kind, since = self._fault
            self._fault = None
            what = "spool writes again" if kind == "error" else "spool has room again"
            log.warning("%s after %.1f s; sources resumed", what, time.monotonic() - since)

    # Sinks --------------------------------------------------------------------------------------
    async def _write_loop(self, state: _SinkState) -> None:
        # A writer never dies silently: anything its step raises is logged and the step retried
        # (with a growing pause), so a transient fault cannot leave frames spooled but never written.
        failures = 0
        while True:
            try:
                if await self._write_step(state):
                    return
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(_STEP_RETRY * 2 ** min(failures - 1, 6), _STEP_RETRY_MAX)
                self.stats.last_error = f"{state.sink.name}: {exc}"
                log.error(
                    "writer of sink %s failed (%s); retrying in %.1f s, %d records wait in the spool",
                    state.sink.name,
                    exc,
                    delay,
                    self.backlog,
                    exc_info=failures == 1 and not isinstance(exc, WitsKitError),
                )
                if self._sources_done and self._stopping.is_set():
                    return
                await asyncio.sleep(delay)

    async def _write_step(self, state: _SinkState) -> bool:
        """One batch (or one wait) of a sink's writer; True when the writer is done."""
        sink_name = state.sink.name
        limit = state.retry_records or state.batch_max
        batch, seqs, frame_seqs = self._read_batch(state.position, limit)
        if not batch:
            if self._sources_done and self.spool.last_seq <= state.position:
                return True
            if seqs:  # only undecodable records: move past them
                state.position = seqs[-1]
                state.retry_records = None
                self._try_ack()
                return False
            self._new_data.clear()
            if self._sources_done:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.batch_interval):  # wait_for can lose a cancel (3.11)
                    await self._new_data.wait()
            return False
        if len(seqs) < limit and not self._sources_done:
            # Let a partial batch fill for a moment: fewer, larger transactions.
            await asyncio.sleep(min(self.batch_interval, 0.05))
            batch, seqs, frame_seqs = self._read_batch(state.position, limit)
        if not state.breaker.allow():
            if self._sources_done and self._stopping.is_set():
                return True  # shutting down with the sink still failing: the spool keeps the data
            await asyncio.sleep(min(max(state.breaker.retry_after(), 0.05), 1.0))
            return False
        try:
            self._note_batch(state, len(seqs))
            await state.sink.write_sequenced(batch, frame_seqs, upto=seqs[-1])
        except Exception as exc:
            now = time.monotonic()
            first = state.failing_since is None
            if state.failing_since is None:
                state.failing_since = now
            state.breaker.record_failure()
            state.retry_records = len(seqs)
            self.stats.write_failures[sink_name] = self.stats.write_failures.get(sink_name, 0) + 1
            self.stats.last_error = f"{sink_name}: {exc}"
            # Said at the first failure, when the breaker opens, then every _REMIND_EVERY seconds:
            # an hour-long outage is a handful of lines, not one per retry.
            opened = state.breaker.state is CircuitState.OPEN
            level = logging.DEBUG
            if first or (opened and not state.said_open) or now - state.said_at >= _REMIND_EVERY:
                level = logging.ERROR if opened else logging.WARNING
                state.said_at = now
            state.said_open = opened
            lasting = now - state.failing_since
            log.log(
                level,
                "sink %s failed%s (%s); %d records wait in the spool, retrying",
                sink_name,
                f" for {lasting:.0f} s" if lasting >= 1 else "",
                exc,
                self.backlog,
            )
            if self._sources_done and self._stopping.is_set():
                return True
            await asyncio.sleep(min(max(state.breaker.retry_after(), 0.05), 1.0))
            return False
        state.breaker.record_success()
        state.retry_records = None
        state.position = seqs[-1]
        self.stats.frames_written[sink_name] = self.stats.frames_written.get(sink_name, 0) + len(batch)
        if state.failing_since is not None:
            log.warning(
                "sink %s recovered after %.1f s: writing the backlog, %d records wait in the spool",
                sink_name,
                time.monotonic() - state.failing_since,
                self.backlog,
            )
            state.failing_since = None
            state.said_open = False
        self._try_ack()
        return False

    def _batch_file(self, state: _SinkState) -> str:
        digest = hashlib.blake2b(state.sink.name.encode(), digest_size=6).hexdigest()
        return os.path.join(self.spool.directory, f"batch-{digest}")

    def _resume_batch(self, state: _SinkState) -> None:
        """A stable-batch sink's batch that was being written when the last run stopped (noted by
        :meth:`_note_batch`) is written first, whole and alone: the same records as then."""
        if not state.sink.stable_batches:
            return
        try:
            with open(self._batch_file(state), encoding="ascii") as f:
                after, records = (int(x) for x in f.read().split())
        except (OSError, ValueError):  # none noted, or a note cut by a power loss: cut afresh
            return
        if after == state.position and records > 0:
            state.retry_records = records
            state.noted = (after, records)

    def _note_batch(self, state: _SinkState, records: int) -> None:
        """Note a stable-batch sink's next batch (its start and record count) before writing it."""
        if not state.sink.stable_batches or state.noted == (state.position, records):
            return
        # Written in place, fixed width (one small write a batch, no new file): a note torn by a
        # power cut does not parse and is ignored.
        note = f"{state.position:020d} {records:010d}\n".encode("ascii")
        try:
            fd = os.open(self._batch_file(state), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.pwrite(fd, note, 0)
            finally:
                os.close(fd)
        except OSError as exc:  # the batch is still written: a restart may cut it otherwise
            log.warning("could not note the batch of sink %s (%s)", state.sink.name, exc)
            return
        state.noted = (state.position, records)

    def _read_batch(self, after: int, limit: int) -> tuple[list[DecodedFrame], list[int], list[int]]:
        """(frames, every spool sequence read, each frame's sequence), at most ``limit`` records:
        undecodable records are in the second list (the position moves past them) and not in the
        third."""
        frames: list[DecodedFrame] = []
        seqs: list[int] = []
        frame_seqs: list[int] = []
        cache = self._decoded
        for seq, payload in self.spool.pending(after=after, limit=limit):
            seqs.append(seq)
            cached = cache.get(seq)
            if cached is not None:
                frames.append(cached)
                frame_seqs.append(seq)
                continue
            try:
                frame = unpack_frame(payload, sequence=seq)
            except SpoolRecordError as exc:
                self.stats.last_error = str(exc)
                log.error("%s; skipped", exc)
                continue
            frames.append(self.decoder.decode(frame))  # a backlog record from before this run
            frame_seqs.append(seq)
        return frames, seqs, frame_seqs

    def _ack(self) -> None:
        lowest = min(s.position for s in self._sinks) if self._sinks else self.spool.last_seq
        if lowest > self.spool.acked_seq:
            self.spool.ack(lowest)
            for seq in [k for k in self._decoded if k <= lowest]:
                del self._decoded[seq]

    def _try_ack(self) -> None:
        """:meth:`_ack`, logging a failure instead of raising: the sinks' positions are kept, so
        the next call stores the ack (the records stay pending meanwhile: replayed, never lost)."""
        try:
            self._ack()
        except SpoolError as exc:
            self.stats.ack_failures += 1
            self.stats.last_error = str(exc)
            now = time.monotonic()
            if now - self._ack_logged >= _REMIND_EVERY:
                self._ack_logged = now
                log.error("%s; retrying at the next commit", exc)
            return
        if self._ack_logged:
            self._ack_logged = 0.0
            log.warning("spool acknowledgements are stored again (acked up to %d)", self.spool.acked_seq)


def circuit_open(exc: BaseException) -> bool:
    """True for the error a breaker raises when it refuses a call."""
    return isinstance(exc, CircuitOpenError)
