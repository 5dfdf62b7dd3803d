"""A listening source for rigs that push: ``tcp-listen://host:port`` and ``tls-listen://host:port``.

Some EDRs and mud-logging units are configured with a destination address and connect *to* us.
:class:`ListenerSource` accepts any number of such peers and multiplexes their frames into one event
stream. Each connection has its own :class:`~witskit.protocol.FrameParser`, so one peer's garbage or
half-sent frame never touches another's data, and every event names its peer in ``source``: by its
IP address (not the ephemeral port, so a rig that reconnects stays one source), by the identity of
its TLS client certificate under mutual TLS, or by a name given per address. The number of distinct
names a listener makes up is capped (``max_sources``), so a scan or a reconnect storm from many
addresses cannot create sources without bound; a name counts once its peer has sent something, so
peers that connect and leave silent (a port scan, a load balancer's TCP check) cannot use it up.

Memory is bounded everywhere: each peer's parser keeps at most ``max_frame_bytes`` (a 100 MB line
costs no more than a short one), asyncio's stream reader pauses a peer's socket at about 128 KiB
of unread bytes, and events wait in a bounded queue. When the consumer is slower than the peers,
the queue fills, peers stop being read and TCP flow control pushes back on the senders: nothing is
dropped and nothing grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final, Self

from witskit.errors import ConnectError, FrameError, TransportError, UsageError
from witskit.protocol import FrameParser, WITSFrame
from witskit.transport.base import (
    DEFAULT_IDLE_TIMEOUT,
    READ_SIZE,
    LinkState,
    LinkStatus,
    Source,
    SourceEvent,
    map_errors,
    notify,
)
from witskit.transport.error_handling import ErrorHandler
from witskit.transport.tcp import check_port

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_SOURCES",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "ListenerSource",
    "parse_allowlist",
    "parse_peer_names",
]

log = logging.getLogger("witskit.transport")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: A rig site has a handful of recorders and a fleet gateway a few hundred; beyond a thousand
#: something is wrong (a scan, a reconnect storm) and refusing protects the process's file handles.
DEFAULT_MAX_CONNECTIONS = 1024

#: Distinct source names a listener may make up for its peers (per address or certificate) in its
#: lifetime. As many as connections: a fleet gateway with every rig connected at once is never
#: refused for its names; beyond that, new names come from a scan or an address pool, not from
#: rigs, and each would be a permanent source in the store. Peers named in ``peer_names`` are
#: always accepted and do not count.
DEFAULT_MAX_SOURCES = 1024

#: The longest certificate identity used in a source name (an X.509 CN is at most 64 characters).
_MAX_IDENTITY = 64

#: Events waiting for the consumer. Each holds at most one frame (max_frame_bytes), so the queue
#: is bounded in bytes too; a thousand frames is minutes of a busy rig's data.
DEFAULT_QUEUE_SIZE = 1024

#: A TLS handshake takes milliseconds; a peer that has not finished in 10 s is broken or hostile
#: and holds a connection slot for nothing.
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10.0

#: How long a graceful close (FIN, TLS close_notify) may take before the socket is aborted.
CLOSE_TIMEOUT = 2.0

#: Pending connections the kernel queues before accept(); enough for a fleet reconnecting at once.
DEFAULT_BACKLOG = 1024


def parse_allowlist(entries: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    """Parse IP addresses and CIDR networks (``"192.0.2.7"``, ``"10.0.0.0/8"``, ``"2001:db8::/32"``).

    A comma-separated string is accepted too. A bad entry raises
    :class:`~witskit.errors.UsageError` naming it.
    """
    if isinstance(entries, str):
        entries = entries.split(",")
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise UsageError(
                f"allowlist entry {text!r} is not an IP address or CIDR network ({exc})"
            ) from exc
    return tuple(networks)


def parse_peer_names(entries: Mapping[str, str] | Iterable[str] | str) -> dict[str, str]:
    """Source names per peer address: ``{"192.0.2.7": "rig-7"}`` or ``"192.0.2.7=rig-7,10.0.0.5=rig-9"``.

    The text form (the ``names=`` URL option) is ``ADDRESS=NAME`` entries separated by commas (not
    ``NAME@ADDRESS``: an ``@`` in a URL reads as a user name and password to log redactors).
    Addresses are single IP addresses (a name is one source, not a network); a bad entry raises
    :class:`~witskit.errors.UsageError` naming it.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(entries, Mapping):
        pairs = [(str(address), str(name)) for address, name in entries.items()]
    else:
        for entry in entries.split(",") if isinstance(entries, str) else entries:
            text = entry.strip()
            if not text:
                continue
            address, equals, name = text.partition("=")
            if not equals:
                raise UsageError(f"peer name {text!r} is not ADDRESS=NAME (e.g. 192.0.2.7=rig-7)")
            pairs.append((address, name))
    names: dict[str, str] = {}
    for address, given in pairs:
        try:
            ip = _fold(ipaddress.ip_address(address.strip().strip("[]")))
        except ValueError as exc:
            raise UsageError(f"peer name {given!r}: {address!r} is not an IP address ({exc})") from exc
        name = given.strip()
        if not name or not name.isprintable():
            raise UsageError(f"peer name for {address!r} is empty or not printable")
        if str(ip) in names:
            raise UsageError(f"peer address {address!r} is named twice")
        names[str(ip)] = name
    return names


def _fold(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:192.0.2.7``, from dual-stack sockets) folded to IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _cert_identity(peercert: Any) -> str | None:
    """The identity of a verified client certificate: its CN, else its first DNS subjectAltName."""
    if not isinstance(peercert, dict):
        return None
    found: str | None = None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                found = str(value)
    if found is None:
        found = next((str(v) for k, v in peercert.get("subjectAltName", ()) if k == "DNS" and v), None)
    if found is None:
        return None
    # Signed by the rigs' CA, but still text from the wire: no control characters, bounded.
    return "".join(ch if ch.isprintable() else "?" for ch in found)[:_MAX_IDENTITY]


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _address_text(sockname: Any) -> str:
    """``HOST:PORT`` of a bound socket (IPv6 in brackets)."""
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return f"{_host_text(str(sockname[0]))}:{sockname[1]}"
    return str(sockname)


def _peer(peername: Any) -> tuple[IPAddress | None, str]:
    """The peer's IP (IPv4-mapped IPv6 folded to IPv4, so allowlists work on dual-stack sockets)."""
    if not isinstance(peername, tuple) or len(peername) < 2:
        return None, str(peername)
    host, port = str(peername[0]), peername[1]
    try:
        ip = _fold(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None, f"{host}:{port}"
    return ip, f"{_host_text(str(ip))}:{port}"


class _Wake:
    """Queue sentinel: wakes a consumer waiting on an empty queue when the listener closes."""


_WAKE: Final = _Wake()


class ListenerSource(Source):
    """Accept pushing peers on ``host:port`` (TLS with ``ssl_context``) and yield their events.

    Every event's ``source`` names its peer: ``peer_names[ip]`` when the peer's address is named
    there (``{"192.0.2.7": "rig-7"}``, or the text ``"192.0.2.7=rig-7,..."``); else, with TLS and
    a verified client certificate, ``"<listener name>/<certificate CN>"``; else
    ``"<listener name>/<peer ip>"``, for example ``tcp-listen://0.0.0.0:10001/192.0.2.7`` (IPv6
    peers in brackets). The ephemeral port is not part of it, so a rig that reconnects stays one
    source; two rigs behind one NAT address share a name (use certificates or separate listeners).
    Past ``max_sources`` distinct made-up names, a peer that would need a new one is refused
    (a name counts once its peer has sent bytes; a connected silent peer holds a place meanwhile).
    A peer outside
    ``allowlist`` (IP addresses and CIDR networks; ``None`` allows all), or arriving when
    ``max_connections`` are open, is closed at once, before any TLS work, counted in ``refused``
    and logged. A TLS peer that fails the handshake (untrusted or missing client certificate, TLS
    older than 1.2, no handshake within ``tls_handshake_timeout``) is refused too. A peer silent
    for ``idle_timeout`` seconds is dropped; a partial frame at a peer's disconnect becomes its
    FrameError. ``parser_options`` are FrameParser limits; ``queue_size`` bounds waiting events.

    ``on_status`` receives a :class:`~witskit.transport.base.LinkStatus` per change: the listener
    (source = listener name) is CONNECTED once listening and CLOSED when closed; each peer is
    CONNECTED when accepted, DISCONNECTED when it leaves (``error`` says why, ``None`` for a clean
    close) or when refused (``error`` starts with ``"refused"``), and CLOSED when the listener
    closes it; a peer's status carries its address (``peer``) and, when it leaves, its frame count.
    The same is logged at INFO (refusals at WARNING) on the ``witskit.transport`` logger.

    ``async with ListenerSource(...) as listener`` binds the socket (:attr:`port` is then the
    bound port, useful with port 0); iterating starts it too. Breaking out of an iteration leaves
    the listener running (iterate again to go on; events wait in the queue meanwhile);
    :meth:`aclose`, or leaving the ``async with`` block, closes the server and every connection
    and ends the iteration.
    """

    def __init__(
        self,
        host: str | None,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        allowlist: Iterable[str] | str | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        parser_options: dict[str, Any] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        on_status: Callable[[LinkStatus], None] | None = None,
        error_handler: ErrorHandler | None = None,
        name: str | None = None,
        backlog: int = DEFAULT_BACKLOG,
        max_sources: int = DEFAULT_MAX_SOURCES,
        peer_names: Mapping[str, str] | Iterable[str] | str | None = None,
    ) -> None:
        check_port(port, allow_zero=True)
        for label, value in (
            ("max_connections", max_connections),
            ("queue_size", queue_size),
            ("max_sources", max_sources),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{label} must be a positive integer, got {value!r}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise UsageError("idle_timeout must be positive (or None for never)")
        if tls_handshake_timeout <= 0:
            raise UsageError("tls_handshake_timeout must be positive")
        self.parser_options = dict(parser_options or {})
        try:  # check the limits now rather than at the first peer
            FrameParser(**self.parser_options)
        except TypeError as exc:
            raise UsageError(f"bad parser_options: {exc}") from exc
        self.host = host or None  # None (or "") = every interface
        self.ssl_context = ssl_context
        self.allowlist: tuple[IPNetwork, ...] | None = (
            parse_allowlist(allowlist) if allowlist is not None else None
        )
        self.max_connections = max_connections
        self.max_sources = max_sources
        self.peer_names: dict[str, str] = parse_peer_names(peer_names) if peer_names is not None else {}
        self.idle_timeout = idle_timeout
        self.tls_handshake_timeout = tls_handshake_timeout
        self.queue_size = queue_size
        self.on_status = on_status
        self.error_handler = error_handler
        self.backlog = backlog
        self.scheme = "tls-listen" if ssl_context is not None else "tcp-listen"
        self.name = name or self._make_name(port)
        #: Connections accepted (past the allowlist, limit and TLS handshake) since the start.
        self.accepted = 0
        #: Connections refused: allowlist, max_connections, failed TLS handshake, or closing.
        self.refused = 0
        self._port = port
        self._active = 0
        self._server: asyncio.Server | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._peers: dict[asyncio.Task[Any], str] = {}
        self._made_names: set[str] = set()  # names made up for peers that sent something (max_sources)
        # Names made up for connected peers that have sent nothing yet, with their connection
        # counts: they hold a place under max_sources while connected, and give it back if they
        # leave silent (a port scan, a load balancer's TCP check).
        self._silent_names: dict[str, int] = {}
        self._queue: asyncio.Queue[SourceEvent | _Wake] = asyncio.Queue(queue_size)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening" if self._server else "not started"
        return f"<ListenerSource {self.name} {state} peers={self._active}>"

    def _make_name(self, port: int) -> str:
        return f"{self.scheme}://{_host_text(self.host) if self.host else ''}:{port}"

    # Properties ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0, once started)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        if self._port == 0:
            raise UsageError(f"{self.name}: not listening yet; use 'async with' or await start() first")
        return self._port

    @property
    def active_connections(self) -> int:
        """How many peers are connected now (including those in the TLS handshake)."""
        return self._active

    @property
    def peers(self) -> list[str]:
        """The ``source`` names of the connected peers (once one per connection)."""
        return sorted(tag for tag in self._peers.values() if tag)

    @property
    def sources(self) -> list[str]:
        """Every source name this listener has given a peer so far (made up or from peer_names)."""
        return sorted(self._made_names | {n for n in self._peers.values() if n})

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    # Lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and listen (idempotent); a port in use or a bad host raises ConnectError."""
        async with self._start_lock:
            if self._closed:
                raise UsageError(f"{self.name} is closed; create a new ListenerSource")
            if self._server is not None:
                return
            try:
                self._server = await asyncio.start_server(
                    self._serve, self.host, self._port, backlog=self.backlog
                )
            except OSError as exc:
                raise ConnectError(f"{self.name}: cannot listen ({exc.strerror or exc})") from exc
            # The name stays what it was when made, even with port 0: a pipeline and the store
            # know the source by it from then on. The log line says which port was bound.
            where = ", ".join(_address_text(sock.getsockname()) for sock in self._server.sockets)
            log.info("%s: listening on %s", self.name, where)
            self._report(self.name, LinkState.CONNECTED, peer=where)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def events(self) -> AsyncIterator[SourceEvent]:
        """Every peer's frames and FrameErrors, as they come; ends when the listener is closed."""
        if not self._closed:
            await self.start()
        while not (self._closed and self._queue.empty()):
            item = await self._queue.get()
            if isinstance(item, _Wake):
                continue
            if self.error_handler is not None and isinstance(item, FrameError):
                await self.error_handler.handle(item)
            yield item

    async def aclose(self) -> None:
        """Stop listening, close every connection and end the iteration. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        # A connection accepted just before close() has a handler task that may not have started;
        # one turn of the loop lets it start (it sees _closed and leaves) so it is awaited below.
        await asyncio.sleep(0)
        tasks = list(self._peers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.QueueFull):
            # A full queue needs no wake-up: the consumer is not waiting and sees _closed once drained.
            self._queue.put_nowait(_WAKE)
        if self._server is not None:
            log.info("%s: closed", self.name)
            self._report(self.name, LinkState.CLOSED)

    # One connection -----------------------------------------------------------------------------
    def _refusal(self, ip: IPAddress | None) -> str | None:
        if self._closed:
            return "the listener is closing"
        if self.allowlist is not None and (ip is None or not any(ip in net for net in self.allowlist)):
            return "not in the allowlist"
        if self._active >= self.max_connections:
            return f"over max_connections={self.max_connections}"
        return None

    def _source_name(self, ip: IPAddress | None, label: str, cert: Any) -> str:
        """The source name of a peer: named by address, by certificate, or by address (see above)."""
        if ip is not None and str(ip) in self.peer_names:
            return self.peer_names[str(ip)]
        identity = _cert_identity(cert)
        if identity is not None:
            return f"{self.name}/{identity}"
        return f"{self.name}/{_host_text(str(ip)) if ip is not None else label}"

    def _over_max_sources(self, ip: IPAddress | None, name: str) -> bool:
        """Would this peer need a new name past ``max_sources``? (Else it holds a place for its
        name until it sends something, see :meth:`_named` and :meth:`_unnamed`.)"""
        if ip is not None and str(ip) in self.peer_names:
            return False
        new = name not in self._made_names and name not in self._silent_names
        if new and len(self._made_names | self._silent_names.keys()) >= self.max_sources:
            return True
        self._silent_names[name] = self._silent_names.get(name, 0) + 1
        return False

    def _named(self, ip: IPAddress | None, name: str) -> None:
        """The peer named ``name`` sent something: a made-up name counts for good."""
        if ip is None or str(ip) not in self.peer_names:
            self._made_names.add(name)

    def _unnamed(self, ip: IPAddress | None, name: str) -> None:
        """A peer that held a place for ``name`` left: a name nobody sent anything under is freed."""
        if ip is not None and str(ip) in self.peer_names:
            return
        left = self._silent_names.get(name, 0) - 1
        if left > 0:
            self._silent_names[name] = left
        else:
            self._silent_names.pop(name, None)

    def _refuse(self, name: str, label: str, reason: str, kind: str = "refused") -> None:
        self.refused += 1
        log.warning("%s: refused %s: %s", self.name, label, reason)
        self._report(name, LinkState.DISCONNECTED, f"refused: {reason}", kind, peer=label)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one peer; never raises (asyncio would only log it)."""
        task = asyncio.current_task()
        assert task is not None
        ip, label = _peer(writer.get_extra_info("peername"))
        reason = self._refusal(ip)
        if reason is not None:
            self._refuse(self._source_name(ip, label, None), label, reason)
            writer.transport.abort()  # at once: no bytes of this peer are read
            await asyncio.sleep(0)  # let the transport's close callback release the socket
            return
        self._peers[task] = ""  # named once known (after the TLS handshake)
        self._active += 1
        try:
            await self._run_peer(task, ip, label, reader, writer)
        except asyncio.CancelledError:
            # aclose() cancelled this peer. The task ends normally rather than cancelled: it is the
            # top of its own task, nobody awaits its cancellation, and Python 3.11's start_server
            # logs a spurious "Exception in callback" for a handler task that ends cancelled.
            name = self._peers.get(task) or self._source_name(ip, label, None)
            log.info("%s: %s disconnected: the listener is closing", name, label)
            self._report(name, LinkState.CLOSED, peer=label)
            writer.transport.abort()
            await asyncio.sleep(0)
        except Exception:  # a bug; keep the listener serving the others
            log.exception("%s: unexpected error with peer %s", self.name, label)
            writer.transport.abort()
            await asyncio.sleep(0)
        finally:
            self._active -= 1
            del self._peers[task]

    async def _run_peer(
        self,
        task: asyncio.Task[Any],
        ip: IPAddress | None,
        label: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        cert: Any = None
        if self.ssl_context is not None:
            # The handshake is done here, after the allowlist, so a refused peer costs no TLS work
            # and a failed handshake is reported like any other refusal. Nothing awaits before
            # start_tls, so the peer's ClientHello cannot be read as plain text.
            try:
                with map_errors(f"{self.name}/{label}"):
                    await writer.start_tls(self.ssl_context, ssl_handshake_timeout=self.tls_handshake_timeout)
            except TransportError as exc:
                self._refuse(self._source_name(ip, label, None), label, f"TLS: {exc}", "tls")
                # start_tls has already closed the socket; one loop turn lets the close complete.
                await asyncio.sleep(0)
                return
            cert = writer.get_extra_info("peercert")
        name = self._source_name(ip, label, cert)
        if self._over_max_sources(ip, name):
            self._refuse(
                name,
                label,
                f"over max_sources={self.max_sources} (distinct peers this listener has named; "
                "name known rigs with names= or raise max_sources)",
            )
            writer.transport.abort()
            await asyncio.sleep(0)
            return
        try:
            await self._read_peer(task, ip, name, label, reader, writer)
        finally:
            self._unnamed(ip, name)

    async def _read_peer(
        self,
        task: asyncio.Task[Any],
        ip: IPAddress | None,
        name: str,
        label: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._peers[task] = name
        self.accepted += 1
        started = asyncio.get_running_loop().time()
        log.info("%s: %s connected", name, label)
        self._report(name, LinkState.CONNECTED, peer=label)
        parser = FrameParser(source=name, **self.parser_options)
        error: TransportError | None = None
        frames = 0
        while True:
            try:
                with map_errors(name, connecting=False):
                    async with asyncio.timeout(self.idle_timeout):
                        chunk = await reader.read(READ_SIZE)
            except TransportError as exc:
                error = exc
                break
            if not chunk:
                break
            events = parser.feed(chunk)
            if events:
                self._named(ip, name)
            for event in events:
                frames += isinstance(event, WITSFrame)
                # Blocks while the queue is full: this peer is then not read (back-pressure).
                await self._queue.put(event)
        events = parser.close()
        if events:
            self._named(ip, name)
        for event in events:
            await self._queue.put(event)
        lasted = asyncio.get_running_loop().time() - started
        log.info(
            "%s: %s disconnected after %.1f s, %d frame(s): %s",
            name,
            label,
            lasted,
            frames,
            error or "closed by the peer",
        )
        self._report(name, LinkState.DISCONNECTED, str(error) if error else None, peer=label, frames=frames)
        await _close(writer)

    # Status -------------------------------------------------------------------------------------
    def _report(
        self,
        source: str,
        state: LinkState,
        error: str | None = None,
        kind: str = "peer-lost",
        *,
        peer: str | None = None,
        frames: int | None = None,
    ) -> None:
        status = LinkStatus(source, state, 0, error, peer=peer, frames=frames, kind=kind if error else None)
        notify(status, self.on_status, self.error_handler)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (FIN, TLS close_notify) but never wait long: abort a peer that stalls."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()
        await asyncio.sleep(0)
