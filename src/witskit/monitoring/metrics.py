"""Prometheus metrics with the plan's names, fed by the real pipeline.

Each :class:`WitsMetrics` owns a :class:`~prometheus_client.CollectorRegistry` (the process-wide
``metrics`` uses the default registry), so tests and embedded uses can make their own without
clashing registrations.
"""

from __future__ import annotations

import functools
import inspect
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from witskit._version import __version__

__all__ = ["WitsMetrics", "metrics", "track_processing_time"]

P = ParamSpec("P")
T = TypeVar("T")

# Frame processing is sub-millisecond; commits take tens of milliseconds; these buckets cover both.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WitsMetrics:
    """The plan's metrics plus spool size and replay lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.connections_total = Counter(
            "wits_connections_total",
            "Total number of connections attempted",
            ["transport_type", "status"],
            registry=r,
        )
        self.frames_processed_total = Counter(
            "wits_frames_processed_total",
            "Total number of WITS frames processed",
            ["source", "status"],
            registry=r,
        )
        self.frame_processing_duration = Histogram(
            "wits_frame_processing_seconds",
            "Time spent processing WITS frames",
            ["operation"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.active_connections = Gauge(
            "wits_active_connections", "Number of active connections", ["transport_type"], registry=r
        )
        self.error_rate = Counter(
            "wits_errors_total", "Total number of errors", ["error_type", "severity"], registry=r
        )
        self.data_quality_score = Gauge(
            "wits_data_quality_score", "Data quality score (0-1)", ["source"], registry=r
        )
        self.system_info = Info("wits_system", "System information", registry=r)
        self.spool_records = Gauge(
            "wits_spool_records", "Records in the spool not yet committed by every sink", registry=r
        )
        self.spool_bytes = Gauge("wits_spool_bytes", "Bytes of spool segments on disk", registry=r)
        self.spool_dropped_total = Gauge(
            "wits_spool_dropped_records", "Records dropped by the drop_oldest overflow policy", registry=r
        )
        self.spool_writable = Gauge(
            "wits_spool_writable",
            "0 while the spool cannot write (disk full, I/O error): sources are paused",
            registry=r,
        )
        self.spool_write_failures = Gauge(
            "wits_spool_write_failures",
            "Spool appends that failed (disk full, I/O error) and were retried, since start",
            registry=r,
        )
        self.sources_paused = Gauge(
            "wits_sources_paused",
            "Sources not read because the spool is full or cannot write (back-pressure)",
            registry=r,
        )
        self.frames_lost = Gauge(
            "wits_frames_lost",
            "Frames received but not stored (stopped while the spool was full or failing), since start",
            registry=r,
        )
        self.replay_lag_seconds = Gauge(
            "wits_replay_lag_seconds", "Age of the oldest frame waiting in the spool", registry=r
        )
        self.sink_circuit_open = Gauge(
            "wits_sink_circuit_open", "1 while a sink's circuit breaker is open", ["sink"], registry=r
        )
        # A fleet edge's JetStream sinks (docs/fleet.md); what waits on the edge is wits_spool_records.
        self.edge_published = Gauge(
            "wits_edge_published",
            "Frames an edge published to JetStream, since start",
            ["sink"],
            registry=r,
        )
        self.edge_messages = Gauge(
            "wits_edge_messages",
            "Messages an edge published to JetStream (a bundle of a rig's frames is one), since start",
            ["sink"],
            registry=r,
        )
        self.edge_acked = Gauge(
            "wits_edge_acked", "Frames JetStream acknowledged (PubAck), since start", ["sink"], registry=r
        )
        self.edge_duplicates = Gauge(
            "wits_edge_duplicates",
            "Re-published messages the stream dropped by their id, since start",
            ["sink"],
            registry=r,
        )
        self.edge_failed_batches = Gauge(
            "wits_edge_failed_batches", "Batches the cluster did not fully acknowledge", ["sink"], registry=r
        )
        self.edge_broker_up = Gauge(
            "wits_edge_broker_up",
            "1 while the NATS cluster acknowledges the edge's publishes",
            ["sink"],
            registry=r,
        )
        self.relay_consumers = Gauge(
            "wits_relay_consumers", "Consumers connected to a WITS relay output now", ["sink"], registry=r
        )
        self.relay_frames_sent = Gauge(
            "wits_relay_frames_sent",
            "Frames written to a relay's consumers (one per consumer), since start",
            ["sink"],
            registry=r,
        )
        self.relay_frames_dropped = Gauge(
            "wits_relay_frames_dropped",
            "Frames a relay dropped because a consumer's queue was full (slow or dead consumer), since start",
            ["sink"],
            registry=r,
        )
        self.relay_refused = Gauge(
            "wits_relay_refused_connections",
            "Consumer connections a relay closed at once (allowlist, max_consumers, TLS), since start",
            ["sink"],
            registry=r,
        )
        self.mqtt_messages_published = Gauge(
            "wits_mqtt_messages_published",
            "Messages an MQTT sink had acknowledged (PUBACK), since start",
            ["sink"],
            registry=r,
        )
        self.system_info.info(
            {"version": __version__, "python": platform.python_version(), "platform": platform.platform()}
        )

    def record_connection_attempt(self, transport_type: str, success: bool) -> None:
        """Count a connection attempt."""
        self.connections_total.labels(
            transport_type=transport_type, status="success" if success else "failure"
        ).inc()

    def record_frame_processed(self, source: str, success: bool) -> None:
        """Count a frame (or a FrameError, with ``success=False``)."""
        self.frames_processed_total.labels(source=source, status="success" if success else "failure").inc()

    def record_error(self, error_type: str, severity: str) -> None:
        """Count an error."""
        self.error_rate.labels(error_type=error_type, severity=severity).inc()

    def observe_sink(self, sink: str, counters: Mapping[str, int]) -> None:
        """Set the relay, MQTT and JetStream gauges of one sink from its ``counters()`` (names as in
        :class:`witskit.transport.relay.RelayStats`, plus ``messages_published``, and the fleet
        edge's ``published``, ``edge_messages``, ``acked``, ``duplicates``, ``failed_batches``,
        ``broker_up``); others
        are ignored."""
        gauges = {
            "consumers": self.relay_consumers,
            "frames_sent": self.relay_frames_sent,
            "frames_dropped": self.relay_frames_dropped,
            "refused": self.relay_refused,
            "messages_published": self.mqtt_messages_published,
            "published": self.edge_published,
            "edge_messages": self.edge_messages,
            "acked": self.edge_acked,
            "duplicates": self.edge_duplicates,
            "failed_batches": self.edge_failed_batches,
            "broker_up": self.edge_broker_up,
        }
        for key, value in counters.items():
            gauge = gauges.get(key)
            if gauge is not None:
                gauge.labels(sink=sink).set(value)

    def render(self) -> bytes:
        """The exposition text for ``/metrics``."""
        return generate_latest(self.registry)


#: The process-wide metrics, on prometheus_client's default registry (the plan's ``metrics``).
metrics = WitsMetrics(REGISTRY)


def track_processing_time(
    operation: str, *, on: WitsMetrics | None = None
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator: observe how long each call takes in ``wits_frame_processing_seconds{operation=...}``."""

    def decorator(func: Callable[P, T]) -> Callable[P, T]:
        target = on or metrics

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    target.frame_processing_duration.labels(operation=operation).observe(
                        time.perf_counter() - start
                    )

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                target.frame_processing_duration.labels(operation=operation).observe(
                    time.perf_counter() - start
                )

        return wrapper

    return decorator
