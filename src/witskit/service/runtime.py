"""The running service: everything one process serves, opened and closed together.

:class:`Service` assembles what the API needs (store, accounts, identity, audit log, live hub,
latest-values cache, metrics, health checks) and, when it ingests (``witskit run``), the pipeline,
its spool and its connections (:mod:`witskit.service.ingest`; those of the pipeline file, then
those added through the API and kept in the database), watched by :mod:`witskit.service.observe`.
A process that only serves (``witskit serve``) has a :class:`~witskit.service.tailer.FrameTailer`
instead, which feeds the live hub from the frames another process stores. A database that is down
when ``witskit run`` starts is reached in the background while the spool takes the frames.

The API sees none of this directly: :attr:`Service.context` is the narrow
:class:`~witskit.service.deps.AppContext` its routes get. :func:`witskit.service.server.serve` runs
a service behind uvicorn; the signing key and the data directory come from
:mod:`witskit.service.datadir`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from witskit.config import PipelineConfig, SourceConfig, WitsConfig
from witskit.monitoring.health import HealthCheck, HealthMonitor, HealthStatus, database_health_check
from witskit.monitoring.metrics import WitsMetrics
from witskit.pipeline import LiveHub, Pipeline, Subscription
from witskit.pipeline.build import decoder_from, rig_state_settings
from witskit.pipeline.jetstream import JetStreamSink
from witskit.security.auth import AuthManager
from witskit.service.accounts import AccountStore
from witskit.service.alarms import AlarmDesk
from witskit.service.analytics import LiveAnalytics
from witskit.service.app import create_app
from witskit.service.audit import AuditLog
from witskit.service.connections import ConnectionManager
from witskit.service.datadir import ensure_data_dir, resolve_signing_key
from witskit.service.deps import AppContext
from witskit.service.identity import Identity
from witskit.service.ingest import KeptConnections, build_pipeline
from witskit.service.latest import LatestCache
from witskit.service.observe import FrameObserver, broker_check, refresh_gauges, sources_check, spool_check
from witskit.service.tailer import DEFAULT_INTERVAL, FrameTailer
from witskit.storage.alarm_events import AlarmEventStore
from witskit.storage.archive import Archive
from witskit.storage.errors import StorageError
from witskit.storage.fleet_status import FleetStatus
from witskit.storage.maintenance import run_maintenance
from witskit.storage.retention import RetentionPolicy
from witskit.storage.spool import Spool
from witskit.storage.store import Store

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["DEFAULT_PIPELINE", "Service"]

log = logging.getLogger("witskit.service")

#: What ``witskit run`` ingests with no pipeline file: one simulated rig, so the first command works.
DEFAULT_PIPELINE: Final = PipelineConfig(sources=[SourceConfig(url="sim://rig-1?rate=1", name="rig-1")])
#: Weight of the newest frame in the data quality score (an exponential moving average over
#: roughly the last 100 frames: recent enough to show a noisy line, steady enough to read).
_QUALITY_WEIGHT: Final = 0.01
#: Spool fill at which readiness says degraded (a database outage is building a backlog).
_SPOOL_DEGRADED: Final = 0.8
#: A database down at start is tried again after this many seconds, doubling up to the max: soon
#: enough that a database started a moment after the service is used at once, and at most every
#: 10 s after that (each attempt costs one connect).
_DB_RETRY_FIRST: Final = 0.5
_DB_RETRY_MAX: Final = 10.0
#: While it stays down, a reminder is logged this often (seconds).
_DB_REMIND_EVERY: Final = 30.0


# The service ------------------------------------------------------------------------------------
class Service:
    """Everything one process serves (see the module docstring). Open with :meth:`open`."""

    def __init__(
        self,
        config: WitsConfig,
        *,
        store: Store,
        accounts: AccountStore,
        identity: Identity,
        audit: AuditLog,
        metrics: WitsMetrics,
        pipeline: Pipeline | None,
        spool: Spool | None,
        metric_units: bool,
        alarms: AlarmDesk | None = None,
    ) -> None:
        """Use :meth:`open`."""
        self.config = config
        self.store = store
        self.accounts = accounts
        self.identity = identity
        self.audit = audit
        self.metrics = metrics
        self.pipeline = pipeline
        self.spool = spool
        self.metric_units = metric_units
        self.hub = LiveHub()
        #: The alarms (:mod:`witskit.service.alarms`); their live events go to the hub.
        self.alarms = alarms or AlarmDesk(
            config, settings=accounts, events=AlarmEventStore(accounts.database)
        )
        self.alarms.publish = self.hub.publish_alarm
        self.latest = LatestCache(store, ttl=None if pipeline is not None else 1.0)
        #: Takes the pipeline's callbacks (set by :meth:`open`) and the connections' status.
        self.observer = FrameObserver(self.hub, self.latest, metrics)
        #: The pipeline's sources by name (None when this process does not ingest).
        self.connections: KeptConnections | None = (
            KeptConnections(ConnectionManager(pipeline, on_status=self.observer.on_status), accounts)
            if pipeline is not None
            else None
        )
        self.health = HealthMonitor(timeout=min(config.database_timeout, 5.0))
        self.health.register_check("database", self._check_database)
        #: Feeds the live hub from the store when this process does not ingest (set by :meth:`open`).
        self.tailer: FrameTailer | None = None
        if pipeline is not None and spool is not None and self.connections is not None:
            kept, pipe = self.connections, pipeline
            self.health.register_check("spool", lambda: spool_check(spool, pipe))
            self.health.register_check("sources", lambda: sources_check(kept, pipe))
            edges = [s for s in pipeline.sinks if isinstance(s, JetStreamSink)]
            if edges:  # a fleet edge: its readiness is the cluster's acknowledging (docs/fleet.md)
                grace = config.broker_grace
                self.health.register_check("broker", lambda: broker_check(edges, grace))
        self.started_at = time.time()
        #: Set while the database has not been reached since the start (``witskit run`` goes on
        #: ingesting into the spool and retries); None once it is connected.
        self.database_error: str | None = None
        #: Set once the database is reached and its schema current.
        self.database_ready = asyncio.Event()
        self.database_ready.set()
        self._connector: asyncio.Task[None] | None = None
        #: The history's maintenance passes (WITS_MAINTENANCE_INTERVAL; see :meth:`_start_maintenance`).
        self._maintenance: asyncio.Task[None] | None = None
        self._closed = False
        self._context: AppContext | None = None
        self._app: FastAPI | None = None
        #: The rigs' live states (set by :meth:`open`; fed by the observer when this process ingests).
        self.analytics: LiveAnalytics | None = None

    @classmethod
    async def open(
        cls,
        config: WitsConfig,
        *,
        pipeline: PipelineConfig | None = None,
        ingest: bool = True,
        metrics: WitsMetrics | None = None,
        live_interval: float = DEFAULT_INTERVAL,
    ) -> Service:
        """Check the signing key, open the store (migrating it) and, with ``ingest``, the pipeline.

        ``pipeline`` defaults to :data:`DEFAULT_PIPELINE` when ingesting; the connections kept in
        the database are restored after its sources. Without ``ingest``, live frames come from a
        tailer that looks at the store every ``live_interval`` seconds. ``metrics`` defaults to the
        process-wide :data:`witskit.monitoring.metrics.metrics`.
        """
        if metrics is None:
            from witskit.monitoring.metrics import metrics as global_metrics

            metrics = global_metrics
        key = resolve_signing_key(config)  # before anything else: a bad key must fail fast
        ensure_data_dir(config)
        url = config.database_url_value
        down: StorageError | None = None
        try:
            store = await Store.open(
                url, migrate=True, pool_size=config.database_pool_size, timeout=config.database_timeout
            )
        except StorageError as exc:
            if not (ingest and exc.transient):
                raise
            # witskit run: a rig cannot wait for the database. Ingest into the spool now, and
            # connect (and migrate) in the background; the API answers 503 meanwhile.
            down = exc
            store = Store.unopened(url, pool_size=config.database_pool_size, timeout=config.database_timeout)
        accounts: AccountStore | None = None
        audit: AuditLog | None = None
        spool: Spool | None = None
        service: Service | None = None
        try:
            accounts = await AccountStore.open(url, timeout=config.database_timeout)
            audit = AuditLog(accounts)
            audit.start()
            identity = Identity(AuthManager(key), accounts, audit)
            pipe: Pipeline | None = None
            metric_units = False
            plan = pipeline if pipeline is not None else DEFAULT_PIPELINE
            ready = asyncio.Event()
            if down is None:
                ready.set()
            desk: AlarmDesk | None = None
            if ingest:
                desk = AlarmDesk.for_pipeline(
                    config,
                    plan,
                    settings=accounts,
                    events=AlarmEventStore(accounts.database),  # the accounts' pool: not owned
                    symbols=decoder_from(plan, config).symbols,
                )
                spool, pipe, metric_units = build_pipeline(
                    config, plan, store, metrics, ready, alarms=desk.stage
                )
            service = cls(
                config,
                store=store,
                accounts=accounts,
                identity=identity,
                audit=audit,
                metrics=metrics,
                pipeline=pipe,
                spool=spool,
                metric_units=metric_units,
                alarms=desk,
            )
            service.database_ready = ready
            analytics = service.analytics = LiveAnalytics(
                accounts,
                store,
                metric=plan.decoder.metric,
                decoder=lambda: decoder_from(plan, config),
                live=pipe is not None,
            )
            if pipe is not None:
                pipe.on_frame = service.observer.on_frame
                pipe.on_frame_error = service.observer.on_frame_error
                service.observer.listeners.append(analytics.on_frame)
                if desk is not None:
                    desk.use_rig_state_settings(analytics.settings_for)
                analytics.start()
                assert service.connections is not None
                for i, src in enumerate(plan.sources):
                    conn = service.connections.add_planned(src.url, name=src.name, options=src.options)
                    if src.rig_state is not None:
                        where = f"sources.{i}.rig_state"
                        settings = rig_state_settings(src.rig_state, plan.decoder.metric, where)
                        analytics.configure(conn.name, settings)
                if down is None:
                    await service.connections.restore()
                    await service.alarms.restore()
                else:
                    service.database_error = str(down)
                    log.error(
                        "database %s is not reachable at start (%s): ingesting into the spool "
                        "meanwhile and retrying every %.0f s at most; the API answers 503 until then",
                        store.url,
                        down,
                        _DB_RETRY_MAX,
                    )
                    service._connector = asyncio.create_task(
                        service._connect_database(), name="witskit-database"
                    )
            else:
                service.tailer = FrameTailer.open(
                    url,
                    service.hub,
                    decoder_from(plan, config),
                    interval=live_interval,
                    timeout=config.database_timeout,
                )
            service._start_maintenance()
            return service
        except BaseException:
            if service is not None:
                await service.aclose()
                raise
            if audit is not None:
                await audit.aclose()
            if accounts is not None:
                await accounts.aclose()
            if spool is not None:
                spool.close()
            await store.aclose()
            raise

    def _start_maintenance(self) -> None:
        """Read the archive (WITS_ARCHIVE_URL) in /data and /data/series, and run compaction, the
        archive and retention every WITS_MAINTENANCE_INTERVAL seconds (``witskit.storage.maintenance``)."""
        config = self.config
        archive = None
        if config.archive_url:
            archive = Archive(config.archive_url)
            self.store.attach_archive(archive)
        if config.maintenance_interval is not None:
            policy = RetentionPolicy(config.retention_days, dict(config.retention_sources))
            self._maintenance = asyncio.create_task(
                run_maintenance(self.store, policy, archive, config.maintenance_interval),
                name="witskit-maintenance",
            )

    @property
    def ingests(self) -> bool:
        """True when this process runs a pipeline (``witskit run``)."""
        return self.pipeline is not None

    @property
    def context(self) -> AppContext:
        """What the routes, the live WebSocket and the probes use of this service (built once)."""
        if self._context is None:
            self._context = AppContext(
                config=self.config,
                identity=self.identity,
                accounts=self.accounts,
                audit=self.audit,
                store=self.store,
                latest=self.latest,
                health=self.health,
                connections=self.connections,
                metric_units=self.metric_units,
                render_metrics=self.render_metrics,
                subscribe=self.subscribe,
                alarms=self.alarms,
                analytics=self.analytics,
                fleet=FleetStatus(self.accounts.database),
            )
        return self._context

    @property
    def app(self) -> FastAPI:
        """The FastAPI application over :attr:`context` (built on first use)."""
        if self._app is None:
            self._app = create_app(self.context)
        return self._app

    # Live subscriptions -----------------------------------------------------------------------
    async def subscribe(self, source: str | None = None) -> Subscription:
        """A live subscription to one source's frames (every source's when None).

        In a process that only serves, the tailer follows the source from its newest stored frame
        before this returns.
        """
        subscription = self.hub.subscribe(source)
        if self.tailer is not None:
            try:
                await self.tailer.follow(subscription)
            except BaseException:
                subscription.close()
                raise
        return subscription

    # The database ----------------------------------------------------------------------------
    async def _connect_database(self) -> None:
        """Reach and migrate a database that was down at start, then restore the kept connections."""
        since = time.monotonic()
        delay = _DB_RETRY_FIRST
        reminded = since
        while True:
            await asyncio.sleep(delay)
            try:
                await self.store.migrate()
            except Exception as exc:
                self.database_error = str(exc)
                now = time.monotonic()
                if now - reminded >= _DB_REMIND_EVERY:
                    reminded = now
                    backlog = self.pipeline.backlog if self.pipeline is not None else 0
                    log.warning(
                        "database %s still not reachable after %.0f s (%s); %d frames wait in the spool",
                        self.store.url,
                        now - since,
                        exc,
                        backlog,
                    )
                delay = min(delay * 2, _DB_RETRY_MAX)
                continue
            break
        self.database_error = None
        self.database_ready.set()
        backlog = self.pipeline.backlog if self.pipeline is not None else 0
        log.warning(
            "database %s reachable after %.0f s: writing the %d frames that waited in the spool",
            self.store.url,
            time.monotonic() - since,
            backlog,
        )
        if self.connections is not None:
            try:
                await self.connections.restore()
            except Exception as exc:  # the pipeline file's rigs still run
                log.error("the connections kept in the database cannot be restored: %s", exc)
        try:
            await self.alarms.restore()
        except Exception as exc:  # the pipeline file's rules still run
            log.error("the alarm rules kept in the database cannot be restored: %s", exc)

    # Metrics and health -----------------------------------------------------------------------
    def refresh_metrics(self) -> None:
        """Set the gauges that are read rather than counted (called before each scrape)."""
        refresh_gauges(self.metrics, self.connections, self.spool, self.pipeline)

    def render_metrics(self) -> bytes:
        """The Prometheus exposition text, gauges refreshed."""
        self.refresh_metrics()
        return self.metrics.render()

    async def _check_database(self) -> HealthCheck:
        if not self.database_ready.is_set():
            backlog = self.pipeline.backlog if self.pipeline is not None else 0
            return HealthCheck(
                "database",
                HealthStatus.UNHEALTHY,
                f"not reachable since the start ({self.database_error}); retrying, and ingesting "
                f"meanwhile: {backlog} frames wait in the spool",
                reason=f"not reachable since the start; {backlog} frames wait in the spool",
            )
        return await database_health_check(self.store.ping)

    # Running ----------------------------------------------------------------------------------
    async def run_pipeline(self) -> None:
        """Run the pipeline until :meth:`stop` (returns at once when this process does not ingest)."""
        if self.pipeline is not None:
            await self.pipeline.run()

    def stop(self) -> None:
        """Ask the pipeline to stop and drain, and end every live subscription."""
        self.hub.close()
        if self.tailer is not None:
            self.tailer.stop()
        if self.pipeline is not None:
            self.pipeline.stop()

    async def aclose(self) -> None:
        """Close everything (after :meth:`run_pipeline` has returned). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.hub.close()
        maintenance, self._maintenance = self._maintenance, None
        if maintenance is not None:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connector
        if self.tailer is not None:
            await self.tailer.aclose()
        if self.analytics is not None:
            await self.analytics.aclose()  # the last states, while the database is open
        await self.identity.aclose()
        await self.audit.aclose()
        await self.accounts.aclose()
        if self.spool is not None:
            self.spool.close()
        await self.store.aclose()
