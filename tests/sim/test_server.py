"""RigServer against real clients: sockets on 127.0.0.1 (port 0), a real pty, no mocks.

The frames a server sends are compared with what :class:`DrillingSimulator` makes for the same
seed: a live rig (``realtime=True``) sends a contiguous run of them starting at the current step, a
replaying one (``realtime=False``) the whole sequence from the start for every session.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import trustme

from witskit.errors import ConnectionLost, FrameError, TransportError, UsageError
from witskit.protocol import FrameParser, WITSDecoder, WITSFrame
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.sim.server import PASON_HEADER, Faults, RigServer
from witskit.simulator import DEFAULT_START, DrillingSimulator
from witskit.transport.base import LinkState, LinkStatus, SourceEvent
from witskit.transport.resilience import RetryPolicy
from witskit.transport.tcp import TCPSource

WAIT = 10.0  # upper bound for any one step; they normally take milliseconds
EOL = b"\r\n"


def reference(n: int, *, seed: int = 0, rig: int = 0, **options: object) -> list[bytes]:
    """The first ``n`` frames rig ``rig`` of a RigServer(seed=seed, ...) is made of."""
    sim = DrillingSimulator(seed + rig, well_id=f"WITSKIT-SIM-{rig + 1}", **options)  # type: ignore[arg-type]
    frames: list[bytes] = []
    for frame in sim.frames(None):
        frames.append(frame)
        if len(frames) >= n:
            return frames
    raise AssertionError("unreachable")


def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=None, backoff_factor=0.02, max_backoff=0.1, retry_on=(TransportError,))


def wire(frame: WITSFrame) -> bytes:
    """The bytes of a received frame as the server wrote them (the parser keeps '&&'...'!!')."""
    return frame.raw + EOL


@contextlib.asynccontextmanager
async def serving(**options: object) -> AsyncIterator[tuple[RigServer, int]]:
    server = RigServer(**options)  # type: ignore[arg-type]
    try:
        port = await server.serve_tcp("127.0.0.1", 0)
        yield server, port
    finally:
        await server.aclose()


async def read_all(port: int, *, send: bytes = b"") -> bytes:
    """Everything a server sends on one connection, until it closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if send:
            writer.write(send)
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def frames_of(data: bytes) -> tuple[list[WITSFrame], list[FrameError]]:
    parser = FrameParser()
    events = parser.feed(data) + parser.close()
    return (
        [e for e in events if isinstance(e, WITSFrame)],
        [e for e in events if isinstance(e, FrameError)],
    )


async def collect(
    source: TCPSource, until: Callable[[list[SourceEvent]], bool], timeout: float = WAIT
) -> list[SourceEvent]:
    """Events of ``source`` until ``until(events)`` holds; the source is closed afterwards."""
    events: list[SourceEvent] = []
    stream = source.events()

    async def run() -> None:
        async for event in stream:
            events.append(event)
            if until(events):
                return

    try:
        await asyncio.wait_for(run(), timeout)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.aclose()
    return events


# Pason emulation ---------------------------------------------------------------------------------
@pytest.mark.slow
async def test_pason_rig_keeps_streaming_to_a_client_that_sends_handshakes() -> None:
    loop = asyncio.get_running_loop()
    async with serving(rate=10, records=(1,), pason=True, pason_silence_timeout=2.0) as (server, port):
        source = TCPSource("127.0.0.1", port, handshake_interval=1.0, idle_timeout=5.0)
        arrivals: list[float] = []
        start = loop.time()

        def enough(events: list[SourceEvent]) -> bool:
            arrivals.append(loop.time())
            return loop.time() - start > 11.0

        events = await collect(source, enough, timeout=30.0)
    assert all(isinstance(e, WITSFrame) for e in events)
    assert source.connections == 1  # never dropped, never went quiet
    assert arrivals[-1] - arrivals[0] > 10.0  # well past the 2 s silence rule
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 1.5
    assert server.connections == 1


async def test_pason_rig_goes_quiet_without_handshakes_and_the_idle_timeout_reconnects() -> None:
    loop = asyncio.get_running_loop()
    said: list[str] = []
    statuses: list[tuple[LinkStatus, float]] = []
    arrivals: list[tuple[int, float]] = []
    async with serving(
        rate=20, records=(1,), pason=True, pason_silence_timeout=2.0, on_event=said.append
    ) as (_, port):
        source = TCPSource(
            "127.0.0.1",
            port,
            handshake=None,
            idle_timeout=1.0,
            retry=fast_retry(),
            on_status=lambda s: statuses.append((s, loop.time())),
        )

        def reconnected(events: list[SourceEvent]) -> bool:
            arrivals.append((source.connections, loop.time()))
            return source.connections == 2

        await collect(source, reconnected)
    connected_at = next(t for s, t in statuses if s.state is LinkState.CONNECTED)
    last_first = max(t for n, t in arrivals if n == 1)
    # The rig talked for its 2 s of grace, then said nothing more on that link.
    assert 1.5 < last_first - connected_at < 4.0
    drops = [s for s, _ in statuses if s.state is LinkState.DISCONNECTED]
    assert drops
    assert drops[0].error is not None
    assert "idle timeout" in drops[0].error
    assert [s.state for s, _ in statuses].count(LinkState.CONNECTED) == 2
    assert any("muted (Pason)" in line for line in said)


def unheader(frame: WITSFrame) -> bytes:
    """The simulator's bytes of a frame received from a Pason rig."""
    data = wire(frame)
    assert data.startswith(b"&&\r\n" + PASON_HEADER + EOL)
    return data[:4] + data[4 + len(PASON_HEADER) + 2 :]


async def read_until_quiet(
    reader: asyncio.StreamReader, parser: FrameParser, quiet: float
) -> list[WITSFrame]:
    """Frames until nothing has come for ``quiet`` seconds (bounded by WAIT)."""
    frames: list[WITSFrame] = []
    async with asyncio.timeout(WAIT):
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), quiet)
            except TimeoutError:
                return frames
            assert chunk, "the rig hung up"
            frames.extend(e for e in parser.feed(chunk) if isinstance(e, WITSFrame))


async def test_a_muted_live_pason_rig_resumes_with_current_data_when_the_client_speaks() -> None:
    async with serving(rate=20, records=(1,), pason=True, pason_silence_timeout=0.5) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = FrameParser()
        try:
            before = await read_until_quiet(reader, parser, 0.5)
            await asyncio.sleep(0.5)  # muted: what the rig does now is never sent
            writer.write(DEFAULT_HANDSHAKE)
            await writer.drain()
            after: list[WITSFrame] = []
            async with asyncio.timeout(WAIT):
                while len(after) < 3:
                    chunk = await reader.read(65536)
                    assert chunk
                    after.extend(e for e in parser.feed(chunk) if isinstance(e, WITSFrame))
        finally:
            writer.close()
            await writer.wait_closed()
    index = {f: i for i, f in enumerate(reference(5000, rate=20, records=(1,)))}
    got_before = [index[unheader(f)] for f in before]
    got_after = [index[unheader(f)] for f in after]
    assert got_before == list(range(got_before[0], got_before[0] + len(before)))
    assert got_after[:3] == list(range(got_after[0], got_after[0] + 3))
    assert got_after[0] > got_before[-1] + 5  # the muted second was skipped, not queued


async def test_a_muted_replaying_pason_rig_waits_and_loses_nothing() -> None:
    # A stall after 5 frames makes the client's silence outlast the 0.3 s grace.
    faults = Faults(stall=0.5, stall_every=5)
    async with serving(
        records=(1,), pason=True, pason_silence_timeout=0.3, realtime=False, frames=9, faults=faults
    ) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = FrameParser()
        try:
            before = await read_until_quiet(reader, parser, 1.0)
            assert len(before) == 5  # the stall, then silence: muted
            writer.write(DEFAULT_HANDSHAKE)
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), WAIT)  # everything else, then the close
        finally:
            writer.close()
            await writer.wait_closed()
    frames = before + [e for e in parser.feed(rest) + parser.close() if isinstance(e, WITSFrame)]
    assert [unheader(f) for f in frames] == reference(9, records=(1,))


async def test_pason_header_opens_every_frame_and_decodes_as_vendor_text() -> None:
    async with serving(pason=True, realtime=False, frames=12, seed=4) as (_, port):
        data = await read_all(port)
    frames, errors = frames_of(data)
    assert errors == []
    expected = reference(len(frames), seed=4)
    assert len(frames) >= 12
    decoder = WITSDecoder()
    for frame, original in zip(frames, expected, strict=True):
        assert frame.lines[0] == b"1984PASON/EDR"
        assert wire(frame) == original[:4] + b"1984PASON/EDR\r\n" + original[4:]
        decoded = decoder.decode(frame)
        assert decoded.errors == []
        assert decoded.codes[0] == "1984"
        assert decoded.values[0] == "PASON/EDR"
        assert decoded.symbol("1984").name == "VEN1"
        # The frame time still comes from the record's DATE/TIME, not from the vendor line.
        plain = decoder.decode_frame(original)
        assert decoded.timestamp == plain.timestamp
    assert decoder.decode(frames[0]).timestamp == DEFAULT_START
    assert decoder.decode(frames[-1]).timestamp >= DEFAULT_START + timedelta(seconds=11)


# Send-and-receive --------------------------------------------------------------------------------
@pytest.mark.parametrize("packets", [1, 8])
async def test_send_and_receive_answers_each_valid_packet(packets: int) -> None:
    async with serving(send_and_receive=True, sar_packets=packets, realtime=False) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = FrameParser()
        received: list[WITSFrame] = []

        async def read_for(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    while chunk := await reader.read(65536):
                        received.extend(e for e in parser.feed(chunk) if isinstance(e, WITSFrame))

        async def read_frames(total: int) -> None:
            async with asyncio.timeout(WAIT):
                while len(received) < total:
                    chunk = await reader.read(65536)
                    assert chunk, "the rig hung up"
                    received.extend(e for e in parser.feed(chunk) if isinstance(e, WITSFrame))

        try:
            await read_for(0.3)
            assert received == []  # nothing is sent unasked
            writer.write(b"noise that is not a packet\r\n!!\r\n")
            await read_for(0.3)
            assert received == []  # and garbage is not a request
            for asked in range(1, 4):
                writer.write(DEFAULT_HANDSHAKE)
                await read_frames(asked * packets)
            await read_for(0.3)
        finally:
            writer.close()
            await writer.wait_closed()
    assert len(received) == 3 * packets  # exactly one answer per packet
    assert [wire(f) for f in received] == reference(3 * packets)
    assert server.frames_sent == 3 * packets


async def test_send_and_receive_with_a_tcp_source_in_request_mode() -> None:
    async with serving(send_and_receive=True, sar_packets=8, rate=5) as (_, port):
        source = TCPSource("127.0.0.1", port, request=DEFAULT_HANDSHAKE, request_interval=0.2)
        events = await collect(source, lambda events: len(events) >= 16)
    assert all(isinstance(e, WITSFrame) for e in events)
    # Answers from a live rig: contiguous runs of its frames, starting at the current step.
    ref = {f: i for i, f in enumerate(reference(2000, rate=5))}
    indexes = [ref[wire(e)] for e in events if isinstance(e, WITSFrame)]
    assert indexes[1:8] == list(range(indexes[0] + 1, indexes[0] + 8))


# Faults ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("realtime", [True, False], ids=["live", "replay"])
async def test_drop_every_cuts_a_frame_and_the_client_reconnects(realtime: bool) -> None:
    rate = 50.0
    async with serving(rate=rate, records=(1,), realtime=realtime, faults=Faults(drop_every=5)) as (
        server,
        port,
    ):
        source = TCPSource("127.0.0.1", port, retry=fast_retry(), handshake=None)
        events = await collect(source, lambda ev: sum(isinstance(e, FrameError) for e in ev) == 3)
        assert server.connections >= 3
    ref = reference(5000, rate=rate, records=(1,))
    index = {f: i for i, f in enumerate(ref)}
    # Per connection: 5 whole frames, then the first half of the next one as a FrameError.
    runs: list[list[WITSFrame]] = [[]]
    cuts: list[FrameError] = []
    for event in events:
        if isinstance(event, FrameError):
            cuts.append(event)
            runs.append([])
        else:
            runs[-1].append(event)
    assert source.connections >= 3
    for run, cut in zip(runs, cuts, strict=False):
        assert cut.kind == "truncated"
        assert len(run) == 5
        first = index[wire(run[0])]
        # Every frame the server sent on the connection arrived, in order, none missing.
        assert [wire(f) for f in run] == ref[first : first + 5]
        assert ref[first + 5].startswith(cut.excerpt)
        if not realtime:
            assert first == 0  # a replaying rig starts every session from the beginning


async def test_garbage_between_frames_is_reported_and_every_good_frame_arrives() -> None:
    async with serving(seed=3, realtime=False, frames=40, faults=Faults(garbage_rate=0.5)) as (_, port):
        source = TCPSource("127.0.0.1", port, handshake=None, reconnect=False)
        events: list[SourceEvent] = []

        async def run() -> None:
            async for event in source:
                events.append(event)

        # The rig closes the link after its 40 steps; without reconnecting, that ends the stream.
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(run(), WAIT)
        await source.aclose()
    frames = [e for e in events if isinstance(e, WITSFrame)]
    errors = [e for e in events if isinstance(e, FrameError)]
    assert errors
    assert {e.kind for e in errors} == {"garbage"}
    expected = reference(len(frames), seed=3)
    assert [wire(f) for f in frames] == expected
    assert len(frames) >= 40


async def test_garbage_is_the_same_for_the_same_seed() -> None:
    async with serving(seed=9, realtime=False, frames=20, faults=Faults(garbage_rate=0.3)) as (_, port):
        first = await read_all(port)
    async with serving(seed=9, realtime=False, frames=20, faults=Faults(garbage_rate=0.3)) as (_, port):
        again = await read_all(port)
    assert first == again
    assert frames_of(first)[1]


async def test_split_writes_deliver_byte_identical_frames() -> None:
    async with serving(realtime=False, frames=8, faults=Faults(split_writes=True)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(WAIT):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        finally:
            writer.close()
            await writer.wait_closed()
    data = b"".join(chunks)
    frames, errors = frames_of(data)
    assert errors == []
    assert data == b"".join(reference(len(frames)))
    assert len(chunks) > len(frames)  # the frames really came in pieces


async def test_stall_pauses_after_every_n_frames() -> None:
    loop = asyncio.get_running_loop()
    faults = Faults(stall=0.3, stall_every=3)
    async with serving(records=(1,), realtime=False, frames=7, faults=faults) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = FrameParser()
        arrivals: list[float] = []
        try:
            async with asyncio.timeout(WAIT):
                while chunk := await reader.read(65536):
                    for event in parser.feed(chunk):
                        assert isinstance(event, WITSFrame)
                        arrivals.append(loop.time())
        finally:
            writer.close()
            await writer.wait_closed()
    assert len(arrivals) == 7
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps[2] >= 0.25  # after frame 3
    assert gaps[5] >= 0.25  # after frame 6


# Serving modes -----------------------------------------------------------------------------------
async def test_three_rigs_are_three_distinct_streams_on_three_ports() -> None:
    async with serving(rigs=3, realtime=False, frames=2, records=(1,), seed=5) as (server, port):
        assert server.ports[0] == port
        assert len(set(server.ports)) == 3
        assert server.addresses == [f"tcp://127.0.0.1:{p}" for p in server.ports]
        streams = await asyncio.gather(*(read_all(p) for p in server.ports))
    for rig, data in enumerate(streams):
        assert data == b"".join(reference(2, seed=5, rig=rig, records=(1,)))
        assert f"0101WITSKIT-SIM-{rig + 1}\r\n".encode() in data
    assert len(set(streams)) == 3


async def test_rigs_listen_on_consecutive_ports_from_the_given_one() -> None:
    for _ in range(10):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65000:
            continue
        server = RigServer(rigs=2, realtime=False, frames=1)
        try:
            try:
                assert await server.serve_tcp("127.0.0.1", base) == base
            except TransportError:
                continue  # base + 1 happened to be taken: try elsewhere
            assert server.ports == [base, base + 1]
            return
        finally:
            await server.aclose()
    pytest.skip("no two consecutive free ports found")


async def test_a_port_in_use_is_a_clear_error_and_nothing_is_left_listening() -> None:
    async with serving() as (_, port):
        other = RigServer()
        with pytest.raises(TransportError, match="cannot listen"):
            await other.serve_tcp("127.0.0.1", port)
        assert other.ports == []
        await other.aclose()


async def test_concurrent_clients_of_one_rig_each_get_the_whole_stream() -> None:
    async with serving(realtime=False, frames=5) as (server, port):
        first, second = await asyncio.gather(read_all(port), read_all(port))
    assert first == second == b"".join(reference(len(frames_of(first)[0])))
    assert server.connections == 2


async def test_tls_listener(tmp_path: Path) -> None:
    from witskit.transport.tls import client_context, server_context

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = RigServer(realtime=False, records=(1,))
    try:
        port = await server.serve_tcp("127.0.0.1", 0, server_context(tmp_path / "server.pem"))
        assert server.addresses == [f"tls://127.0.0.1:{port}"]
        source = TCPSource("127.0.0.1", port, ssl_context=client_context(tmp_path / "ca.pem"))
        events = await collect(source, lambda ev: len(ev) >= 3)
    finally:
        await server.aclose()
    assert [wire(e) for e in events if isinstance(e, WITSFrame)] == reference(3, records=(1,))


async def test_push_into_a_listener_one_connection_per_rig() -> None:
    from witskit.transport.listener import ListenerSource

    async with ListenerSource("127.0.0.1", 0) as listener:
        server = RigServer(rigs=2, realtime=False, frames=3, records=(1,))
        try:
            await server.push(f"tcp://127.0.0.1:{listener.port}")
            events: list[SourceEvent] = []
            async with asyncio.timeout(WAIT):
                async for event in listener:
                    events.append(event)
                    if len(events) == 6:
                        break
            await asyncio.wait_for(server.wait_finished(), WAIT)
        finally:
            await server.aclose()
    frames = [e for e in events if isinstance(e, WITSFrame)]
    assert len(frames) == 6
    # Both rigs push from 127.0.0.1, as two rigs behind one NAT address: one source (named by the
    # address), each connection still parsed on its own, so every frame arrives whole.
    assert {f.source for f in frames} == {f"{listener.name}/127.0.0.1"}
    by_rig: dict[bytes, list[bytes]] = {}
    for frame in frames:
        by_rig.setdefault(frame.lines[0], []).append(wire(frame))
    assert sorted(by_rig.values()) == sorted(reference(3, rig=r, records=(1,)) for r in range(2))


async def test_push_retries_until_the_listener_appears() -> None:
    from witskit.transport.listener import ListenerSource

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    said: list[str] = []
    failed = asyncio.Event()

    def on_event(line: str) -> None:
        said.append(line)
        if "cannot connect" in line:
            failed.set()

    server = RigServer(realtime=False, frames=2, records=(1,), reconnect_delay=0.05, on_event=on_event)
    try:
        await server.push(f"tcp://127.0.0.1:{port}")
        await asyncio.wait_for(failed.wait(), WAIT)
        async with ListenerSource("127.0.0.1", port) as listener:
            frames: list[WITSFrame] = []
            async with asyncio.timeout(WAIT):
                async for event in listener:
                    if isinstance(event, WITSFrame):
                        frames.append(event)
                    if len(frames) == 2:
                        break
        await asyncio.wait_for(server.wait_finished(), WAIT)
    finally:
        await server.aclose()
    assert [wire(f) for f in frames] == reference(2, records=(1,))
    assert any("retrying in" in line for line in said)


def test_push_urls_are_checked() -> None:
    async def push(url: str) -> None:
        async with RigServer() as server:
            await server.push(url)

    for url in ("udp://127.0.0.1:5000", "tcp://127.0.0.1", "tcp://:5000", "tcp://h:5000?x=1"):
        with pytest.raises(UsageError):
            asyncio.run(push(url))


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are posix")
async def test_serial_to_a_real_pty() -> None:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    server = RigServer(realtime=False, frames=6, records=(1,), faults=Faults(drop_every=2))
    received = bytearray()
    try:
        await server.serve_serial(os.ttyname(slave))
        expected_frames = reference(6, records=(1,))
        # On a line that cannot be closed, a drop cuts the frame and the stream goes on.
        expected = b"".join(
            (f[: len(f) // 2] if i in (2, 4) else b"") + f for i, f in enumerate(expected_frames)
        )
        async with asyncio.timeout(WAIT):
            while len(received) < len(expected):
                try:
                    received += os.read(master, 65536)
                except BlockingIOError:
                    await asyncio.sleep(0.005)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    await asyncio.sleep(0.005)
        await asyncio.wait_for(server.wait_finished(), WAIT)
    finally:
        await server.aclose()
        os.close(master)
        os.close(slave)
    assert bytes(received) == expected
    frames, errors = frames_of(bytes(received))
    assert len(frames) == 6
    assert [e.kind for e in errors] == ["cut", "cut"]  # each cut short by the next '&&'


async def test_serial_path_that_is_not_a_tty(tmp_path: Path) -> None:
    from witskit.errors import SerialPortError

    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    async with RigServer() as server:
        with pytest.raises(SerialPortError, match="not a serial device"):
            await server.serve_serial(str(plain))
        with pytest.raises(SerialPortError, match="cannot open"):
            await server.serve_serial(str(tmp_path / "missing"))


# Lifecycle ---------------------------------------------------------------------------------------
async def test_aclose_ends_sessions_even_with_a_client_that_does_not_read() -> None:
    server = RigServer(realtime=False)  # as fast as the socket takes it: the buffers fill up
    port = await server.serve_tcp("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(reader.readexactly(1), WAIT)
        await asyncio.sleep(0.2)
        await asyncio.wait_for(server.aclose(), WAIT)
        # The link is gone: the client reads what was buffered, then the end (or a reset).
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(WAIT):
                while await reader.read(1 << 20):
                    pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    with pytest.raises(UsageError, match="closed"):
        await server.serve_tcp("127.0.0.1", 0)
    await server.aclose()  # idempotent


def test_bad_settings_are_usage_errors() -> None:
    for faults in (
        {"drop_every": 0},
        {"garbage_rate": 1.5},
        {"garbage_rate": -0.1},
        {"stall": 0},
        {"stall_every": 0},
    ):
        with pytest.raises(UsageError):
            Faults(**faults)
    for options in (
        {"rigs": 0},
        {"frames": 0},
        {"sar_packets": 0},
        {"pason_silence_timeout": 0},
        {"rate": 0},
        {"records": (3,)},
    ):
        with pytest.raises(UsageError):
            RigServer(**options)
    assert not Faults().active
    assert Faults(split_writes=True).active


async def test_ssl_errors_from_a_plain_client_do_not_break_the_server(tmp_path: Path) -> None:
    from witskit.transport.tls import server_context

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "s.pem"))
    async with RigServer(realtime=False, frames=1) as server:
        port = await server.serve_tcp("127.0.0.1", 0, server_context(tmp_path / "s.pem"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"&&\r\n0111-9999\r\n!!\r\n")  # plain text to a TLS port
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), WAIT)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        context = ssl.create_default_context(cafile=None)
        ca.configure_trust(context)
        data = await asyncio.wait_for(_read_tls(port, context), WAIT)
    assert frames_of(data)[0]


async def _read_tls(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
