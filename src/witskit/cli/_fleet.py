"""``witskit worker --config central.yaml``: a central writer of a fleet (JetStream -> database).

The file is a pipeline file with one ``nats://`` source (its durable consumer, shared by every
worker that names it) and one database sink; ``decoder:`` applies as in any pipeline file. Any
number of workers may run on one PostgreSQL or MariaDB database; SQLite takes one (a second is
refused at start). SIGTERM or Ctrl-C finishes the round in hand (commit, then acks) and exits 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from witskit.cli._console import handle_errors, info

if TYPE_CHECKING:
    from witskit.monitoring.probes import Sample
    from witskit.pipeline.worker import Worker

__all__ = ["register", "run_worker"]


#: Seconds the cluster may be unreachable (or commits fail) before /readyz says "not ready".
DEFAULT_BROKER_GRACE = 30.0


def worker_samples(worker: Worker) -> list[Sample]:
    """The worker's counters as Prometheus samples (``witskit_worker_*``), labelled by its name."""
    stats = worker.stats
    me = {"worker": worker.name}
    samples: list[Sample] = [
        (
            "witskit_worker_fetched_total",
            "counter",
            "Frames fetched from the stream (a bundle counts its frames)",
            me,
            stats.fetched,
        ),
        (
            "witskit_worker_messages_total",
            "counter",
            "Messages fetched from the stream (a bundle of frames is one)",
            me,
            stats.messages,
        ),
        (
            "witskit_worker_deferred_total",
            "counter",
            "Messages handed back undecoded while the buffer was full (delivered again later)",
            me,
            stats.deferred,
        ),
        (
            "witskit_worker_committed_total",
            "counter",
            "Frames in committed SQL transactions",
            me,
            stats.committed,
        ),
        (
            "witskit_worker_acked_total",
            "counter",
            "Frames whose messages were acknowledged after their commit",
            me,
            stats.acked,
        ),
        (
            "witskit_worker_redelivered_total",
            "counter",
            "Messages delivered more than once (a worker died, an ack was lost)",
            me,
            stats.redelivered,
        ),
        (
            "witskit_worker_commit_failures_total",
            "counter",
            "Failed commit attempts",
            me,
            stats.commit_failures,
        ),
        (
            "witskit_worker_broker_up",
            "gauge",
            "1 while the NATS cluster answers",
            me,
            float(stats.connected and stats.broker_down_since is None),
        ),
    ]
    if stats.consumer_lag is not None:
        samples.append(
            (
                "witskit_worker_consumer_lag",
                "gauge",
                "Messages of the durable consumer not yet acknowledged (pending + in flight)",
                me,
                stats.consumer_lag,
            )
        )
    for kind, count in sorted(stats.malformed.items()):
        samples.append(
            (
                "witskit_worker_malformed_total",
                "counter",
                "Messages terminated as not WitsKit frames",
                {**me, "kind": kind},
                count,
            )
        )
    for q in (50, 99):
        value = stats.latencies.percentile(q)
        if value is not None:
            samples.append(
                (
                    "witskit_worker_commit_latency_seconds",
                    "gauge",
                    "Receive-at-edge to central-commit latency, percentile since start",
                    {**me, "quantile": f"0.{q}"},
                    value,
                )
            )
    return samples


def run_worker(
    config_path: Path,
    *,
    name: str | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    broker_grace: float = DEFAULT_BROKER_GRACE,
) -> int:
    """Run a worker from a central pipeline file until a signal; return the exit status."""
    import asyncio
    import logging
    import os
    import signal
    import socket

    from witskit.cli._ingest import _LogLines
    from witskit.config import load_config, load_pipeline
    from witskit.monitoring.probes import ProbeServer, render_metrics
    from witskit.pipeline.build import decoder_from
    from witskit.pipeline.worker import Worker, worker_problems
    from witskit.storage.errors import DatabaseUnavailable
    from witskit.storage.fleet_status import FleetStatus
    from witskit.storage.store import Store
    from witskit.storage.writers import single_writer

    plan = load_pipeline(config_path, worker_problems)
    config = load_config()
    decoder = decoder_from(plan, config)
    db_url = plan.sinks[0].url
    label = name or f"witskit-worker {socket.gethostname()}:{os.getpid()}"

    async def main() -> None:
        store = Store.unopened(db_url)
        status = FleetStatus.open(db_url)
        worker = Worker(plan.sources[0].url, store, decoder=decoder, name=label, status=status)
        probes = None
        if metrics_port is not None:
            probes = ProbeServer(
                metrics_host,
                metrics_port,
                ready=lambda: worker.readiness(broker_grace),
                metrics=lambda: render_metrics(worker_samples(worker)),
            )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        try:
            delay = 0.5
            while not worker.stopping:  # the database may come up after the worker: keep trying
                try:
                    await store.migrate()
                    break
                except DatabaseUnavailable as exc:  # anything else (a wrong password) is final
                    info(f"database {store.url} not ready ({exc}); retrying in {delay:.0f} s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            else:
                return
            info(f"{label}: {worker.target.url} -> {store.url}")
            if probes is not None:
                await probes.start()
                info(f"{label}: /livez /readyz /metrics on http://{probes.host}:{probes.port}")
            await worker.run()
        finally:
            stats = worker.stats
            malformed = ", ".join(f"{k} {n}" for k, n in sorted(stats.malformed.items())) or "none"
            p50, p99 = stats.latencies.percentile(50), stats.latencies.percentile(99)
            latency = "none" if p50 is None else f"p50 {p50:.3f} s, p99 {p99:.3f} s"
            f50, f99 = stats.fetch_latencies.percentile(50), stats.fetch_latencies.percentile(99)
            w50, w99 = stats.worker_latencies.percentile(50), stats.worker_latencies.percentile(99)
            upstream = (
                ""
                if f50 is None or w50 is None
                else f" (receive to fetch: p50 {f50:.3f} s, p99 {f99:.3f} s; fetch to commit: "
                f"p50 {w50:.3f} s, p99 {w99:.3f} s)"
            )
            mean = f"{stats.committed / stats.commits:.0f}" if stats.commits else "-"
            info(
                f"{label}: fetched {stats.fetched}, committed {stats.committed} in {stats.commits} "
                f"transactions (mean {mean}), acked {stats.acked}, redelivered {stats.redelivered}, "
                f"malformed: {malformed}; receive-to-commit latency {latency}{upstream}"
            )
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if probes is not None:
                await probes.aclose()
            await status.aclose()
            await store.aclose()

    handler = _LogLines()
    logging.getLogger("witskit").addHandler(handler)
    try:
        with single_writer(db_url, role="witskit worker"):
            asyncio.run(main())
    finally:
        logging.getLogger("witskit").removeHandler(handler)
    return 0


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the command line."""

    @app.command(short_help="Central fleet writer: a JetStream consumer into a database.")
    @handle_errors
    def worker(
        *,
        config: Annotated[
            Path,
            typer.Option(
                "--config",
                "-c",
                help="Central pipeline file: one nats:// source (with durable=) and one database sink.",
                dir_okay=False,
            ),
        ],
        name: Annotated[
            str | None,
            typer.Option("--name", help="This worker's name in the cluster and logs (default: host:pid)."),
        ] = None,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                "--metrics-port",
                min=0,
                max=65535,
                help="Serve /livez, /readyz and /metrics on this port (0: any free port; default: none).",
                show_default=False,
            ),
        ] = None,
        metrics_host: Annotated[
            str, typer.Option("--metrics-host", help="Address of the --metrics-port listener.")
        ] = "127.0.0.1",
        broker_grace: Annotated[
            float,
            typer.Option(
                "--broker-grace",
                min=0.0,
                help="Seconds the cluster may be unreachable (or commits fail) before /readyz fails.",
            ),
        ] = DEFAULT_BROKER_GRACE,
    ) -> None:
        """Store a fleet's frames from a JetStream stream, acknowledging each after its commit.

        Run as many as needed, on one or several machines: they share the durable consumer the
        file names and JetStream spreads the messages among them. See docs/fleet.md.
        """
        status = run_worker(
            config, name=name, metrics_host=metrics_host, metrics_port=metrics_port, broker_grace=broker_grace
        )
        if status:
            raise typer.Exit(status)
