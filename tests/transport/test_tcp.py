"""The shared link loop (LinkSource) over real TCP: keep-alive, request mode, idle timeout, drops.

Each test runs a scripted EDR on 127.0.0.1 and a :class:`TCPSource` against it, and checks both
what the client yielded and what went on the wire.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from datetime import UTC, datetime

import pytest

from support.edr import EDRServer, Peer, fast_retry, take
from support.waiting import until
from witskit.errors import ConnectError, ConnectionLost, FrameError, TLSError, TransportError
from witskit.protocol import WITSDecoder, WITSFrame, encode_frame, request_packet
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.transport import LinkState, LinkStatus, TCPSource, map_errors
from witskit.transport.resilience import RetryPolicy

HS = DEFAULT_HANDSHAKE
FRAMES = [encode_frame([("0108", 3650.0 + i), ("0113", 20.0 + i)]) for i in range(6)]


def depth(event: WITSFrame | FrameError) -> bytes:
    assert isinstance(event, WITSFrame), event
    return event.lines[0]


def source(port: int, **options: object) -> TCPSource:
    options.setdefault("retry", fast_retry())
    options.setdefault("handshake_interval", None)
    return TCPSource("127.0.0.1", port, **options)  # type: ignore[arg-type]


# Handshake and request mode -----------------------------------------------------------------------
async def test_handshake_on_the_wire_at_connect_and_again_on_schedule(edr) -> None:
    async def script(peer: Peer) -> None:
        await peer.wait_for(lambda data: data.count(HS) >= 3)
        await peer.send(FRAMES[0])
        await peer.hold()

    server: EDRServer = await edr(script)
    src = source(server.port, handshake_interval=0.05)
    events = await take(src, 1)
    await src.aclose()
    assert depth(events[0]) == b"01083650"
    wire = bytes(server.peers[0].received)
    assert wire.startswith(HS), "the handshake is the first thing sent"
    assert wire.count(HS) >= 3, "and it is repeated on schedule"
    assert wire.replace(HS, b"") == b"", "nothing but handshakes is sent"


async def test_handshake_can_be_turned_off(edr) -> None:
    async def script(peer: Peer) -> None:
        await peer.send(FRAMES[0])
        await peer.hold()

    server = await edr(script)
    src = source(server.port, handshake=None)
    assert len(await take(src, 1)) == 1
    await src.aclose()
    await until(lambda: server.peers[0].eof)
    assert server.peers[0].received == b""


async def test_request_mode_sends_request_packets_on_schedule(edr) -> None:
    request = request_packet((1,))

    async def answer_each_request(peer: Peer) -> None:
        for n in range(1, 4):
            await peer.wait_for(lambda data, n=n: data.count(request) >= n)
            await peer.send(FRAMES[n - 1])
        await peer.hold()

    server = await edr(answer_each_request)
    src = source(server.port, request=request, request_interval=0.05)
    events = await take(src, 3)
    await src.aclose()
    assert [depth(e) for e in events] == [b"01083650", b"01083651", b"01083652"]
    wire = bytes(server.peers[0].received)
    assert wire.startswith(request)
    assert wire.count(request) >= 3
    assert HS not in wire, "in request mode the request packet replaces the handshake"


async def test_echoes_of_our_handshake_are_filtered(edr) -> None:
    async def echo(peer: Peer) -> None:
        await peer.wait_for(lambda data: data.count(HS) >= 1)
        await peer.send(HS + FRAMES[0])  # echoed, then data
        await peer.wait_for(lambda data: data.count(HS) >= 2)
        await peer.send(HS[:7])  # an echo split across writes
        await peer.send(HS[7:] + FRAMES[1])
        await peer.hold()

    server = await edr(echo)
    src = source(server.port, handshake_interval=0.05)
    events = await take(src, 2)
    await src.aclose()
    assert [depth(e) for e in events] == [b"01083650", b"01083651"]


# Reconnection -----------------------------------------------------------------------------------
async def test_idle_timeout_drops_a_silent_link_and_reconnects(edr) -> None:
    async def silent(peer: Peer) -> None:
        await peer.hold()

    async def talks(peer: Peer) -> None:
        await peer.send(FRAMES[0])
        await peer.hold()

    server = await edr(silent, talks)
    statuses: list[LinkStatus] = []
    src = source(server.port, idle_timeout=0.2, on_status=statuses.append)
    events = await take(src, 1)
    await src.aclose()
    assert depth(events[0]) == b"01083650"
    assert src.connections == 2
    assert server.peers[0].eof, "the silent link was closed by the client"
    drops = [s for s in statuses if s.state is LinkState.DISCONNECTED]
    assert drops
    assert "idle timeout" in (drops[0].error or "")


async def test_drop_mid_frame_gives_a_frame_error_then_every_later_frame(edr) -> None:
    async def drops_mid_frame(peer: Peer) -> None:
        await peer.wait_for(lambda data: HS in data)  # so the close is a FIN, not a reset
        await peer.send(FRAMES[0] + b"&&\r\n0108365")  # the script ends: the server closes

    async def sends_the_rest(peer: Peer) -> None:
        for frame in FRAMES[1:]:
            await peer.send(frame)
        await peer.hold()

    server = await edr(drops_mid_frame, sends_the_rest)
    src = source(server.port)
    events = await take(src, 7)
    await src.aclose()
    assert depth(events[0]) == b"01083650"
    error = events[1]
    assert isinstance(error, FrameError)
    assert error.kind == "truncated"
    assert error.excerpt.startswith(b"&&")
    assert error.source == src.name
    assert [depth(e) for e in events[2:]] == [f"0108365{i}".encode() for i in range(1, 6)]
    assert src.connections == 2


async def test_a_reset_connection_is_reconnected(edr) -> None:
    async def resets(peer: Peer) -> None:
        peer.reset()

    async def sends(peer: Peer) -> None:
        await peer.send(FRAMES[0])
        await peer.hold()

    server = await edr(resets, sends)
    src = source(server.port)
    events = await take(src, 1)
    await src.aclose()
    assert depth(events[0]) == b"01083650"
    assert src.connections == 2


async def test_without_reconnect_a_closed_link_raises_connection_lost(edr) -> None:
    async def one_frame(peer: Peer) -> None:
        # Read the handshake first: closing with unread bytes makes the kernel send a reset.
        await peer.wait_for(lambda data: HS in data)
        await peer.send(FRAMES[0])

    server = await edr(one_frame)
    src = source(server.port, reconnect=False)
    seen: list[WITSFrame | FrameError] = []

    async def consume() -> None:
        async with asyncio.timeout(5):
            async for event in src:
                seen.append(event)

    with pytest.raises(ConnectionLost, match="closed by the peer"):
        await consume()
    assert [depth(e) for e in seen] == [b"01083650"]


async def test_a_refused_connection_raises_connect_error_once_the_policy_is_spent(edr) -> None:
    server = await edr(Peer.hold)
    port = server.port
    await server.aclose()  # nothing listens on the port now
    src = source(port, retry=fast_retry(max_attempts=3))
    with pytest.raises(ConnectError, match="refused"):
        await take(src, 1)
    assert src.connection_attempts == 3


async def test_aclose_ends_a_running_stream(edr) -> None:
    async def talks(peer: Peer) -> None:
        await peer.send(FRAMES[0])
        await peer.hold()

    server = await edr(talks)
    src = source(server.port)
    got: list[WITSFrame | FrameError] = []

    async def consume() -> None:
        async for event in src:
            got.append(event)

    task = asyncio.create_task(consume())
    await until(lambda: len(got) == 1)
    await src.aclose()
    async with asyncio.timeout(5):
        await task
    assert src.state is LinkState.CLOSED


# What comes through -----------------------------------------------------------------------------
async def test_pason_header_line_stays_in_the_frame_and_decodes_as_text(edr) -> None:
    frame = (
        b"&&\r\n1984PASON/EDR\r\n0101RIG-7\r\n0105260315\r\n0106093015\r\n01083650.40\r\n0113 23.38\r\n!!\r\n"
    )

    async def trickle(peer: Peer) -> None:
        for i in range(0, len(frame), 3):  # any chunking gives the same frame
            await peer.send(frame[i : i + 3])
        await peer.hold()

    server = await edr(trickle)
    src = source(server.port)
    events = await take(src, 1)
    await src.aclose()
    got = events[0]
    assert isinstance(got, WITSFrame)
    assert got.lines[0] == b"1984PASON/EDR"
    decoded = WITSDecoder().decode(got)
    assert decoded.errors == []
    assert decoded.get_value("1984").parsed_value == "PASON/EDR"
    assert decoded.get_value("0108").parsed_value == 3650.4
    assert decoded.timestamp == datetime(2026, 3, 15, 9, 30, 15, tzinfo=UTC)


# Error mapping ----------------------------------------------------------------------------------
def _all_subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _all_subclasses(sub)
    return found


def _instance(cls: type[BaseException]) -> BaseException:
    exc: BaseException | None = None
    for args in ((errno.ECONNRESET, "boom"), ("boom",), ()):
        try:
            exc = cls(*args)
            break
        except TypeError:
            continue
    assert exc is not None, f"cannot build {cls}"
    if isinstance(exc, ssl.SSLError):
        # The _ssl module sets these on every error it raises.
        exc.library, exc.reason = "SSL", "SOMETHING_FAILED"  # type: ignore[attr-defined]
    if isinstance(exc, ssl.SSLCertVerificationError):
        exc.verify_code, exc.verify_message = 20, "unable to get local issuer certificate"
    return exc


#: Where the exceptions a socket or TLS transport can meet are defined. (Other libraries loaded by
#: other tests add OSError subclasses too, such as urllib's HTTPError; they are not a transport's.)
BACKEND_MODULES = ("builtins", "socket", "_socket", "ssl", "_ssl", "asyncio", "concurrent")

#: Every such exception: all OSError subclasses of those modules (socket, ssl, asyncio), timeouts,
#: and the errors a bad address gives.
BACKEND_ERRORS = sorted(
    (
        c
        for c in _all_subclasses(OSError) | {TimeoutError, OverflowError, socket.gaierror, ssl.SSLError}
        if c.__module__.split(".")[0] in BACKEND_MODULES
    ),
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)


@pytest.mark.parametrize("connecting", [True, False], ids=["connecting", "connected"])
@pytest.mark.parametrize("exc_type", BACKEND_ERRORS, ids=lambda c: c.__qualname__)
def test_map_errors_leaves_no_backend_exception_unmapped(
    exc_type: type[BaseException], connecting: bool
) -> None:
    original = _instance(exc_type)
    with pytest.raises(TransportError) as info, map_errors("tcp://rig-7:4000", connecting=connecting):
        raise original
    assert info.value.__cause__ is original
    assert str(info.value).startswith("tcp://rig-7:4000: ")
    assert isinstance(info.value, ConnectionError), "every transport failure is a ConnectionError too"


def test_map_errors_picks_the_error_type_by_cause() -> None:
    cases: list[tuple[BaseException, type[TransportError], bool]] = [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ConnectError, True),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), ConnectError, True),
        (TimeoutError(), ConnectError, True),
        (TimeoutError(), ConnectionLost, False),
        (ConnectionResetError(errno.ECONNRESET, "reset"), ConnectionLost, False),
        (_instance(ssl.SSLError), TLSError, True),
        (_instance(ssl.SSLCertVerificationError), TLSError, True),
        (OverflowError("port must be 0-65535."), ConnectError, True),
    ]
    for original, expected, connecting in cases:
        with pytest.raises(expected), map_errors("tcp://x:1", connecting=connecting):
            raise original


def test_map_errors_maps_an_ssl_error_built_in_python() -> None:
    original = ssl.SSLError(errno.ENOTCONN, "Closed before TLS handshake with data in recv buffer.")
    with pytest.raises(TLSError), map_errors("tls://x:1"):
        raise original


def test_map_errors_lets_witskit_errors_through_unchanged() -> None:
    original = ConnectionLost("tcp://x:1: gone")
    with pytest.raises(ConnectionLost) as info, map_errors("tcp://x:1"):
        raise original
    assert info.value is original


def test_the_backend_error_list_is_not_trivially_small() -> None:
    names = {c.__name__ for c in BACKEND_ERRORS}
    expected = {"ConnectionResetError", "SSLCertVerificationError", "gaierror", "TimeoutError"}
    assert expected | {"OverflowError"} <= names
    assert len(BACKEND_ERRORS) > 15


async def test_an_unresolvable_host_and_an_invalid_port_are_connect_errors() -> None:
    for host, port in (("host.invalid", 4000), ("127.0.0.1", 99999)):
        src = TCPSource(host, port, retry=RetryPolicy(max_attempts=1, retry_on=(TransportError,)))
        with pytest.raises(ConnectError) as info:
            await take(src, 1)
        assert info.value.__cause__ is not None
