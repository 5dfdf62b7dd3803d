"""The ingest side of ``witskit run``: the pipeline the service builds, and its connections.

:func:`build_pipeline` builds the pipeline of a plan (the pipeline file) around the service's own
store: a :class:`StoreSink` first, writing through the pool the API reads from, then the plan's
other sinks. :class:`KeptConnections` runs the pipeline's sources by name: those of the pipeline
file, and those added through the API, which are kept in the database and restored at the next
start (see :mod:`witskit.service.connections`). It is what the routes get behind
:class:`~witskit.service.deps.ConnectionControl`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from witskit.config import PipelineConfig, WitsConfig
from witskit.monitoring.metrics import WitsMetrics
from witskit.pipeline import Pipeline, Sink, open_sink
from witskit.pipeline.build import decoder_from, spool_from
from witskit.security.logging import redact_text
from witskit.service.accounts import AccountStore
from witskit.service.connections import Connection, ConnectionManager, ConnectionNotFound
from witskit.storage.errors import DatabaseUnavailable
from witskit.storage.spool import Spool
from witskit.storage.store import Store
from witskit.transport.urls import redact_url

__all__ = ["KeptConnections", "StoreSink", "build_pipeline"]

log = logging.getLogger("witskit.service")


class StoreSink(Sink):
    """Writes to the service's own :class:`Store` (shared with the API, closed by the service)."""

    def __init__(self, store: Store, metrics: WitsMetrics, ready: asyncio.Event | None = None) -> None:
        self.store = store
        self.name = store.url
        self._metrics = metrics
        #: Set once the database is reached and migrated (at once, unless it was down at start).
        self.ready = ready

    async def write(self, batch: Any, *, upto: int) -> None:
        """One transaction per batch, timed as ``store_write``."""
        if self.ready is not None and not self.ready.is_set():
            # The schema may not exist yet: never write before the migration ran.
            raise DatabaseUnavailable(
                f"not connected to {self.store.url} yet (down since the start)", url=self.store.url
            )
        start = time.perf_counter()
        try:
            await self.store.write(batch)
        except Exception:
            self._metrics.record_error("store_write", "high")
            raise
        finally:
            self._metrics.frame_processing_duration.labels(operation="store_write").observe(
                time.perf_counter() - start
            )


def build_pipeline(
    config: WitsConfig,
    plan: PipelineConfig,
    store: Store,
    metrics: WitsMetrics,
    ready: asyncio.Event,
    *,
    alarms: Sink | None = None,
) -> tuple[Spool, Pipeline, bool]:
    """The plan's spool and pipeline (no source yet), and whether it decodes to metric units.

    The service's store is written once, by a :class:`StoreSink` gated on ``ready``; a sink of the
    plan naming the same database is left out. ``alarms`` (the service's alarm stage) is the last
    sink: like every sink it reads the spool, so it never holds up ingest.
    """
    decoder = decoder_from(plan, config)
    sinks: list[Sink] = [StoreSink(store, metrics, ready)]
    own = config.database_url_value.strip()
    for sink in plan.sinks:
        if sink.url.strip() == own:
            continue  # the service's store is written once, through the shared connection pool
        sinks.append(open_sink(sink.url, **sink.options))
    if alarms is not None:
        sinks.append(alarms)
    spool = spool_from(plan, config)
    try:
        pipe = Pipeline([], sinks, spool, decoder=decoder, keep_running=True)
    except BaseException:
        spool.close()
        raise
    return spool, pipe, plan.decoder.metric


class KeptConnections:
    """The pipeline's connections, with those added through the API kept in the database."""

    def __init__(self, manager: ConnectionManager, accounts: AccountStore) -> None:
        self.manager = manager
        self._accounts = accounts

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.manager)

    def __len__(self) -> int:
        return len(self.manager)

    def get(self, name: str) -> Connection:
        """The connection by that name; :class:`ConnectionNotFound` when there is none."""
        return self.manager.get(name)

    def add_planned(self, url: str, *, name: str | None, options: dict[str, Any]) -> Connection:
        """Add and start a source of the pipeline file (not kept: the file says what runs)."""
        return self.manager.add(url, name=name, options=options)

    async def restore(self) -> None:
        """Add the connections kept in the database (started when enabled); the pipeline file's win."""
        for kept in await self._accounts.list_connections():
            shown = redact_text(redact_url(kept.url))
            if any(c.name == kept.name for c in self.manager):
                log.warning(
                    "connection %s (%s) was added through the API, but the pipeline file has one by "
                    "that name: the pipeline file's is used",
                    kept.name,
                    shown,
                )
                continue
            try:
                conn = self.manager.add(kept.url, name=kept.name, start=kept.enabled, from_api=True)
            except Exception as exc:
                # Not fatal: the rigs of the pipeline file still run, and the API can remove it.
                log.error(
                    "connection %s (%s) cannot be restored: %s", kept.name, shown, redact_text(str(exc))
                )
                continue
            conn.added_at = kept.created_at
            log.info("connection %s restored (%s)", kept.name, "started" if kept.enabled else "stopped")

    async def add(
        self, url: str, *, name: str | None = None, start: bool = True, actor: str | None = None
    ) -> Connection:
        """Add a source through the API: checked, kept in the database, then started unless told not."""
        conn = self.manager.add(url, name=name, start=False, from_api=True)  # checks the URL and the name
        try:
            await self._accounts.add_connection(
                conn.name, conn.url, enabled=start, created_by=actor, created_at=conn.added_at
            )
        except BaseException:
            await self.manager.remove(conn.name)
            raise
        if start:
            self.manager.start(conn.name)
        return conn

    async def start(self, name: str) -> Connection:
        """Start a connection (no-op when running); one added through the API stays started."""
        self.manager.get(name)
        await self._accounts.set_connection_enabled(name, True)
        return self.manager.start(name)

    async def stop(self, name: str) -> Connection:
        """Stop a connection (no-op when stopped); one added through the API stays stopped."""
        self.manager.get(name)
        await self._accounts.set_connection_enabled(name, False)
        return await self.manager.stop(name)

    async def remove(self, name: str) -> None:
        """Stop and forget a connection, in the database too.

        A connection kept in the database that could not be restored (its URL no longer opens) is
        not running, but is removed all the same.
        """
        try:
            self.manager.get(name)
        except ConnectionNotFound:
            if not await self._accounts.remove_connection(name):
                raise
            return
        await self._accounts.remove_connection(name)
        await self.manager.remove(name)
