"""The relay's outlets: WITS Level 0 bytes sent on to downstream consumers, as an EDR sends them.

A rig's data has many readers (the MWD company, the mud logger, a remote display); the relay (a
"WITS splitter") hands each of them the stream. This module moves bytes only; what a consumer sees
(records, codes, units, framing) is decided above it, in :mod:`witskit.pipeline.relay`.

* :class:`RelayServer` (``wits-serve://``) listens; any number of consumers connect.
* :class:`RelayLink` (``wits-push://``, ``serial://`` as an output) opens one link to a consumer
  and reopens it with the shared :class:`~witskit.transport.resilience.RetryPolicy` when it drops.

Every consumer connection is an :class:`Outlet`: a bounded queue of frames and one task that
writes them. :meth:`Outlet.offer` never waits: when a consumer is slower than the feed (or never
reads at all) its queue is full and the oldest frame is dropped and counted, so a slow or dead
consumer costs at most ``queue_size`` frames plus the socket's write buffer, and never slows
ingest or the other consumers. What consumers send is read through a
:class:`~witskit.protocol.FrameParser` with small limits: a Pason-style handshake or request packet
is a frame (in request mode each is answered with the current data, as a send-and-receive EDR
does); anything else is garbage, counted and skipped. Connects and disconnects are logged, never
frames.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from witskit.errors import ConnectError, ConnectionLost, TransportError, UsageError
from witskit.protocol import FrameParser, WITSFrame
from witskit.transport.base import READ_SIZE, map_errors, reconnect_forever
from witskit.transport.listener import (
    DEFAULT_BACKLOG,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    IPNetwork,
    parse_allowlist,
)
from witskit.transport.resilience import RetryPolicy

__all__ = [
    "DEFAULT_MAX_CONSUMERS",
    "DEFAULT_OUTLET_QUEUE",
    "DEFAULT_STALL_TIMEOUT",
    "INBOUND_LIMIT",
    "MAX_GARBAGE_RUNS",
    "REFUSAL_LOG_EVERY",
    "Outlet",
    "RelayLink",
    "RelayServer",
    "RelayStats",
    "tcp_opener",
]

log = logging.getLogger("witskit.relay")

#: Frames one consumer may lag before its oldest are dropped: a minute of a 1 Hz rig with a few
#: records, a few seconds of a busy one. A relay is live: a consumer that is minutes behind wants
#: the newest data, not the backlog (the store has everything).
DEFAULT_OUTLET_QUEUE = 256

#: Consumers connected at once to one ``wits-serve://``. A rig site has a handful (MWD, mud
#: logging, a display); 64 leaves room for a fleet's remote viewers. Each costs at most
#: DEFAULT_OUTLET_QUEUE frames and a 64 KiB write buffer, so the cap bounds memory at about 20 MB
#: even against 10,000 connection attempts; the ones past it are closed at once, unread.
DEFAULT_MAX_CONSUMERS = 64

#: Limit of the parser that reads what a consumer sends (frame, line and garbage run, in bytes).
#: A handshake (``&&/0111-9999/!!``) or a request packet is a few dozen bytes; 4 KiB is generous
#: and keeps a consumer that sends megabytes of garbage at a few KiB of memory.
INBOUND_LIMIT = 4096

#: Runs of garbage (each at most INBOUND_LIMIT bytes) a consumer may send before it is
#: disconnected: a consumer sends a handshake every 30 s, never data, so 16 runs (at most 64 KiB)
#: of what is not WITS is a misconfigured or hostile peer, and parsing its flood costs CPU that
#: belongs to the feed.
MAX_GARBAGE_RUNS = 16

#: Refusals are logged once, then summed up at most this often (seconds): 10,000 connection
#: attempts are a handful of log lines, not 10,000.
REFUSAL_LOG_EVERY = 30.0

#: A consumer whose socket has taken nothing for this long (its buffer full: it does not read) is
#: disconnected, so a dead consumer does not hold one of the max_consumers places for ever.
DEFAULT_STALL_TIMEOUT = 60.0

#: How long a graceful close may take before the socket is aborted (a consumer that never reads
#: keeps a full buffer, and a FIN waits behind it).
_CLOSE_TIMEOUT = 2.0


@dataclass
class RelayStats:
    """Counters of one relay output (all its consumers together)."""

    #: Consumers connected now.
    consumers: int = 0
    #: Consumer connections accepted (or links opened) since the start.
    connects: int = 0
    #: Connections closed at once: not in the allowlist, over the consumer cap, failed TLS.
    refused: int = 0
    #: Frames written to consumers (one per consumer that got it).
    frames_sent: int = 0
    #: Frames dropped because a consumer's queue was full (a slow or dead consumer).
    frames_dropped: int = 0
    #: Valid packets (handshakes, requests) received from consumers.
    packets_received: int = 0
    #: Runs of bytes from consumers that were not a WITS packet.
    garbage_received: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for metrics)."""
        return dict(self.__dict__)


class Outlet:
    """One consumer's queue and writer. :meth:`offer` never blocks; :meth:`serve` runs a connection."""

    def __init__(
        self,
        label: str,
        stats: RelayStats,
        *,
        queue_size: int = DEFAULT_OUTLET_QUEUE,
        answer: Callable[[], Iterable[bytes]] | None = None,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        self.label = label
        self.stats = stats
        self.answer = answer
        self.stall_timeout = stall_timeout
        self._queue: collections.deque[bytes] = collections.deque(maxlen=queue_size)
        self._ready = asyncio.Event()
        #: Frames this consumer lost to a full queue.
        self.dropped = 0

    def offer(self, data: bytes) -> None:
        """Queue ``data`` for this consumer; the oldest queued frame is dropped when the queue is full."""
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
            self.stats.frames_dropped += 1
        queue.append(data)
        self._ready.set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        """Write queued frames and read the consumer's packets until either side ends.

        Returns why it ended (``None``: the consumer closed cleanly); never raises a transport error.
        """
        reading = asyncio.create_task(self._read(reader), name=f"witskit-relay-read {self.label}")
        writing = asyncio.create_task(self._write(writer), name=f"witskit-relay-write {self.label}")
        try:
            await asyncio.wait((reading, writing), return_when=asyncio.FIRST_COMPLETED)
            if reading.done() and not reading.cancelled() and reading.exception() is None:
                # The consumer closed its sending side (``nc relay 10002 < /dev/null`` does at
                # once): it may still read, so the frames go on until a write fails.
                await asyncio.wait((writing,))  # its error, if any, is read below
        finally:
            for task in (reading, writing):
                task.cancel()
            results = await asyncio.gather(reading, writing, return_exceptions=True)
            await _close(writer)
        for result in results:
            if isinstance(result, TransportError):
                return str(result)
        return None

    async def _write(self, writer: asyncio.StreamWriter) -> None:
        queue = self._queue
        with map_errors(self.label, connecting=False):
            while True:
                while not queue:
                    self._ready.clear()
                    await self._ready.wait()
                # One write of everything queued: a consumer that caught up gets it in one segment.
                data = b"".join(queue)
                sent = len(queue)
                queue.clear()
                writer.write(data)
                # Waits while the socket's buffer is over its high-water mark (64 KiB): a consumer
                # that does not read holds this task here, and new frames drop in the queue.
                try:
                    async with asyncio.timeout(self.stall_timeout):
                        await writer.drain()
                except TimeoutError:
                    raise ConnectionLost(
                        f"{self.label}: read nothing for {self.stall_timeout:g} s (stalled consumer)"
                    ) from None
                self.stats.frames_sent += sent

    async def _read(self, reader: asyncio.StreamReader) -> None:
        garbage = 0
        parser = FrameParser(
            source=self.label,
            max_line_length=INBOUND_LIMIT,
            max_lines_per_frame=64,
            max_frame_bytes=INBOUND_LIMIT,
            max_garbage_bytes=INBOUND_LIMIT,
        )
        with map_errors(self.label, connecting=False):
            while True:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    return
                for event in parser.feed(chunk):
                    if not isinstance(event, WITSFrame):
                        self.stats.garbage_received += 1
                        garbage += 1
                        if garbage >= MAX_GARBAGE_RUNS:
                            raise ConnectionLost(
                                f"{self.label}: sent {garbage} runs of bytes that are not WITS packets"
                            )
                        continue
                    self.stats.packets_received += 1
                    if self.answer is not None:
                        for data in self.answer():
                            self.offer(data)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (FIN, TLS close_notify), aborting a consumer that stalls it."""
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
        await asyncio.sleep(0)


def _peer_text(peername: Any) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    return str(peername)


def _allowed(networks: tuple[IPNetwork, ...] | None, peername: Any) -> bool:
    import ipaddress

    if networks is None:
        return True
    if not isinstance(peername, tuple):
        return False
    try:
        ip = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


class RelayServer:
    """Serve the relayed stream on ``host:port`` (TLS with ``ssl_context``) to any number of consumers.

    A consumer outside ``allowlist`` (addresses and CIDR networks, as for ``tcp-listen://``), or
    arriving when ``max_consumers`` are connected, is closed at once, before any TLS work, and
    counted in ``stats.refused``. Each consumer gets every frame :meth:`offer` is given from the
    moment it connects (live only: nothing from before), through its own :class:`Outlet`.
    ``answer`` (request mode) returns the frames sent in reply to each packet a consumer sends.
    """

    def __init__(
        self,
        host: str | None,
        port: int,
        *,
        name: str,
        ssl_context: ssl.SSLContext | None = None,
        allowlist: Iterable[str] | str | None = None,
        max_consumers: int = DEFAULT_MAX_CONSUMERS,
        queue_size: int = DEFAULT_OUTLET_QUEUE,
        answer: Callable[[], Iterable[bytes]] | None = None,
        tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    ) -> None:
        if not 0 <= port <= 65535:
            raise UsageError(f"{name}: port {port} is not a TCP port (0-65535)")
        self.host = host or None
        self.name = name
        self.ssl_context = ssl_context
        self.allowlist = parse_allowlist(allowlist) if allowlist is not None else None
        self.max_consumers = max_consumers
        self.queue_size = queue_size
        self.answer = answer
        self.tls_handshake_timeout = tls_handshake_timeout
        self.stats = RelayStats()
        self._port = port
        self._server: asyncio.Server | None = None
        self._start_lock = asyncio.Lock()
        self._refusals_logged_at = -REFUSAL_LOG_EVERY
        self._refusals_said = 0
        self._outlets: set[Outlet] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def port(self) -> int:
        """The bound port (the real one when made with port 0, once started)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        """Listen (idempotent, safe to call twice at once); a port in use or a bad host raises
        :class:`~witskit.errors.ConnectError`."""
        async with self._start_lock:
            if self._server is not None:
                return
            try:
                self._server = await asyncio.start_server(
                    self._accept, self.host, self._port, backlog=DEFAULT_BACKLOG
                )
            except OSError as exc:
                raise ConnectError(f"{self.name}: cannot listen ({exc.strerror or exc})") from exc
        log.info("%s: serving consumers on port %d", self.name, self.port)

    def offer(self, data: bytes) -> None:
        """Queue ``data`` for every connected consumer (never waits)."""
        for outlet in self._outlets:
            outlet.offer(data)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        label = f"{self.name} consumer {_peer_text(peername)}"
        reason = None
        if self._closed:
            reason = "the relay is closing"
        elif not _allowed(self.allowlist, peername):
            reason = "not in the allowlist"
        elif len(self._tasks) >= self.max_consumers:
            reason = f"over max_consumers={self.max_consumers}"
        if reason is not None:
            self._refused(label, reason)
            writer.transport.abort()
            await asyncio.sleep(0)
            return
        self._tasks.add(task)
        try:
            await self._run(label, reader, writer)
        except asyncio.CancelledError:
            # aclose(): end normally (asyncio's start_server logs a handler task that ends cancelled).
            writer.transport.abort()
            await asyncio.sleep(0)
        finally:
            self._tasks.discard(task)

    def _refused(self, label: str, reason: str) -> None:
        """Count a refusal; log the first of a burst, then one line per REFUSAL_LOG_EVERY seconds."""
        self.stats.refused += 1
        now = asyncio.get_running_loop().time()
        if now - self._refusals_logged_at >= REFUSAL_LOG_EVERY:
            unsaid = self.stats.refused - self._refusals_said - 1
            also = f" ({unsaid} more refused since the last line)" if unsaid > 0 else ""
            log.warning("%s refused: %s%s", label, reason, also)
            self._refusals_logged_at = now
            self._refusals_said = self.stats.refused

    async def _run(self, label: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.ssl_context is not None:
            try:
                with map_errors(label):
                    await writer.start_tls(self.ssl_context, ssl_handshake_timeout=self.tls_handshake_timeout)
            except TransportError as exc:
                self._refused(label, f"TLS: {exc}")
                await asyncio.sleep(0)
                return
        outlet = Outlet(label, self.stats, queue_size=self.queue_size, answer=self.answer)
        self._outlets.add(outlet)
        self.stats.consumers += 1
        self.stats.connects += 1
        started = asyncio.get_running_loop().time()
        log.info("%s connected", label)
        try:
            why = await outlet.serve(reader, writer)
        finally:
            self._outlets.discard(outlet)
            self.stats.consumers -= 1
        log.info(
            "%s disconnected after %.1f s (%d frame(s) dropped while it lagged): %s",
            label,
            asyncio.get_running_loop().time() - started,
            outlet.dropped,
            why or "closed by the consumer",
        )

    async def aclose(self) -> None:
        """Stop listening and close every consumer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            log.info("%s: closed", self.name)


Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class RelayLink:
    """One link to one consumer (``wits-push://``, a serial line), reopened while the relay runs.

    ``opener`` connects (a TCP or TLS connection, a serial port) and raises a
    :class:`~witskit.errors.TransportError` when it cannot; ``retry`` spaces the attempts (the
    rig links' policy by default: forever, 1 s doubling to 5 s, with jitter). Frames offered while
    the link is down wait in the same bounded queue (the oldest dropped and counted), so a short
    outage loses nothing and a long one costs no memory.
    """

    def __init__(
        self,
        name: str,
        opener: Opener,
        *,
        retry: RetryPolicy | None = None,
        queue_size: int = DEFAULT_OUTLET_QUEUE,
        answer: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        self.name = name
        self.opener = opener
        self.retry = retry or reconnect_forever()
        self.stats = RelayStats()
        self.outlet = Outlet(name, self.stats, queue_size=queue_size, answer=answer)
        #: Connection attempts that failed, since the start.
        self.failed_attempts = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the link is open."""
        return self.stats.consumers > 0

    async def start(self) -> None:
        """Start connecting in the background (never raises for an unreachable consumer)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"witskit-relay {self.name}")

    def offer(self, data: bytes) -> None:
        """Queue ``data`` for the consumer (never waits)."""
        self.outlet.offer(data)

    async def _run(self) -> None:
        failures = 0
        said = False
        while True:
            try:
                reader, writer = await self.opener()
            except (TransportError, UsageError) as exc:
                failures += 1
                self.failed_attempts += 1
                delay = self.retry.backoff(failures)
                if not said:  # once per outage, not once per attempt
                    log.warning(
                        "%s: cannot connect (%s); retrying every %.0f s or less",
                        self.name,
                        exc,
                        self.retry.max_backoff,
                    )
                    said = True
                else:
                    log.debug("%s: attempt %d failed: %s", self.name, failures, exc)
                if isinstance(exc, UsageError) or (
                    self.retry.max_attempts is not None and failures >= self.retry.max_attempts
                ):
                    log.error("%s: giving up: %s", self.name, exc)
                    return
                await asyncio.sleep(delay)
                continue
            failures = 0
            said = False
            self.stats.connects += 1
            self.stats.consumers = 1
            log.info("%s connected", self.name)
            try:
                why = await self.outlet.serve(reader, writer)
            finally:
                self.stats.consumers = 0
            log.info("%s disconnected: %s; reconnecting", self.name, why or "closed by the consumer")
            await asyncio.sleep(self.retry.backoff(1))

    async def aclose(self) -> None:
        """Stop reconnecting and close the link. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)  # a connection cancelled mid-handshake closes its socket now


def tcp_opener(
    host: str,
    port: int,
    *,
    name: str,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = 10.0,
) -> Opener:
    """An :data:`Opener` for a TCP (or, with ``ssl_context``, TLS) connection to ``host:port``."""

    async def open_tcp() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        with map_errors(name):
            async with asyncio.timeout(connect_timeout):
                return await asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname=(server_hostname or host) if ssl_context is not None else None,
                )

    return open_tcp
