"""Reconnect backoff of rig links against real loopback servers that misbehave.

A serial-to-Ethernet converter or a single-client EDR accepts a connection and closes it at once;
a link that reconnected at once after every drop hammered such a device 850 times a second. And a
WITS feed cannot retransmit, so after an outage the link must come back within seconds of the EDR
listening again, not after a 30 s backoff.
"""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

from support.edr import Peer, take
from support.waiting import until
from witskit.errors import ConnectError, ConnectionClosed, TransportError
from witskit.protocol import encode_frame
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.transport import LinkState, LinkStatus, TCPSource
from witskit.transport.base import DEFAULT_STABLE_AFTER, MAX_RECONNECT_DELAY, reconnect_forever
from witskit.transport.resilience import RetryPolicy

FRAME = encode_frame([("0108", 3650.0), ("0113", 20.0)])


async def accept_and_close_server() -> tuple[asyncio.Server, list[float]]:
    """A loopback server that closes every connection as soon as it is accepted."""
    accepted: list[float] = []

    async def close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(asyncio.get_running_loop().time())
        writer.transport.abort()
        await asyncio.sleep(0)

    return await asyncio.start_server(close_at_once, "127.0.0.1", 0), accepted


async def run_for(src: TCPSource, seconds: float) -> None:
    """Iterate ``src`` for ``seconds`` (it yields nothing here), then close it."""

    async def consume() -> None:
        async for _ in src:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(seconds)
    await src.aclose()
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)


async def test_a_peer_that_accepts_and_closes_at_once_gets_backoff_not_a_storm() -> None:
    server, accepted = await accept_and_close_server()
    port = server.sockets[0].getsockname()[1]
    statuses: list[LinkStatus] = []
    src = TCPSource("127.0.0.1", port, on_status=statuses.append)  # the default reconnect policy
    try:
        await run_for(src, 2.5)
    finally:
        server.close()
        await server.wait_closed()
    # Default policy: connect at 0, then wait 0.5-1 s, then 1-2 s: three connections in 2.5 s.
    # Without counting the drop as a failed attempt this was hundreds (850 a second measured).
    assert 2 <= len(accepted) <= 4, f"{len(accepted)} connections in 2.5 s"
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert all(gap >= 0.45 for gap in gaps), gaps
    drops = [s for s in statuses if s.state is LinkState.DISCONNECTED]
    assert drops
    assert "after connecting, before any frame" in (drops[0].error or "")


async def test_short_links_count_against_a_bounded_policy() -> None:
    server, accepted = await accept_and_close_server()
    port = server.sockets[0].getsockname()[1]
    policy = RetryPolicy(max_attempts=3, backoff_factor=0.01, max_backoff=0.05, retry_on=(TransportError,))
    src = TCPSource("127.0.0.1", port, retry=policy, handshake=None)
    try:
        with pytest.raises(ConnectError, match=r"gave up after 3 attempts; .*before any frame") as info:
            await take(src, 1, timeout=5)
    finally:
        await src.aclose()
        server.close()
        await server.wait_closed()
    assert len(accepted) == 3
    assert isinstance(info.value.__cause__, ConnectionClosed)


async def test_a_link_that_delivered_a_frame_reconnects_at_once(edr) -> None:
    async def one_frame_then_close(peer: Peer) -> None:
        await peer.wait_for(lambda data: DEFAULT_HANDSHAKE in data)  # so the close is a FIN
        await peer.send(FRAME)

    async def holds(peer: Peer) -> None:
        await peer.send(FRAME)
        await peer.hold()

    server = await edr(one_frame_then_close, holds)
    waits: list[float] = []
    policy = reconnect_forever()
    policy.on_retry = lambda _attempt, _exc, delay: waits.append(delay)
    src = TCPSource("127.0.0.1", server.port, handshake_interval=None, retry=policy)
    events = await take(src, 2, timeout=5)
    await src.aclose()
    assert len(events) == 2
    assert src.connections == 2
    assert waits == [], "a working link that dropped reconnects at once, without a backoff wait"
    assert src.failures == 0


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_after_a_long_refusal_the_link_is_back_within_the_cap() -> None:
    port = closed_loopback_port()
    cap = 0.4  # the default cap scaled down, so the refusals reach it in a second
    policy = RetryPolicy(max_attempts=None, backoff_factor=0.05, max_backoff=cap, retry_on=(TransportError,))
    attempts: list[float] = []

    def on_status(status: LinkStatus) -> None:
        if status.state is LinkState.CONNECTING:
            attempts.append(asyncio.get_running_loop().time())

    src = TCPSource("127.0.0.1", port, retry=policy, on_status=on_status, handshake=None)
    accepted = asyncio.Event()

    async def edr(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.write(FRAME)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    got: list[object] = []

    async def consume() -> None:
        async for event in src:
            got.append(event)

    task = asyncio.create_task(consume())
    server: asyncio.Server | None = None
    try:
        await asyncio.sleep(1.5)  # refused all along: the waits have grown to the cap
        assert len(attempts) >= 5
        server = await asyncio.start_server(edr, "127.0.0.1", port)
        listening = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            await accepted.wait()
        back_after = asyncio.get_running_loop().time() - listening
        await until(lambda: len(got) == 1)
    finally:
        await src.aclose()
        async with asyncio.timeout(5):
            await asyncio.gather(task, return_exceptions=True)
        if server is not None:
            server.close()
            await server.wait_closed()
    assert back_after <= cap + 0.3, f"back {back_after:.2f} s after the EDR listened (cap {cap} s)"
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= cap + 0.2, gaps


def test_the_default_reconnect_wait_is_capped_at_5_s_with_jitter() -> None:
    # A WITS feed does not buffer: the default waits stop growing at 5 s (they grew to 30 s, and a
    # link came back ~20 s after its EDR listened again).
    assert MAX_RECONNECT_DELAY == 5.0
    policy = reconnect_forever()
    assert policy.max_attempts is None
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    waits = [policy.backoff(n) for n in range(1, 200)]
    assert max(waits) <= MAX_RECONNECT_DELAY
    assert min(waits[10:]) >= MAX_RECONNECT_DELAY / 2
    assert len({round(w, 6) for w in waits[10:]}) > 1, "jittered"
    src = TCPSource("127.0.0.1", 4000)
    assert src.retry.max_backoff == MAX_RECONNECT_DELAY
    assert src.stable_after == DEFAULT_STABLE_AFTER == 5.0
