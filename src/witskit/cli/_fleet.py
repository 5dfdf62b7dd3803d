"""``witskit worker --config central.yaml``: a central writer of a fleet (JetStream -> database).

The file is a pipeline file with one ``nats://`` source (its durable consumer, shared by every
worker that names it) and one database sink; ``decoder:`` applies as in any pipeline file. Any
number of workers may run on one PostgreSQL or MariaDB database; SQLite takes one (a second is
refused at start). SIGTERM or Ctrl-C finishes the round in hand (commit, then acks) and exits 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from witskit.cli._console import handle_errors, info

__all__ = ["register", "run_worker"]


def run_worker(config_path: Path, *, name: str | None = None) -> int:
    """Run a worker from a central pipeline file until a signal; return the exit status."""
    import asyncio
    import logging
    import os
    import signal
    import socket

    from witskit.cli._ingest import _LogLines
    from witskit.config import load_config, load_pipeline
    from witskit.pipeline.build import decoder_from
    from witskit.pipeline.worker import Worker, worker_problems
    from witskit.storage.errors import DatabaseUnavailable
    from witskit.storage.store import Store
    from witskit.storage.writers import single_writer

    plan = load_pipeline(config_path, worker_problems)
    config = load_config()
    decoder = decoder_from(plan, config)
    db_url = plan.sinks[0].url
    label = name or f"witskit-worker {socket.gethostname()}:{os.getpid()}"

    async def main() -> None:
        store = Store.unopened(db_url)
        worker = Worker(plan.sources[0].url, store, decoder=decoder, name=label)
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
            await worker.run()
        finally:
            stats = worker.stats
            malformed = ", ".join(f"{k} {n}" for k, n in sorted(stats.malformed.items())) or "none"
            p50, p99 = stats.latencies.percentile(50), stats.latencies.percentile(99)
            latency = "none" if p50 is None else f"p50 {p50:.3f} s, p99 {p99:.3f} s"
            info(
                f"{label}: fetched {stats.fetched}, committed {stats.committed}, acked {stats.acked}, "
                f"redelivered {stats.redelivered}, malformed: {malformed}; "
                f"receive-to-commit latency {latency}"
            )
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
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
    ) -> None:
        """Store a fleet's frames from a JetStream stream, acknowledging each after its commit.

        Run as many as needed, on one or several machines: they share the durable consumer the
        file names and JetStream spreads the messages among them. See docs/fleet.md.
        """
        status = run_worker(config, name=name)
        if status:
            raise typer.Exit(status)
