"""A simulated rig recorder (EDR) on the network or a serial line, for testing clients end to end.

:class:`RigServer` serves the frames of :class:`~witskit.sim.model.DrillingSimulator` the way real
recorders do, so that a client (WitsKit's own sources, or anything else) can be tested against
something that behaves like a rig, without a rig:

* **Serving modes**: listen on TCP or TLS (:meth:`RigServer.serve_tcp`; one port per rig), push to
  a listener (:meth:`RigServer.push`; one connection per rig, reconnecting with backoff), or write
  to a serial device or pseudo-terminal (:meth:`RigServer.serve_serial`).
* **Pason emulation**: a ``1984PASON/EDR`` line opens every frame; a link silent for
  ``pason_silence_timeout`` seconds gets nothing more (it stays connected) until the client speaks
  again; in send-and-receive mode nothing is sent spontaneously and every valid packet received is
  answered with 1 (half WITS) or ``sar_packets`` (full WITS, about 8) packets.
* **Faults** (:class:`Faults`): connections dropped mid-frame, garbage between frames, frames
  written in small pieces, stalls.

Every connection is a *session* with its own copy of its rig's simulator, its own pacing, Pason
state and fault schedule: one slow, silent or misbehaving client never affects another.

With ``realtime=True`` (the default) each rig drills in wall time from the moment the server starts:
step *k* of the simulator (its record 1, then the records 2 and 8 due) is sent ``k / rate`` seconds
after the start. A connection joins its rig *live*: its first frame is the step due now, and frames
due while a Pason link is muted are skipped, as a real recorder does not keep them. Clients that
connect at the same moment receive the same frames. With ``realtime=False`` there is no wall clock
to follow: every session plays its rig from the start as fast as the link takes it, so the bytes
of a session are reproducible.

The fault schedule is random but deterministic: it is drawn from a generator seeded with the
server's ``seed``, the rig and the session number (0 for a rig's first session).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import os
import random
import ssl
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self
from urllib.parse import urlsplit

from witskit.errors import ConnectError, SerialPortError, UsageError
from witskit.protocol import LINE_ENDINGS, FrameParser, WITSFrame
from witskit.sim.model import DEFAULT_START, DrillingSimulator
from witskit.transport.base import READ_SIZE
from witskit.transport.options import URLOptions, redact_url

__all__ = [
    "DEFAULT_PASON_SILENCE_TIMEOUT",
    "DEFAULT_STALL_EVERY",
    "FULL_WITS_PACKETS",
    "PASON_HEADER",
    "Faults",
    "RigServer",
]

log = logging.getLogger("witskit.rigserver")

#: The line a Pason EDR sends at the start of each record (code 1984: record 19, item 84, vendor).
PASON_HEADER = b"1984PASON/EDR"

#: Pason EDRs stop sending when they have heard nothing from the client for 30 s.
DEFAULT_PASON_SILENCE_TIMEOUT = 30.0

#: Packets a Pason EDR in full-WITS send-and-receive mode answers a packet with (half WITS: 1).
FULL_WITS_PACKETS = 8

#: Query keys of :meth:`RigServer.push` URLs, by scheme: the CA file and the name to verify (TLS).
_PUSH_OPTIONS: dict[str, tuple[str, ...]] = {"tcp": (), "tls": ("ca", "hostname")}

#: Frames sent between two stalls when :attr:`Faults.stall` is set: at the default 1 Hz that is a
#: stall about every 25 s, often enough to see in a short test run.
DEFAULT_STALL_EVERY = 30

#: Largest piece of a frame written at once with :attr:`Faults.split_writes`: small enough that
#: every frame is cut several times, including inside its ``&&`` and ``!!`` markers.
_SPLIT_MAX = 16

#: Longest run of garbage inserted between frames with :attr:`Faults.garbage_rate`.
_GARBAGE_MAX = 48

#: Garbage never holds '&' or '!': a stray "&&" would open a frame and cut the next good one, and
#: the point of the garbage fault is that every good frame still arrives.
_GARBAGE_BYTES = bytes(b for b in range(256) if b not in b"&!")

#: How long a graceful close (FIN, TLS close_notify) may take before the link is aborted.
_CLOSE_TIMEOUT = 2.0

#: A TLS client that has not finished its handshake in 10 s is broken and holds a slot for nothing.
_TLS_HANDSHAKE_TIMEOUT = 10.0

#: Simulator steps generated between two yields to the event loop while a rig catches up with the
#: wall clock (a rig idle for a day at 1 Hz is 86,400 steps, about 3 s of work).
_CATCH_UP_CHUNK = 500

#: Line speeds termios knows, for :meth:`RigServer.serve_serial`.
_BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults to inject into every session, to test how a client copes with a bad link.

    ``drop_every``: after every N frames sent on a connection, send the first half of the next
    frame and close the connection (on a serial line, which cannot be closed, the half frame is
    followed by the next whole frame, like a glitch on the line).
    ``garbage_rate``: the probability, for each frame, that a run of 1-48 random bytes (never
    ``&`` or ``!``) is written just before it.
    ``split_writes``: write each frame in random pieces of 1-16 bytes with tiny pauses, so the
    client reads frames cut at every possible place.
    ``stall``: after every ``stall_every`` frames sent (default 30), send nothing for ``stall``
    seconds; the stream then resumes with the next frame (in real time, the schedule moves on by
    the stall: frames come late, none is skipped).
    """

    drop_every: int | None = None
    garbage_rate: float = 0.0
    split_writes: bool = False
    stall: float | None = None
    stall_every: int = DEFAULT_STALL_EVERY

    def __post_init__(self) -> None:
        drop = self.drop_every
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, int) or drop < 1):
            raise UsageError(f"drop_every must be a positive number of frames (or None), got {drop!r}")
        rate = self.garbage_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise UsageError(f"garbage_rate must be a probability between 0 and 1, got {rate!r}")
        stall = self.stall
        if stall is not None and not (isinstance(stall, int | float) and math.isfinite(stall) and stall > 0):
            raise UsageError(f"stall must be a positive number of seconds (or None), got {stall!r}")
        every = self.stall_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UsageError(f"stall_every must be a positive number of frames, got {every!r}")

    @property
    def active(self) -> bool:
        """True when at least one fault is on."""
        return bool(self.drop_every or self.garbage_rate or self.split_writes or self.stall)


class _End(StrEnum):
    """Why a session ended."""

    DONE = "all frames sent"
    DROPPED = "dropped (fault injection)"
    PEER = "closed by the client"
    ERROR = "link error"


class _Dropped(Exception):
    """Internal: the drop_every fault closed the connection."""


class _Rig:
    """One simulated rig: its simulator settings, and a copy of it kept level with the wall clock."""

    def __init__(self, index: int, make: Callable[[int, str], DrillingSimulator], seed: int) -> None:
        self.index = index
        self.well_id = f"WITSKIT-SIM-{index + 1}"
        self._make = make
        self.seed = seed
        self._live = make(seed, self.well_id)  # also checks the settings, at construction
        self._steps = 0  # steps the live copy has made
        self._lock = asyncio.Lock()
        self.sessions = 0  # sessions started: numbers the fault schedules

    def fresh(self) -> DrillingSimulator:
        """A simulator at the rig's start."""
        return self._make(self.seed, self.well_id)

    async def at_step(self, step: int) -> DrillingSimulator:
        """A simulator whose next step is ``step`` (a copy: the rig's state is shared by sessions)."""
        async with self._lock:
            while self._steps < step:
                n = min(_CATCH_UP_CHUNK, step - self._steps)
                for _ in self._live.events(n):
                    pass
                self._steps += n
                await asyncio.sleep(0)  # a long catch-up must not freeze the other sessions
            # deepcopy is cheap (a few ms) and gives the session the exact state of the rig.
            return copy.deepcopy(self._live)


class _Link:
    """One session's link: the streams, what the client said and when."""

    def __init__(
        self,
        rig: _Rig,
        label: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        kind: str,
        read_transport: asyncio.BaseTransport | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.rig = rig
        self.read_transport = read_transport  # a serial line reads through its own transport
        self.label = label
        self.reader = reader
        self.writer = writer
        self.kind = kind  # "tcp", "push" or "serial"
        self.last_heard = loop.time()  # Pason counts the client's silence from the connection
        self.heard = asyncio.Event()
        self.requests = 0  # valid packets received and not yet answered (send-and-receive)
        self.requested = asyncio.Event()
        self.sent = 0  # whole frames sent
        self.since_drop = 0  # whole frames sent since the last cut (serial drops do not close)
        self.muted = False


class _Cursor:
    """A session's frames with the wall-clock time each is due (loop clock)."""

    def __init__(self, events: Iterator[tuple[datetime, bytes]], due: Callable[[datetime], float]) -> None:
        self._events = events
        self._due = due
        self._next: tuple[float, bytes] | None = None
        self.shift = 0.0  # seconds the schedule has moved on (stalls)

    def peek(self) -> tuple[float, bytes] | None:
        if self._next is None:
            item = next(self._events, None)
            if item is None:
                return None
            self._next = (self._due(item[0]), item[1])
        return self._next[0] + self.shift, self._next[1]

    def pop(self) -> tuple[float, bytes] | None:
        item = self.peek()
        self._next = None
        return item


class RigServer:
    """Serve simulated rigs over TCP/TLS, by pushing to a listener, or on a serial line.

    ``rigs`` independent rigs are simulated; rig *i* (from 0) is a
    :class:`~witskit.sim.model.DrillingSimulator` with seed ``seed + i`` and well id
    ``WITSKIT-SIM-<i+1>``, so rig 0 sends exactly what ``witskit simulate`` writes for the same
    seed. ``rate``, ``records``, ``line_ending``, ``metric``, ``start`` and ``all_states`` are the
    simulator's.
    ``frames`` ends each session after that many record-1 steps (``None``: never).

    ``pason`` turns on the ``1984PASON/EDR`` line and the silence rule (``pason_silence_timeout``
    seconds; any byte received counts as hearing from the client). ``send_and_receive`` answers
    each valid packet received (any well-formed frame, such as the handshake
    ``&&/0111-9999/!!``) with the next ``sar_packets`` frames of the stream and sends nothing
    else; in real time an answer starts at the rig's current step.

    ``realtime`` paces the frames in wall time and joins sessions to their rig live; without it
    each session replays its rig from the start as fast as the link takes it (see the module
    documentation). ``faults`` are injected into every session. Pushed connections are remade after
    ``reconnect_delay`` seconds, doubling up to ``max_reconnect_delay`` while attempts fail.

    ``on_event`` receives one human-readable line per connection, disconnection and reconnect
    (the CLI prints them); everything is also logged on the ``witskit.rigserver`` logger.

    Use ``async with RigServer(...) as server`` or call :meth:`aclose`: it stops listening, ends
    every session and closes every socket and device.
    """

    def __init__(
        self,
        *,
        rigs: int = 1,
        seed: int = 0,
        rate: float = 1.0,
        records: Iterable[int] = (1, 2, 8),
        line_ending: str = "crlf",
        metric: bool = False,
        start: datetime = DEFAULT_START,
        frames: int | None = None,
        pason: bool = False,
        pason_silence_timeout: float = DEFAULT_PASON_SILENCE_TIMEOUT,
        send_and_receive: bool = False,
        sar_packets: int = 1,
        realtime: bool = True,
        faults: Faults | None = None,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 30.0,
        all_states: bool = False,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(rigs, bool) or not isinstance(rigs, int) or rigs < 1:
            raise UsageError(f"rigs must be a positive integer, got {rigs!r}")
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
            raise UsageError(f"frames must be a positive integer (or None for no end), got {frames!r}")
        if not (isinstance(pason_silence_timeout, int | float) and pason_silence_timeout > 0):
            raise UsageError(f"pason_silence_timeout must be positive, got {pason_silence_timeout!r}")
        if isinstance(sar_packets, bool) or not isinstance(sar_packets, int) or sar_packets < 1:
            raise UsageError(
                f"sar_packets must be a positive integer (1 half WITS, 8 full), got {sar_packets!r}"
            )
        if not 0 < reconnect_delay <= max_reconnect_delay:
            raise UsageError("reconnect_delay must be positive and at most max_reconnect_delay")
        records = tuple(records)
        self.frames = frames
        self.pason = pason
        self.pason_silence_timeout = float(pason_silence_timeout)
        self.send_and_receive = send_and_receive
        self.sar_packets = sar_packets
        self.realtime = realtime
        self.faults = faults if faults is not None else Faults()
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.on_event = on_event
        self.seed = seed

        def make(rig_seed: int, well_id: str) -> DrillingSimulator:
            return DrillingSimulator(
                rig_seed,
                start=start,
                rate=rate,
                records=records,
                line_ending=line_ending,
                metric=metric,
                well_id=well_id,
                all_states=all_states,
            )

        self._rigs = [_Rig(i, make, seed + i) for i in range(rigs)]  # checks the simulator's settings
        self.rate = float(rate)
        #: Simulated time of step 0 (UTC; a naive ``start`` is taken as UTC, as the simulator does).
        self.start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        self._eol = LINE_ENDINGS[line_ending.lower()]
        #: Bound listening addresses, one per rig per :meth:`serve_tcp` call (``tcp://host:port``).
        self.addresses: list[str] = []
        #: Bound listening ports, in the same order as :attr:`addresses`.
        self.ports: list[int] = []
        #: Sessions started (connections accepted or made, serial devices opened).
        self.connections = 0
        #: Whole frames sent, over all sessions.
        self.frames_sent = 0
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finite: set[asyncio.Task[Any]] = set()  # push and serial tasks (they can finish)
        self._t0: float | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<RigServer rigs={len(self._rigs)} ports={self.ports} sessions={self.connections}>"

    @property
    def rigs(self) -> int:
        """How many rigs are simulated."""
        return len(self._rigs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Serving -------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this RigServer is closed; create a new one")
        if self._t0 is None:  # the rigs start drilling when the server starts serving
            self._t0 = asyncio.get_running_loop().time()

    def _say(self, message: str) -> None:
        log.info("%s", message)
        if self.on_event is not None:
            try:
                self.on_event(message)
            except Exception:
                log.exception("on_event callback failed")

    async def serve_tcp(self, host: str | None, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen on ``host``; return the bound port of rig 0 (all of them are in :attr:`ports`).

        One rig per port: with ``rigs=N`` and a non-zero ``port``, rig *i* listens on
        ``port + i``; with port 0 each rig gets an ephemeral port. Every connection is a session of
        that port's rig. ``host`` ``None`` or ``""`` listens on every interface; ``ssl_context``
        (see :func:`witskit.transport.tls.server_context`) serves TLS. A port that cannot be bound
        raises :class:`~witskit.errors.ConnectError` and nothing is left listening by this call.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise UsageError(f"port {port!r} is not a TCP port (0-65535)")
        if port and port + len(self._rigs) - 1 > 65535:
            raise UsageError(f"ports {port}-{port + len(self._rigs) - 1} do not all exist")
        self._check_open()
        scheme = "tls" if ssl_context is not None else "tcp"
        started: list[tuple[asyncio.Server, int, str]] = []
        try:
            for rig in self._rigs:
                want = port + rig.index if port else 0

                async def handle(
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rig: _Rig = rig
                ) -> None:
                    await self._accepted(rig, reader, writer)

                try:
                    server = await asyncio.start_server(
                        handle,
                        host or None,
                        want,
                        ssl=ssl_context,
                        ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT if ssl_context else None,
                    )
                except OSError as exc:
                    where = f"{host or '*'}:{want}"
                    raise ConnectError(f"{scheme}://{where}: cannot listen ({exc.strerror or exc})") from exc
                sock = server.sockets[0].getsockname()
                bound = int(sock[1])
                # No host: every interface, written as ListenerSource names it (tcp-listen://:port).
                shown = f"[{host}]" if host and ":" in host else host or ""
                started.append((server, bound, f"{scheme}://{shown}:{bound}"))
        except BaseException:
            for server, _, _ in started:
                server.close()
            raise
        for server, bound, address in started:
            self._servers.append(server)
            self.ports.append(bound)
            self.addresses.append(address)
        return started[0][1]

    async def push(self, url: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        """Connect to the listener at ``url`` and push every rig to it, one connection per rig.

        ``url`` is ``tcp://host:port`` or ``tls://host:port`` (query ``ca=`` for the CA file and
        ``hostname=`` for the name to verify; or pass ``ssl_context``). Returns at once; each
        rig's connection is made in the background, and remade with backoff (``reconnect_delay``
        doubling to ``max_reconnect_delay``) whenever it fails or the listener closes it, until
        :meth:`aclose` or the end of ``frames``.
        """
        host, port, context, server_hostname = _push_target(url, ssl_context)
        self._check_open()
        shown = url.split("?", 1)[0]
        for rig in self._rigs:
            task = asyncio.create_task(
                self._push_loop(rig, host, port, context, server_hostname, shown),
                name=f"witskit-rigserver push rig {rig.index + 1}",
            )
            self._track(task, finite=True)

    async def serve_serial(self, path: str, *, baudrate: int = 9600, rig: int = 0) -> None:
        """Send rig ``rig`` on a serial device or pseudo-terminal (raw mode, 8N1 at ``baudrate``).

        The device is opened now (an error raises :class:`~witskit.errors.SerialPortError`); the
        stream then runs in the background until :meth:`aclose` or the end of ``frames``. Bytes
        the client sends back (Pason handshakes, send-and-receive requests) are read as on TCP.
        """
        if baudrate not in _BAUD_RATES:
            raise UsageError(f"baud rate {baudrate!r} is not one of {', '.join(map(str, _BAUD_RATES))}")
        if isinstance(rig, bool) or not isinstance(rig, int) or not 0 <= rig < len(self._rigs):
            raise UsageError(f"rig {rig!r} does not exist (0-{len(self._rigs) - 1})")
        self._check_open()
        link = await _open_serial(self._rigs[rig], path, baudrate)
        task = asyncio.create_task(
            self._session(link),
            name=f"witskit-rigserver serial {path}",
        )
        self._track(task, finite=True)

    async def wait_finished(self) -> None:
        """Wait until every push and serial stream has ended (at once when there is none).

        Listening servers are not waited for: they run until :meth:`aclose`.
        """
        while self._finite:
            await asyncio.gather(*list(self._finite), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop listening, end every session and close every socket and device. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for server in self._servers:
            server.close()
        # A connection accepted just before close() has a handler that may not have started yet;
        # one turn of the loop lets it start (it sees _closed and leaves) so it is awaited below.
        await asyncio.sleep(0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), _CLOSE_TIMEOUT)
        self._servers.clear()

    # Sessions ------------------------------------------------------------------------------------
    def _track(self, task: asyncio.Task[Any], *, finite: bool = False) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if finite:
            self._finite.add(task)
            task.add_done_callback(self._finite.discard)

    async def _accepted(self, rig: _Rig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One accepted connection (the handler asyncio runs as its own task)."""
        task = asyncio.current_task()
        if self._closed or task is None:
            writer.transport.abort()
            await asyncio.sleep(0)  # let the transport's close callback release the socket
            return
        self._track(task)
        peer = writer.get_extra_info("peername")
        label = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        with contextlib.suppress(asyncio.CancelledError):
            # Cancelled only by aclose(), which has already closed the link. asyncio (3.11) calls
            # task.exception() on a finished connection handler, which raises for a cancelled one.
            await self._session(_Link(rig, label, reader, writer, kind="tcp"))

    async def _push_loop(
        self,
        rig: _Rig,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        server_hostname: str | None,
        shown: str,
    ) -> None:
        delay = self.reconnect_delay
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        host, port, ssl=context, server_hostname=server_hostname if context else None
                    ),
                    10.0,
                )
            except (OSError, TimeoutError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                self._say(
                    f"rig {rig.index + 1}: cannot connect to {shown} ({reason}); retrying in {delay:g} s"
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
                continue
            delay = self.reconnect_delay
            end = await self._session(_Link(rig, shown, reader, writer, kind="push"))
            if end is _End.DONE:
                return
            await asyncio.sleep(delay)  # a listener that hangs up at once must not be hammered

    async def _session(self, link: _Link) -> _End:
        """Run one session: a reader task (what the client says) and a sender; close the link."""
        rig = link.rig
        number = rig.sessions
        rig.sessions += 1
        self.connections += 1
        arrow = "->" if link.kind in ("push", "serial") else "<-"
        name = f"rig {rig.index + 1} {arrow} {link.label}"
        self._say(f"{name}: connected" if link.kind != "serial" else f"{name}: opened")
        # A string seed: deterministic across runs and Python versions, and independent of the
        # simulator's own random streams.
        rng = random.Random(f"witskit-faults:{self.seed}:{rig.index}:{number}")
        receive = asyncio.create_task(self._receive(link), name=f"witskit-rigserver receive {name}")
        send = asyncio.create_task(self._send(link, rng, name), name=f"witskit-rigserver send {name}")
        end = _End.ERROR
        cancelled = False
        try:
            await asyncio.wait({receive, send}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            for task in (receive, send):
                task.cancel()
            results = await asyncio.gather(receive, send, return_exceptions=True)
            if isinstance(results[1], _End):
                end = results[1]
            elif receive.done() and not receive.cancelled() and results[0] is None:
                end = _End.PEER
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, OSError | _Dropped):
                    log.error("%s: unexpected error", name, exc_info=result)
            if cancelled or end in (_End.PEER, _End.ERROR):
                # Shutting down, or nobody left to read what is buffered: no graceful close.
                _abort(link)
                await asyncio.sleep(0)  # let the transports' close callbacks release the sockets
            else:
                await _close(link)  # flush the last frame (or the half frame of a drop), then FIN
            if not cancelled:
                self._say(f"{name}: closed after {link.sent} frames: {end.value}")
        return end

    async def _receive(self, link: _Link) -> None:
        """Read what the client sends; returns at end of stream, raises OSError on a link error."""
        loop = asyncio.get_running_loop()
        parser = FrameParser(source=link.label)
        while True:
            chunk = await link.reader.read(READ_SIZE)
            if not chunk:
                return
            link.last_heard = loop.time()
            link.heard.set()
            if not self.send_and_receive:
                continue
            for event in parser.feed(chunk):
                if isinstance(event, WITSFrame):
                    link.requests += 1
                    link.requested.set()

    def _cursor(self, sim: DrillingSimulator) -> _Cursor:
        t0 = self._t0 if self._t0 is not None else asyncio.get_running_loop().time()
        first = self.start

        def due(when: datetime) -> float:
            # Step k is due k / rate seconds after the server started: the rigs drill in wall time.
            return t0 + (when - first).total_seconds()

        return _Cursor(sim.events(self.frames), due)

    async def _simulator(self, rig: _Rig) -> DrillingSimulator:
        if not self.realtime or self._t0 is None:
            return rig.fresh()
        elapsed = asyncio.get_running_loop().time() - self._t0
        return await rig.at_step(max(0, math.floor(elapsed * self.rate)))

    def _live_due(self) -> float:
        """The due time of the rig step that is current now."""
        loop_now = asyncio.get_running_loop().time()
        t0 = self._t0 if self._t0 is not None else loop_now
        return t0 + math.floor((loop_now - t0) * self.rate) / self.rate

    async def _send(self, link: _Link, rng: random.Random, name: str) -> _End:
        cursor = self._cursor(await self._simulator(link.rig))
        try:
            if self.send_and_receive:
                await self._answer_requests(link, cursor, rng)
            else:
                await self._stream(link, cursor, rng, name)
        except _Dropped:
            return _End.DROPPED
        return _End.DONE

    async def _stream(self, link: _Link, cursor: _Cursor, rng: random.Random, name: str) -> None:
        loop = asyncio.get_running_loop()
        while (item := cursor.peek()) is not None:
            due, _ = item
            if self.realtime:
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.pason and self._silent(link):
                if not link.muted:
                    link.muted = True
                    self._say(f"{name}: nothing heard for {self.pason_silence_timeout:g} s: muted (Pason)")
                if self.realtime:
                    cursor.pop()  # a muted rig does not keep what it did not send
                    continue
                while self._silent(link):
                    link.heard.clear()
                    await link.heard.wait()
            if link.muted:
                link.muted = False
                self._say(f"{name}: heard from the client: sending again")
            cursor.pop()
            await self._send_frame(link, item[1], rng)
            await self._maybe_stall(link, cursor)

    def _silent(self, link: _Link) -> bool:
        return asyncio.get_running_loop().time() - link.last_heard > self.pason_silence_timeout

    async def _answer_requests(self, link: _Link, cursor: _Cursor, rng: random.Random) -> None:
        while True:
            while link.requests == 0:
                link.requested.clear()
                await link.requested.wait()
            link.requests -= 1
            if self.realtime:
                # An answer carries the rig's current data: skip the steps already past.
                live = self._live_due() - 1e-9
                while (item := cursor.peek()) is not None and item[0] < live:
                    cursor.pop()
            for _ in range(self.sar_packets):
                item = cursor.pop()
                if item is None:
                    return
                await self._send_frame(link, item[1], rng)
                await self._maybe_stall(link, cursor)

    async def _maybe_stall(self, link: _Link, cursor: _Cursor) -> None:
        stall = self.faults.stall
        if stall is not None and link.sent % self.faults.stall_every == 0:
            await asyncio.sleep(stall)
            cursor.shift += stall

    def _with_header(self, frame: bytes) -> bytes:
        if not self.pason:
            return frame
        head = 2 + len(self._eol)  # b"&&" and its line ending
        return frame[:head] + PASON_HEADER + self._eol + frame[head:]

    async def _send_frame(self, link: _Link, frame: bytes, rng: random.Random) -> None:
        faults = self.faults
        data = self._with_header(frame)
        if faults.garbage_rate and rng.random() < faults.garbage_rate:
            size = rng.randint(1, _GARBAGE_MAX)
            await self._write(link, bytes(rng.choices(_GARBAGE_BYTES, k=size)), rng)
        if faults.drop_every is not None and link.since_drop >= faults.drop_every:
            link.since_drop = 0
            await self._write(link, data[: len(data) // 2], rng)
            if link.kind != "serial":
                raise _Dropped
        await self._write(link, data, rng)
        link.sent += 1
        link.since_drop += 1
        self.frames_sent += 1
        if not self.realtime:
            # drain() does not yield while the socket takes the data: without this, a replaying
            # session would keep the loop (and every other session) to itself.
            await asyncio.sleep(0)

    async def _write(self, link: _Link, data: bytes, rng: random.Random) -> None:
        writer = link.writer
        if not self.faults.split_writes:
            writer.write(data)
            await writer.drain()
            return
        i = 0
        while i < len(data):
            n = rng.randint(1, _SPLIT_MAX)
            writer.write(data[i : i + n])
            await writer.drain()
            i += n
            # Half of the pieces wait a millisecond, so most reach the client in separate reads.
            await asyncio.sleep(0.001 if rng.random() < 0.5 else 0)


def _push_target(
    url: str, ssl_context: ssl.SSLContext | None
) -> tuple[str, int, ssl.SSLContext | None, str | None]:
    """(host, port, TLS context, host name to verify) of a ``tcp://`` or ``tls://`` push URL."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{shown!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in ("tcp", "tls"):
        raise UsageError(f"{shown!r}: push needs tcp://host:port or tls://host:port")
    if not parts.hostname or port is None or port == 0:
        raise UsageError(f"{shown!r}: push needs a host and a port (tcp://host:port)")
    query = URLOptions(url, _PUSH_OPTIONS[parts.scheme])
    if parts.scheme == "tcp":
        return parts.hostname, port, None, None
    if ssl_context is None:
        from witskit.transport.tls import client_context

        ssl_context = client_context(query.text("ca"))
    return parts.hostname, port, ssl_context, query.text("hostname") or parts.hostname


async def _open_serial(rig: _Rig, path: str, baudrate: int) -> _Link:
    """Open a tty (serial port or pty) in raw mode as a session link on the event loop."""
    import termios
    import tty

    loop = asyncio.get_running_loop()
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise SerialPortError(f"serial://{path}: cannot open ({exc.strerror or exc})") from exc
    try:
        if not stat.S_ISCHR(os.fstat(fd).st_mode) or not os.isatty(fd):
            raise SerialPortError(f"serial://{path}: not a serial device or terminal")
        # Raw: no echo, no line editing, no CR/LF translation; the frames go out byte for byte.
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        speed = getattr(termios, f"B{baudrate}")
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        read_fd = os.dup(fd)
    except termios.error as exc:
        os.close(fd)
        raise SerialPortError(f"serial://{path}: cannot configure ({exc})") from exc
    except BaseException:
        os.close(fd)
        raise
    # Separate descriptors for reading and writing: each pipe transport closes its own.
    read_file = os.fdopen(read_fd, "rb", buffering=0)
    write_file = os.fdopen(fd, "wb", buffering=0)
    reader = asyncio.StreamReader()
    try:
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), read_file
        )
    except BaseException:
        read_file.close()
        write_file.close()
        raise
    try:
        # A StreamReaderProtocol (with a reader that never gets data) gives the writer what it
        # needs for drain() and wait_closed() on a write-only pipe transport.
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), write_file
        )
    except BaseException:
        read_transport.close()
        write_file.close()
        raise
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return _Link(rig, path, reader, writer, kind="serial", read_transport=read_transport)


def _abort(link: _Link) -> None:
    """Close at once, dropping unsent data (the server is shutting down)."""
    link.writer.transport.abort()
    if link.read_transport is not None:
        link.read_transport.close()


async def _close(link: _Link) -> None:
    """Close gracefully (FIN, TLS close_notify) but never wait long: abort a peer that stalls."""
    writer = link.writer
    writer.close()
    if link.read_transport is not None:
        link.read_transport.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
    except (TimeoutError, OSError):
        writer.transport.abort()
        await asyncio.sleep(0)
