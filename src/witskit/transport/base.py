"""What every transport shares: the Source interface, the connect-read-parse loop, error mapping.

A source is an async iterator of :class:`~witskit.protocol.WITSFrame` and
:class:`~witskit.errors.FrameError` events with ``aclose()``; that is the whole interface. Stream
transports (TCP, TLS, serial) differ only in how they open a link, so they subclass
:class:`LinkSource` and implement :meth:`LinkSource._open`; the loop around the sans-I/O parser
(handshake keep-alive, idle timeout, partial frame at disconnect, reconnect with backoff) exists
once, here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from witskit.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    FrameError,
    TLSError,
    TransportError,
    UsageError,
    WitsKitError,
)
from witskit.protocol import FrameParser, WITSFrame
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.transport.error_handling import ErrorHandler
from witskit.transport.resilience import RetryPolicy

__all__ = [
    "DEFAULT_HANDSHAKE_INTERVAL",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_STABLE_AFTER",
    "MAX_RECONNECT_DELAY",
    "LinkSource",
    "LinkState",
    "LinkStatus",
    "Source",
    "SourceEvent",
    "map_errors",
    "notify",
    "reconnect_forever",
]

log = logging.getLogger("witskit.transport")

#: What a source yields.
SourceEvent = WITSFrame | FrameError

#: Pason EDRs stop sending after 30 s without hearing from the client; their own documentation's
#: keep-alive period is 30 s, and sending at the same period keeps a margin on the EDR's side
#: because it counts from the last packet received.
DEFAULT_HANDSHAKE_INTERVAL = 30.0

#: A rig sends record 1 every 1-10 s; a minute of silence means the link is dead even when TCP
#: has not noticed (a cut cable, a NAT that dropped the mapping).
DEFAULT_IDLE_TIMEOUT = 60.0

#: How much to read per call: a few dozen frames; bigger reads do not speed up a 1 Hz rig.
READ_SIZE = 64 * 1024


#: The longest wait between two reconnect attempts of a rig link. A WITS feed does not buffer and
#: cannot retransmit: every second offline is data lost for good, so the wait is capped low. A
#: refused connect on a rig LAN costs the EDR a few microseconds, so one attempt every 2.5-5 s
#: (with jitter) is no load, and a link is back at most 5 s after the EDR listens again.
MAX_RECONNECT_DELAY = 5.0

#: A link that ends sooner than this after connecting, without having delivered a single frame,
#: counts as a failed attempt, so the backoff grows instead of reconnecting at once. Serial-to-
#: Ethernet converters and single-client EDRs accept and close at once (850 connections a second
#: were measured); a working EDR sends record 1 every 1-10 s or answers the handshake at once, so
#: a link that delivered a frame is a working link whatever its length, and one silent for 5 s and
#: then dropped was not going to deliver soon either.
DEFAULT_STABLE_AFTER = 5.0


def reconnect_forever() -> RetryPolicy:
    """The default reconnect policy of a rig link: forever, 1 s doubling to 5 s, with jitter."""
    return RetryPolicy(
        max_attempts=None, backoff_factor=1.0, max_backoff=MAX_RECONNECT_DELAY, retry_on=(TransportError,)
    )


def one_attempt() -> RetryPolicy:
    """A single try, no retry (the seed's AsyncTCPReader without a policy)."""
    return RetryPolicy(max_attempts=1, retry_on=(TransportError,))


@contextlib.contextmanager
def map_errors(endpoint: str, *, connecting: bool = True) -> Iterator[None]:
    """Translate library exceptions into witskit's, naming the endpoint (``raise ... from exc``).

    Every OSError, SSL error and timeout a transport can meet becomes a
    :class:`~witskit.errors.TransportError` subclass; nothing from the standard library leaks.
    """
    try:
        yield
    except WitsKitError:
        raise  # already ours (including a UsageError, which is a ValueError)
    except ssl.SSLCertVerificationError as exc:
        why = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        raise TLSError(f"{endpoint}: certificate rejected: {why}") from exc
    except ssl.SSLError as exc:
        # An SSLError raised by ssl.py itself (not OpenSSL) has no .reason attribute.
        why = getattr(exc, "reason", None) or exc
        if not connecting:  # e.g. SSLEOFError mid-stream: the link dropped, TLS itself was fine
            raise ConnectionLost(f"{endpoint}: connection lost ({why})") from exc
        raise TLSError(f"{endpoint}: TLS failed: {why}") from exc
    except socket.gaierror as exc:
        raise ConnectError(f"{endpoint}: cannot resolve host name ({exc.strerror})") from exc
    except TimeoutError as exc:
        what = "connection timed out" if connecting else "no data before the idle timeout"
        cls = ConnectError if connecting else ConnectionLost
        raise cls(f"{endpoint}: {what}") from exc
    except ConnectionRefusedError as exc:
        raise ConnectError(f"{endpoint}: connection refused") from exc
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
        cls = ConnectError if connecting else ConnectionLost
        raise cls(
            f"{endpoint}: connection {'reset' if connecting else 'lost'} ({exc.strerror or exc})"
        ) from exc
    except OSError as exc:
        cls = ConnectError if connecting else ConnectionLost
        raise cls(f"{endpoint}: {exc.strerror or exc}") from exc
    except (OverflowError, ValueError) as exc:  # e.g. port 99999
        raise ConnectError(f"{endpoint}: invalid address ({exc})") from exc


class _Closed(Exception):
    """Internal: aclose() was called while connecting."""


class Source(ABC):
    """An async iterator of frames and FrameErrors, with ``aclose()``.

    ``async for event in source`` runs the source; ``async with source`` closes it on exit.
    """

    name: str

    def __aiter__(self) -> AsyncIterator[SourceEvent]:
        return self.events()

    @abstractmethod
    def events(self) -> AsyncIterator[SourceEvent]:
        """The event stream."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop: close links, end the event stream. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class LinkState(StrEnum):
    """Where a link is."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True)
class LinkStatus:
    """A change of a link's state, for logs, metrics and the ``stream`` command's stderr."""

    source: str
    state: LinkState
    attempt: int = 0
    error: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: An address: a listener's peer (``IP:PORT``, whatever source name it was given), or where a
    #: listener is bound (``HOST:PORT``, the real port when it asked for port 0).
    peer: str | None = None
    #: Frames received on the connection, when it ends (listener peers).
    frames: int | None = None
    #: What went wrong, when ``error`` is set: ``closed`` (the peer closed cleanly), ``lost`` (a link
    #: of ours failed or dropped), ``peer-lost`` (a listener's peer dropped), ``refused`` (a listener
    #: refused a peer), ``tls`` (a peer's TLS handshake failed). The error handler's records derive
    #: from it (:func:`~witskit.transport.error_handling.error_record`).
    kind: str | None = None


def notify(
    status: LinkStatus,
    on_status: Callable[[LinkStatus], None] | None,
    error_handler: ErrorHandler | None = None,
) -> None:
    """Give a link's news to its listeners: the ``on_status`` callback, then the error handler (the
    seed's API), which records the problem the same status carries. A failing callback is logged.
    (A source's FrameErrors reach its error handler the same way: as it yields them.)"""
    if on_status is not None:
        try:
            on_status(status)
        except Exception:
            log.exception("on_status callback failed for %s", status.source)
    if error_handler is not None:
        error_handler.on_status(status)


class LinkSource(Source):
    """A reconnecting stream link (TCP, TLS, serial) around one :class:`FrameParser` per connection.

    At connect it sends ``handshake`` (default ``&&/0111-9999/!!``, ``None`` for none) and again
    every ``handshake_interval`` seconds; in request mode (``request`` bytes and
    ``request_interval``) it sends the request packet on that schedule instead, for EDRs that answer
    each packet. Echoes of its own packets are dropped. No data for ``idle_timeout`` seconds means a
    dead link. On disconnect, a partial frame becomes a FrameError and the link reconnects through
    ``retry`` (default: forever, 1 s doubling to 5 s, with jitter); with ``reconnect=False`` or a
    spent policy the stream raises a :class:`~witskit.errors.TransportError`. A link that delivered
    a frame, or lasted ``stable_after`` seconds, reconnects at once when it drops; one that ended
    sooner without a frame (a device that accepts and closes) counts as a failed attempt, so the
    waits grow as for a refused connection.
    """

    def __init__(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        reconnect: bool = True,
        handshake: bytes | None = DEFAULT_HANDSHAKE,
        handshake_interval: float | None = DEFAULT_HANDSHAKE_INTERVAL,
        request: bytes | None = None,
        request_interval: float | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        connect_timeout: float = 10.0,
        stable_after: float = DEFAULT_STABLE_AFTER,
        on_status: Callable[[LinkStatus], None] | None = None,
        error_handler: ErrorHandler | None = None,
        parser_options: dict[str, Any] | None = None,
    ) -> None:
        if handshake_interval is not None and handshake_interval <= 0:
            raise UsageError("handshake_interval must be positive (or None for at connect only)")
        if request is not None and (request_interval is None or request_interval <= 0):
            raise UsageError("request mode needs a positive request_interval")
        if not stable_after >= 0:
            raise UsageError("stable_after must be a number of seconds (0 or more)")
        self.name = name
        # Without reconnects a link gets one attempt, so an unreachable peer is an error at once.
        self.retry = retry if retry is not None else (reconnect_forever() if reconnect else one_attempt())
        self.reconnect = reconnect
        self.handshake = handshake
        self.handshake_interval = handshake_interval
        self.request = request
        self.request_interval = request_interval
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.stable_after = stable_after
        self.on_status = on_status
        self.error_handler = error_handler
        self.parser_options = parser_options or {}
        self.connection_attempts = 0
        self.connections = 0
        #: Consecutive failed attempts: refused connects and links that ended at once (see above).
        self.failures = 0
        self._last_error: BaseException | None = None
        self.state = LinkState.DISCONNECTED
        self._closed = False
        self._close_requested = asyncio.Event()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._sent = self._own_packets()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.state.value}>"

    def _own_packets(self) -> set[tuple[bytes, ...]]:
        own: set[tuple[bytes, ...]] = set()
        for packet in (self.handshake, self.request):
            if packet:
                parser = FrameParser()
                for event in parser.feed(packet) + parser.close():
                    if isinstance(event, WITSFrame):
                        own.add(event.lines)
        return own

    @abstractmethod
    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open one link, raising a :class:`~witskit.errors.TransportError` on failure."""

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    def _is_closed(self) -> bool:
        # A method, not the attribute: aclose() flips it while the loop is suspended, which a
        # type checker's narrowing of the attribute cannot see.
        return self._closed

    # Status ---------------------------------------------------------------------------------
    def _status(self, state: LinkState, error: BaseException | None = None) -> None:
        self.state = state
        kind = None if error is None else "closed" if isinstance(error, ConnectionClosed) else "lost"
        status = LinkStatus(
            self.name, state, self.connection_attempts, str(error) if error else None, kind=kind
        )
        notify(status, self.on_status, self.error_handler)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async def attempt() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            if self._closed:
                raise _Closed
            self.connection_attempts += 1
            self._status(LinkState.CONNECTING)
            try:
                return await self._open()
            except TransportError as exc:
                self.failures += 1
                self._status(LinkState.DISCONNECTED, exc)
                raise

        # aclose() must not wait out a backoff sleep: race the retries against it.
        error = self._last_error or ConnectionClosed(f"{self.name}: closed by the peer")
        connecting = asyncio.ensure_future(self.retry.execute_after(self.failures, error, attempt))
        closing = asyncio.ensure_future(self._close_requested.wait())
        try:
            await asyncio.wait({connecting, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            raise _Closed
        try:
            return connecting.result()
        except ConnectionLost as exc:
            # Only a link that dropped at once is a ConnectionLost here: such drops spent the policy.
            raise ConnectError(f"{self.name}: gave up after {self.failures} attempts; last: {exc}") from exc

    # The loop ---------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[SourceEvent]:
        """Connect, read, parse, yield; on a drop, report the partial frame and reconnect."""
        while not self._closed:
            try:
                reader, writer = await self._connect()
            except _Closed:
                break
            if self._is_closed():  # aclose() ran while the link was opening
                await _close_writer(writer)
                break
            self._writer = writer
            self.connections += 1
            connected_at = asyncio.get_running_loop().time()
            frames = 0
            self._status(LinkState.CONNECTED)
            parser = FrameParser(source=self.name, **self.parser_options)
            keepalive = self._keepalive_task = asyncio.create_task(
                self._keepalive(writer), name=f"witskit-keepalive {self.name}"
            )
            lost: BaseException | None = None
            try:
                while True:
                    try:
                        with map_errors(self.name, connecting=False):
                            if self.idle_timeout is None:
                                chunk = await reader.read(READ_SIZE)
                            else:
                                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                                # a cancellation (Ctrl-C, aclose) when a read completes at the same
                                # moment, and the link would then never stop.
                                async with asyncio.timeout(self.idle_timeout):
                                    chunk = await reader.read(READ_SIZE)
                    except TransportError as exc:
                        lost = exc
                        break
                    if not chunk:
                        break
                    for event in parser.feed(chunk):
                        if isinstance(event, WITSFrame):
                            if event.lines in self._sent:
                                continue  # our own handshake echoed back
                            frames += 1
                        elif self.error_handler is not None:
                            await self.error_handler.handle(event)
                        yield event
            finally:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keepalive
                self._writer = None
                await _close_writer(writer)
            for event in parser.close():
                if self.error_handler is not None and isinstance(event, FrameError):
                    await self.error_handler.handle(event)
                yield event
            if self._is_closed():
                break
            lasted = asyncio.get_running_loop().time() - connected_at
            if frames or lasted >= self.stable_after:
                self.failures = 0  # a working link: reconnect at once
                error = lost or ConnectionClosed(f"{self.name}: closed by the peer")
            else:
                self.failures += 1
                why = f"closed by the peer {lasted:.1f} s after connecting, before any frame"
                error = lost or ConnectionClosed(f"{self.name}: {why}")
            self._last_error = error
            self._status(LinkState.DISCONNECTED, error)
            if not self.reconnect:
                self._status(LinkState.CLOSED)
                raise error
        self._status(LinkState.CLOSED)

    async def _keepalive(self, writer: asyncio.StreamWriter) -> None:
        packet = self.request if self.request is not None else self.handshake
        interval = self.request_interval if self.request is not None else self.handshake_interval
        if packet is None:
            return
        try:
            while True:
                writer.write(packet)
                await writer.drain()
                if interval is None:
                    return
                await asyncio.sleep(interval)
        except (OSError, RuntimeError) as exc:  # the read loop sees the drop and reports it
            log.debug("keep-alive to %s stopped: %s", self.name, exc)

    async def send(self, data: bytes) -> None:
        """Write bytes to the current link (``sendall`` semantics: waits until they are flushed)."""
        writer = self._writer
        if writer is None:
            raise ConnectionLost(f"{self.name}: not connected")
        with map_errors(self.name, connecting=False):
            writer.write(data)
            await writer.drain()

    async def aclose(self) -> None:
        """Stop reconnecting and close the current link; the event stream then ends."""
        self._closed = True
        self._close_requested.set()
        task = self._keepalive_task
        if task is not None and not task.done():
            task.cancel()  # the consumer may be parked at a yield and never resume the loop
        writer = self._writer
        if writer is not None:
            await _close_writer(writer)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        return
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2.0)
