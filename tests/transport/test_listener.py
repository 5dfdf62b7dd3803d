"""ListenerSource: many pushing peers, each tagged; allowlist, limits, idle peers, bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tracemalloc

import pytest

from support.edr import close_writer, push, take
from support.waiting import until
from witskit.errors import ConnectError, FrameError, UsageError
from witskit.protocol import WITSFrame, encode_frame
from witskit.protocol.limits import DEFAULT_MAX_LINE_LENGTH, EXCERPT_BYTES
from witskit.transport import LinkState, LinkStatus, ListenerSource
from witskit.transport.listener import parse_allowlist


def frame(rig: int, n: int = 0) -> bytes:
    return encode_frame([("0101", f"RIG-{rig}"), ("0108", 1000.0 + n)])


def tag(listener: ListenerSource, writer: asyncio.StreamWriter) -> str:
    """The source name of a peer: the listener's name and the peer's address (not its port)."""
    return f"{listener.name}/{writer.get_extra_info('sockname')[0]}"


def loopback(i: int) -> tuple[str, int]:
    """A distinct local address per rig (Linux routes all of 127/8 to lo): one source each."""
    return (f"127.0.{1 + i // 250}.{2 + i % 250}", 0)


def rig_of(event: WITSFrame | FrameError) -> bytes:
    assert isinstance(event, WITSFrame), event
    return event.lines[0]


# Many peers -------------------------------------------------------------------------------------
async def test_concurrent_peers_are_multiplexed_each_tagged_and_in_order() -> None:
    async with ListenerSource("127.0.0.1", 0) as listener:
        assert listener.name == "tcp-listen://127.0.0.1:0"  # as made: a port-0 name does not change
        writers = [(await push(listener.port, local_addr=loopback(i)))[1] for i in range(20)]
        for rig, writer in enumerate(writers):  # interleaved: frame n of every rig, then n + 1
            for n in range(3):
                writer.write(frame(rig, n))
        for writer in writers:
            await writer.drain()
        events = await take(listener, 60)
        for writer in writers:
            await close_writer(writer)
    by_source: dict[str, list[bytes]] = {}
    for event in events:
        assert isinstance(event, WITSFrame)
        by_source.setdefault(event.source or "", []).append(event.lines[1])
    assert set(by_source) == {tag(listener, w) for w in writers}
    for rig, writer in enumerate(writers):
        assert by_source[tag(listener, writer)] == [b"01081000", b"01081001", b"01081002"], rig


async def test_three_hundred_concurrent_connections() -> None:
    count = 320
    async with ListenerSource("127.0.0.1", 0) as listener:
        clients = await asyncio.gather(
            *(push(listener.port, frame(i), local_addr=loopback(i)) for i in range(count))
        )
        events = await take(listener, count)
        assert listener.active_connections == count
        assert len(listener.peers) == count
        await asyncio.gather(*(close_writer(w) for _, w in clients))
        await until(lambda: listener.active_connections == 0)
    assert {rig_of(e) for e in events} == {f"0101RIG-{i}".encode() for i in range(count)}
    assert len({e.source for e in events}) == count
    assert listener.accepted == count
    assert listener.refused == 0


async def test_over_max_connections_new_peers_are_refused() -> None:
    statuses: list[LinkStatus] = []
    async with ListenerSource("127.0.0.1", 0, max_connections=3, on_status=statuses.append) as listener:
        writers = [(await push(listener.port, frame(i)))[1] for i in range(3)]
        await take(listener, 3)
        reader, extra = await push(listener.port, frame(99))
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""  # closed at once
        await close_writer(extra)
        assert listener.refused == 1
        await close_writer(writers.pop())
        await until(lambda: listener.active_connections == 2)
        writers.append((await push(listener.port, frame(7)))[1])  # a slot is free again
        assert rig_of((await take(listener, 1))[0]) == b"0101RIG-7"
        for writer in writers:
            await close_writer(writer)
    refused = [s for s in statuses if (s.error or "").startswith("refused")]
    assert len(refused) == 1
    assert "max_connections=3" in (refused[0].error or "")


# Who may connect --------------------------------------------------------------------------------
async def test_peers_outside_the_allowlist_are_refused_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    statuses: list[LinkStatus] = []
    async with ListenerSource(
        "127.0.0.1", 0, allowlist=["127.0.0.2", "10.0.0.0/8"], on_status=statuses.append
    ) as listener:
        reader, stranger = await push(listener.port, frame(1))  # from 127.0.0.1
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        await close_writer(stranger)
        _, allowed = await push(listener.port, frame(2), local_addr=("127.0.0.2", 0))
        events = await take(listener, 1)
        await close_writer(allowed)
    assert [rig_of(e) for e in events] == [b"0101RIG-2"]
    assert events[0].source == tag(listener, allowed)
    assert listener.refused == 1
    assert listener.accepted == 1
    refused = [s for s in statuses if (s.error or "").startswith("refused")]
    assert [s.error for s in refused] == ["refused: not in the allowlist"]
    assert refused[0].source == f"{listener.name}/127.0.0.1"
    assert refused[0].peer == f"127.0.0.1:{stranger.get_extra_info('sockname')[1]}"
    assert any("refused" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_allowlist_entries_are_checked() -> None:
    assert [str(n) for n in parse_allowlist("192.0.2.7, 10.0.0.0/8,2001:db8::/32")] == [
        "192.0.2.7/32",
        "10.0.0.0/8",
        "2001:db8::/32",
    ]
    with pytest.raises(UsageError, match=r"'rig-7\.example' is not an IP address"):
        ListenerSource("127.0.0.1", 0, allowlist=["rig-7.example"])


# Slow, silent and hostile peers -----------------------------------------------------------------
async def test_silent_and_slowloris_peers_do_not_block_another_peer() -> None:
    async with ListenerSource("127.0.0.1", 0, idle_timeout=5) as listener:
        _, silent = await push(listener.port)
        _, slow = await push(listener.port, b"&&\r\n01")  # mid-frame, then one byte per second

        async def one_byte_per_second() -> None:
            for byte in b"0101SLOW\r\n":
                await asyncio.sleep(1)
                slow.write(bytes([byte]))

        trickle = asyncio.create_task(one_byte_per_second())
        await until(lambda: listener.active_connections == 2)
        _, busy = await push(listener.port, frame(1, 0) + frame(1, 1) + frame(1, 2))
        events = await take(listener, 3)
        assert [e.source for e in events] == [tag(listener, busy)] * 3
        assert listener.active_connections == 3, "the slow peers are still connected, and waited for"
        trickle.cancel()
        await asyncio.gather(trickle, return_exceptions=True)
        for writer in (silent, slow, busy):
            await close_writer(writer)


async def test_a_silent_peer_is_dropped_after_the_idle_timeout() -> None:
    statuses: list[LinkStatus] = []
    async with ListenerSource("127.0.0.1", 0, idle_timeout=0.2, on_status=statuses.append) as listener:
        reader, silent = await push(listener.port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # we closed it
        await close_writer(silent)
        await until(lambda: listener.active_connections == 0)
    (drop,) = [s for s in statuses if s.state is LinkState.DISCONNECTED]
    assert "idle timeout" in (drop.error or "")


async def test_a_partial_frame_at_a_peers_disconnect_is_its_frame_error() -> None:
    async with ListenerSource("127.0.0.1", 0) as listener:
        _, writer = await push(listener.port, frame(1) + b"&&\r\n0101RIG-1\r\n0108 10")
        await close_writer(writer)
        events = await take(listener, 2)
    assert rig_of(events[0]) == b"0101RIG-1"
    error = events[1]
    assert isinstance(error, FrameError)
    assert error.kind == "truncated"
    assert error.source == tag(listener, writer)


async def test_garbage_and_a_100_mb_line_cost_bounded_memory() -> None:
    size = 100 * 1024 * 1024
    chunk = b"A" * (1024 * 1024)
    noise = os.urandom(2 * 1024 * 1024).replace(b"&", b"?")  # no '&&': one run of garbage
    tracemalloc.start()
    try:
        async with ListenerSource("127.0.0.1", 0) as listener:
            _, binary = await push(listener.port)
            _, flood = await push(listener.port, local_addr=loopback(0))
            seen: list[WITSFrame | FrameError] = []

            async def consume() -> None:
                async for event in listener:
                    seen.append(event)
                    if sum(isinstance(e, WITSFrame) for e in seen) == 2:
                        return

            consumer = asyncio.create_task(consume())
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            binary.write(noise + frame(1))
            flood.write(b"&&\r\n0101")
            for _ in range(size // len(chunk)):  # the same 1 MiB object: the sender allocates nothing
                flood.write(chunk)
                await flood.drain()
            flood.write(b"!!\r\n" + frame(2))
            await binary.drain()
            await flood.drain()
            async with asyncio.timeout(60):
                await consumer
            peak = tracemalloc.get_traced_memory()[1] - baseline
            for writer in (binary, flood):
                await close_writer(writer)
    finally:
        tracemalloc.stop()
    # 102 MB went through; the listener held a few frames' worth at most.
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    frames = [e for e in seen if isinstance(e, WITSFrame)]
    assert sorted(rig_of(f) for f in frames) == [b"0101RIG-1", b"0101RIG-2"]
    errors = [e for e in seen if isinstance(e, FrameError)]
    flood_errors = [e for e in errors if e.source == tag(listener, flood)]
    # The 100 MB line is reported as a line over max_line_length and skipped as it arrived (its
    # frame had nothing else: then empty).
    assert [e.kind for e in flood_errors] == ["line", "empty"]
    assert f"max_line_length={DEFAULT_MAX_LINE_LENGTH}" in flood_errors[0].reason
    garbage = [e for e in errors if e.source == tag(listener, binary)]
    assert garbage
    assert all(e.kind == "garbage" for e in garbage)
    assert all(len(e.excerpt) <= EXCERPT_BYTES for e in errors)


async def test_a_full_queue_pauses_reading_and_loses_nothing() -> None:
    count = 20_000
    payload = b"".join(encode_frame([("0101", "X" * 900), ("0108", float(n))]) for n in range(count))
    async with ListenerSource("127.0.0.1", 0, queue_size=4) as listener:
        _, writer = await push(listener.port)
        writer.write(payload)  # ~19 MB: more than the socket buffers hold
        # Nobody consumes: the queue fills, the listener stops reading, and the sender's buffer
        # stays full instead of the listener's memory growing.
        await until(lambda: writer.transport.get_write_buffer_size() > 0 and listener._queue.full())
        await asyncio.sleep(0.2)
        assert listener._queue.qsize() == 4
        assert writer.transport.get_write_buffer_size() > 0
        events = await take(listener, count, timeout=60)
        await writer.drain()
        await close_writer(writer)
    expected = [b"0108" + str(float(n)).removesuffix(".0").encode() for n in range(count)]
    assert [e.lines[1] for e in events] == expected


# Lifecycle --------------------------------------------------------------------------------------
async def test_aclose_closes_every_connection_and_ends_the_iteration() -> None:
    statuses: list[LinkStatus] = []
    listener = ListenerSource("127.0.0.1", 0, on_status=statuses.append)
    await listener.start()
    readers = [await push(listener.port, frame(i)) for i in range(3)]
    got: list[WITSFrame | FrameError] = []

    async def consume() -> None:
        async for event in listener:
            got.append(event)

    consumer = asyncio.create_task(consume())
    await until(lambda: len(got) == 3)
    await listener.aclose()
    async with asyncio.timeout(5):
        await consumer
        for reader, writer in readers:
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
            await close_writer(writer)
    assert listener.closed
    assert listener.active_connections == 0
    assert (statuses[0].source, statuses[0].state) == (listener.name, LinkState.CONNECTED)
    assert (statuses[-1].source, statuses[-1].state) == (listener.name, LinkState.CLOSED)
    assert sum(s.state is LinkState.CLOSED for s in statuses) == 4  # three peers and the listener
    await listener.aclose()  # idempotent
    assert [event async for event in listener] == []  # a closed listener's iteration just ends
    with pytest.raises(UsageError, match="closed"):
        await listener.start()


async def test_the_port_is_known_only_once_listening_and_a_busy_port_is_an_error() -> None:
    listener = ListenerSource("127.0.0.1", 0)
    with pytest.raises(UsageError, match="not listening yet"):
        _ = listener.port
    async with listener:
        assert listener.port > 0
        with pytest.raises(ConnectError, match="cannot listen"):
            async with ListenerSource("127.0.0.1", listener.port):
                pass


def test_bad_arguments_are_usage_errors() -> None:
    for kwargs, message in (
        ({"max_connections": 0}, "max_connections"),
        ({"queue_size": -1}, "queue_size"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"parser_options": {"max_frame_bytes": 0}}, "max_frame_bytes"),
        ({"parser_options": {"no_such_limit": 1}}, "parser_options"),
    ):
        with pytest.raises(UsageError, match=message):
            ListenerSource("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not a TCP port"):
        ListenerSource("127.0.0.1", 70000)
