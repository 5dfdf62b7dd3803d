"""Serving: bind the ports, start uvicorn for the API and the side ports, stop them all together.

:func:`serve` opens a :class:`~witskit.service.runtime.Service`, binds every port before anything
else is created (a port that cannot be bound stops the start, before an administrator password is
generated that nobody would see), and runs uvicorn programmatically on the same event loop as the
pipeline: the API on ``WITS_PORT``, and the unauthenticated side app (:mod:`witskit.service.side_app`)
on ``WITS_METRICS_PORT`` and ``WITS_HEALTH_CHECK_PORT`` when set. SIGTERM or SIGINT stops accepting
requests, ends live subscriptions, stops the sources and drains the spool into the store, then closes
everything and returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Final

from witskit.config import PipelineConfig, WitsConfig
from witskit.errors import UsageError
from witskit.monitoring.metrics import WitsMetrics
from witskit.service.app import create_app
from witskit.service.deps import AppContext
from witskit.service.runtime import Service
from witskit.service.side_app import create_health_app, create_metrics_app
from witskit.service.tailer import DEFAULT_INTERVAL

__all__ = ["HEALTH_PORT_SETTING", "MAX_REQUEST_HEAD_BYTES", "WS_MAX_MESSAGE_BYTES", "Bound", "serve"]

log = logging.getLogger("witskit.service")

#: The setting of the health port, as errors name it.
HEALTH_PORT_SETTING: Final = "WITS_HEALTH_CHECK_PORT"


@dataclass(frozen=True)
class Bound:
    """Where the service listens, once it does."""

    url: str
    port: int
    metrics_url: str | None
    admin_credentials: tuple[str, str] | None
    #: The ``/livez`` URL of the separate health port, when there is one.
    health_url: str | None = None
    #: The ingest connections at start: the pipeline file's and those restored from the database.
    connections: tuple[str, ...] = ()
    #: The active super_admins when none was created at this start (to say how to get in).
    admins: tuple[str, ...] = ()


def _listen(host: str, port: int, *, setting: str | None = None) -> socket.socket:
    """A listening TCP socket; bind errors are the caller's, as :class:`UsageError`.

    ``setting`` names the setting that chose the port, for the error message.
    """
    where = (
        f"{setting}={port}: cannot listen on {host}:{port}" if setting else f"cannot listen on {host}:{port}"
    )
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"{where}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for the client's delayed ACK (Nagle's algorithm).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise UsageError(f"{where}: {why}") from None
    sock.setblocking(False)
    return sock


def _health_port_wanted(port: int, *, api_port: int, metrics_port: int | None) -> bool:
    """True when ``port`` needs a listener of its own (non-zero, and not a port already serving)."""
    return port != 0 and port != api_port and port != metrics_port


def _url(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}", int(port)


class _FirstStartOnly(logging.Filter):
    """uvicorn logs "Started server process [pid]" per server: the API, metrics and health servers
    of one process would say it two or three times. Only the first passes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Started server process [%d]":
            return True
        pid = os.getpid()
        if pid in self.seen:
            return False
        self.seen.add(pid)
        return True


_FIRST_START = _FirstStartOnly()


#: The largest WebSocket message a client may send (the live stream reads none it needs).
WS_MAX_MESSAGE_BYTES: Final = 4096
#: The largest request head (request line and headers) read: a bearer token, a ``?token=`` and a
#: query of every channel code fit many times over. httptools, uvicorn's default parser, has no
#: limit at all (a 200 MB header line grew the server by 400 MB and held its event loop for a
#: minute), so the API is served by h11, which stops reading a head at this size (400).
MAX_REQUEST_HEAD_BYTES: Final = 64 * 1024


def _uvicorn_server(app: Any, settings: WitsConfig) -> Any:
    import uvicorn

    from witskit.service.http_guard import default_max_connections, guarded_h11

    uvicorn_log = logging.getLogger("uvicorn.error")
    if _FIRST_START not in uvicorn_log.filters:
        uvicorn_log.addFilter(_FIRST_START)

    class _Server(uvicorn.Server):
        """uvicorn, without its own signal handling: :func:`serve` stops ingest and API together."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app,
        lifespan="off",  # the service is opened and closed around the server, not by it
        log_config=None,  # logs go through witskit's redacting structlog pipeline
        access_log=False,  # the request middleware logs each request with its request id
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        # h11, with a time to send each request and a cap on connections (see http_guard).
        http=guarded_h11(
            request_timeout=settings.http_request_timeout,
            max_connections=settings.http_max_connections or default_max_connections(),
        ),
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        ws="websockets-sansio",
        ws_ping_interval=20.0,
        # Live subscribers send nothing: a message of more than this closes the socket (1009)
        # instead of being buffered (uvicorn's default is 16 MiB per message).
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        timeout_graceful_shutdown=5,
    )
    return _Server(config)


async def _bootstrap_later(
    service: Service,
    username: str | None,
    password: str | None,
    bound: Bound,
    on_ready: Callable[[Bound], None] | None,
) -> None:
    """Make the administrator once a database that was down at start is reached."""
    await service.database_ready.wait()
    try:
        generated = await service.identity.bootstrap_admin(username, password)
    except Exception as exc:
        log.error("cannot create the administrator account: %s", exc)
        return
    if generated is not None and on_ready is not None:
        on_ready(replace(bound, admin_credentials=generated))


@dataclass
class _Ports:
    """The listening sockets of one start, and the URLs they are reached at."""

    api: socket.socket
    api_url: str
    api_port: int
    metrics: socket.socket | None = None
    metrics_url: str | None = None
    health: socket.socket | None = None
    health_url: str | None = None


def _bind(config: WitsConfig, host: str, port: int, sockets: list[socket.socket]) -> _Ports:
    """Listen on the API port and the side ports the settings ask for; each socket goes in ``sockets``.

    A busy metrics port only costs the unauthenticated exposition (a warning); a health port that
    cannot be bound stops the start, as the API port does.
    """
    try:
        api = _listen(host, port)
    except UsageError as exc:
        raise UsageError(
            f"{exc}: choose another port with --port N (or WITS_PORT; --port 0 takes a free one)"
        ) from None
    sockets.append(api)
    ports = _Ports(api, *_url(api))
    if config.metrics_enabled and config.metrics_port != port:
        try:
            ports.metrics = _listen(host, config.metrics_port)
        except UsageError as exc:
            log.warning("%s: metrics are served only on the API port (/metrics, with a token)", exc)
        else:
            sockets.append(ports.metrics)
            ports.metrics_url = _url(ports.metrics)[0] + "/metrics"
    if _health_port_wanted(
        config.health_check_port,
        api_port=ports.api_port,
        metrics_port=config.metrics_port if ports.metrics is not None else None,
    ):
        ports.health = _listen(host, config.health_check_port, setting=HEALTH_PORT_SETTING)
        sockets.append(ports.health)
        ports.health_url = _url(ports.health)[0] + "/livez"
    return ports


async def _first_admin(
    service: Service, username: str | None, password: str | None
) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """The administrator generated at this start (name, password), else the active super_admins."""
    generated = await service.identity.bootstrap_admin(username, password)
    if generated is not None:
        return generated, ()
    # An administrator exists: the banner says how to get in.
    users = await service.identity.accounts.list_users()
    return None, tuple(u.username for u in users if u.is_active and "super_admin" in u.roles)


async def serve(
    config: WitsConfig,
    *,
    pipeline: PipelineConfig | None = None,
    ingest: bool = True,
    host: str | None = None,
    port: int | None = None,
    metrics: WitsMetrics | None = None,
    on_ready: Callable[[Bound], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    live_interval: float = DEFAULT_INTERVAL,
) -> int:
    """Open the service, serve the API (and ingest), until SIGTERM/SIGINT or ``stop``; return 0.

    ``on_ready`` is called once listening, with the URL and, the first time only, the generated
    administrator's credentials (for the caller to show; they are never logged).
    ``live_interval`` is how often a process that does not ingest looks for new frames to send
    to live subscribers.
    """
    host = config.host if host is None else host
    port = config.port if port is None else port
    stop = stop or asyncio.Event()
    service = await Service.open(
        config, pipeline=pipeline, ingest=ingest, metrics=metrics, live_interval=live_interval
    )
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    sockets: list[socket.socket] = []
    servers: list[Any] = []
    tasks: list[asyncio.Task[Any]] = []
    later: list[asyncio.Task[None]] = []
    status = 0
    try:
        # Every port first: a port that cannot be bound stops the start before anything is
        # created (a generated administrator password would be shown by nobody).
        ports = _bind(config, host, port, sockets)
        admin_password = config.admin_password.get_secret_value() if config.admin_password else None
        generated: tuple[str, str] | None = None
        admins: tuple[str, ...] = ()
        if service.database_ready.is_set():
            generated, admins = await _first_admin(service, config.admin_username, admin_password)
        context = service.context
        apps: list[tuple[str, socket.socket | None, Callable[[AppContext], Any]]] = [
            ("metrics", ports.metrics, create_metrics_app),
            ("health", ports.health, create_health_app),
            ("api", ports.api, create_app),
        ]
        for name, sock, factory in apps:
            if sock is not None:
                server = _uvicorn_server(factory(context), config)
                servers.append(server)
                tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name=name))
        if service.ingests:
            tasks.append(asyncio.create_task(service.run_pipeline(), name="pipeline"))
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        log.info("service started: %s (ingest: %s)", ports.api_url, service.ingests)
        names = tuple(c.name for c in service.connections) if service.connections is not None else ()
        bound = Bound(
            ports.api_url, ports.api_port, ports.metrics_url, generated, ports.health_url, names, admins
        )
        if on_ready is not None:
            on_ready(bound)
        if not service.database_ready.is_set():
            # The administrator is made (and its password shown) once the database is there.
            later.append(
                asyncio.create_task(
                    _bootstrap_later(service, config.admin_username, admin_password, bound, on_ready),
                    name="witskit-admin",
                )
            )
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                status = 1
                log.error("%s stopped unexpectedly: %s", task.get_name(), task.exception())
        log.info("service stopping: draining the pipeline")
    finally:
        for task in later:
            task.cancel()
        await asyncio.gather(*later, return_exceptions=True)
        for server in servers:
            server.should_exit = True
        service.stop()
        status = max(status, await _stopped(service, tasks))
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sock in sockets:
            sock.close()
        await service.aclose()
    log.info("service stopped")
    sys.stderr.flush()
    return status


async def _stopped(service: Service, tasks: list[asyncio.Task[Any]]) -> int:
    """Wait for the servers and the pipeline to end; 1 when one failed or a received frame was lost."""
    status = 0
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, SystemExit | Exception):
            status = 1
            log.error("%s failed while stopping: %s", task.get_name(), result)
    pipe = service.pipeline
    if pipe is not None and pipe.stats.frames_lost:
        status = 1
        log.error(
            "%d frame(s) received were not stored: stopped while the spool could not take them",
            pipe.stats.frames_lost,
        )
    return status
