"""How the service watches its pipeline: every frame, the readiness checks, the gauges.

:class:`FrameObserver` takes the pipeline's callbacks (hot path: once per frame): each frame goes
to the live hub and the latest values, and counts in the metrics and the per-source data quality
score; each link status counts as a connection attempt. :func:`spool_check` and
:func:`sources_check` are the ``/readyz`` checks of a process that ingests; :func:`refresh_gauges`
sets the gauges that are read rather than counted, before each scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

from witskit.errors import FrameError
from witskit.monitoring.health import HealthCheck, HealthStatus
from witskit.monitoring.metrics import WitsMetrics
from witskit.pipeline import LiveHub, Pipeline, unpack_frame
from witskit.pipeline.jetstream import JetStreamSink
from witskit.protocol import DecodedFrame
from witskit.service.connections import Connection
from witskit.service.latest import LatestCache
from witskit.storage.schema import DEFAULT_SOURCE
from witskit.storage.spool import Spool
from witskit.transport.base import LinkState, LinkStatus

__all__ = ["FrameObserver", "broker_check", "refresh_gauges", "sources_check", "spool_check"]

#: Weight of the newest frame in the data quality score (an exponential moving average over
#: roughly the last 100 frames: recent enough to show a noisy line, steady enough to read).
_QUALITY_WEIGHT: Final = 0.01
#: Spool fill at which readiness says degraded (a database outage is building a backlog).
_SPOOL_DEGRADED: Final = 0.8


class FrameObserver:
    """The pipeline's ``on_frame`` and ``on_frame_error``, and the connections' ``on_status``."""

    def __init__(self, hub: LiveHub, latest: LatestCache, metrics: WitsMetrics) -> None:
        self._hub = hub
        self._latest = latest
        self._metrics = metrics
        self._quality: dict[str, float] = {}
        #: Also called with every decoded frame (the live rig states), after the hub and the cache.
        self.listeners: list[Callable[[DecodedFrame], None]] = []

    def on_frame(self, frame: DecodedFrame) -> None:
        """A decoded frame: to live subscribers and the latest values; counted and scored."""
        source = frame.source if frame.source is not None else DEFAULT_SOURCE
        self._hub.publish(frame)
        self._latest.update(frame)
        for listener in self.listeners:
            listener(frame)
        self._metrics.record_frame_processed(source, True)
        self._score(source, 0.0 if frame.errors else 1.0)

    def on_frame_error(self, error: FrameError) -> None:
        """Bad bytes the parser skipped: to live subscribers; counted, and scored as a bad frame."""
        self._hub.publish_error(error)
        source = error.source or DEFAULT_SOURCE
        self._metrics.record_frame_processed(source, False)
        self._metrics.record_error("frame", "low")
        self._score(source, 0.0)

    def on_status(self, conn: Connection, status: LinkStatus) -> None:
        """A link connected (an attempt that worked) or dropped with an error (one that failed)."""
        if status.state is LinkState.CONNECTED:
            self._metrics.record_connection_attempt(conn.transport, True)
        elif status.state is LinkState.DISCONNECTED and status.error is not None:
            self._metrics.record_connection_attempt(conn.transport, False)
            self._metrics.record_error("connection", "high")

    def _score(self, source: str, good: float) -> None:
        old = self._quality.get(source, 1.0)
        new = old + _QUALITY_WEIGHT * (good - old)
        self._quality[source] = new
        self._metrics.data_quality_score.labels(source=source).set(new)


def spool_check(spool: Spool, pipe: Pipeline | None) -> HealthCheck:
    """Unhealthy when the spool is closed, cannot write or is full; degraded when nearly full."""
    if spool.closed:
        return HealthCheck("spool", HealthStatus.UNHEALTHY, "the spool is closed", reason="closed")
    # The bound is on the files on disk (size_bytes), the acknowledged head included.
    fill = spool.size_bytes / spool.max_bytes if spool.max_bytes else 0.0
    details = {
        "pending_bytes": spool.pending_bytes,
        "size_bytes": spool.size_bytes,
        "max_bytes": spool.max_bytes,
    }
    if pipe is not None and pipe.spool_error is not None:
        # Sources are paused (not read) and the pipeline retries on its own: not ready.
        return HealthCheck(
            "spool",
            HealthStatus.UNHEALTHY,
            f"the spool cannot write: {pipe.spool_error}",
            details,
            reason="the spool cannot write (disk full or failing): sources are paused",
        )
    if spool.is_full:
        return HealthCheck(
            "spool",
            HealthStatus.UNHEALTHY,
            f"the spool is full ({spool.size_bytes:,} of {spool.max_bytes:,} bytes; "
            f"{spool.pending_count:,} records wait for the database): sources are paused",
            details,
            reason="the spool is full: sources are paused",
        )
    if fill >= _SPOOL_DEGRADED:
        return HealthCheck(
            "spool",
            HealthStatus.DEGRADED,
            f"the spool is {fill:.0%} full",
            details,
            reason=f"{fill:.0%} full",
        )
    return HealthCheck("spool", HealthStatus.HEALTHY, f"{fill:.0%} full", details)


def sources_check(connections: Iterable[Connection], pipe: Pipeline | None) -> HealthCheck:
    """Degraded while a source is paused or a running one is not connected; never unhealthy."""
    states = {c.name: c.state for c in connections}
    running = [n for n, s in states.items() if s != "stopped"]
    down = [n for n in running if states[n] not in ("connected", "running")]
    paused = sorted(pipe.paused_sources) if pipe is not None else []
    if paused:
        why = "the spool cannot write" if pipe and pipe.spool_error else "the spool is full"
        return HealthCheck(
            "sources",
            HealthStatus.DEGRADED,
            f"paused ({why}): {', '.join(paused)}",
            states,
            reason=f"{len(paused)} paused ({why})",
        )
    if down:
        # Degraded, not unhealthy: a rig that is down must not take the API out of service.
        return HealthCheck(
            "sources",
            HealthStatus.DEGRADED,
            f"not connected: {', '.join(sorted(down))}",
            states,
            reason=f"{len(down)} not connected",
        )
    return HealthCheck("sources", HealthStatus.HEALTHY, f"{len(running)} running", states)


def refresh_gauges(
    metrics: WitsMetrics,
    connections: Iterable[Connection] | None,
    spool: Spool | None,
    pipe: Pipeline | None,
) -> None:
    """Set the gauges that are read rather than counted (called before each scrape)."""
    m = metrics
    if connections is not None:
        active: dict[str, int] = {}
        for conn in connections:
            active.setdefault(conn.transport, 0)
            if conn.connected:
                active[conn.transport] += 1
        for transport, count in active.items():
            m.active_connections.labels(transport_type=transport).set(count)
    if pipe is not None:
        # The relays' consumers and drops, MQTT's acknowledged messages: counted by the sinks.
        for name, counters in pipe.sink_counters().items():
            m.observe_sink(name, counters)
    if spool is None or pipe is None or spool.closed:
        return
    backlog = pipe.backlog
    m.spool_records.set(backlog)
    m.spool_bytes.set(spool.size_bytes)
    m.spool_dropped_total.set(spool.dropped_records)
    m.spool_writable.set(0 if pipe.spool_error is not None else 1)
    m.spool_write_failures.set(pipe.stats.spool_write_failures)
    m.sources_paused.set(len(pipe.paused_sources))
    m.frames_lost.set(pipe.stats.frames_lost)
    m.replay_lag_seconds.set(_replay_lag(spool, backlog))
    for name, breaker in pipe.breakers.items():
        m.sink_circuit_open.labels(sink=name).set(1 if breaker.state.value == "open" else 0)
    for name, counters in pipe.sink_counters().items():
        m.observe_sink(name, counters)


def broker_check(sinks: Iterable[JetStreamSink], grace: float) -> HealthCheck:
    """A fleet edge's NATS cluster: unhealthy once a JetStream sink has gone unacknowledged for
    longer than ``grace`` seconds (``WITS_BROKER_GRACE``), degraded before that."""
    now = time.monotonic()
    failing = {s.name: now - s.stats.failing_since for s in sinks if s.stats.failing_since is not None}
    if not failing:
        return HealthCheck("broker", HealthStatus.HEALTHY, "the NATS cluster acknowledges")
    longest = max(failing.values())
    status = HealthStatus.UNHEALTHY if longest > grace else HealthStatus.DEGRADED
    details = {name: f"not acknowledged for {seconds:.0f} s" for name, seconds in failing.items()}
    return HealthCheck(
        "broker",
        status,
        f"the NATS cluster has not acknowledged for {longest:.0f} s; frames wait in the spool",
        details,
        reason=f"unacknowledged for {longest:.0f} s",
    )


def _replay_lag(spool: Spool, backlog: int) -> float:
    """Seconds since the oldest frame still waiting in the spool was received."""
    if backlog <= 0:
        return 0.0
    for seq, payload in spool.pending(after=spool.acked_seq, limit=1):
        try:
            received = unpack_frame(payload, sequence=seq).timestamp
        except Exception:  # an unreadable record is skipped by the writers too
            return 0.0
        return max(time.time() - received.timestamp(), 0.0)
    return 0.0
