"""The WITS relay sinks in a real pipeline: real sockets on 127.0.0.1, a real pty for serial output.

Each test feeds a pipeline from a simulated rig (``sim://``) or a hand-made frame, connects real
consumers and checks the bytes they read: the EDR's own bytes by default, filtered, remapped,
converted or re-framed per sink URL; slow, dead, hostile and over-the-cap consumers never slow
ingest or the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.waiting import until
from witskit.errors import UsageError
from witskit.pipeline import MemorySink, Pipeline, open_sink
from witskit.pipeline.relay import RelaySink
from witskit.pipeline.sinks import sink_kind
from witskit.protocol import FrameParser, WITSDecoder, WITSFrame
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.storage.spool import Spool
from witskit.transport.urls import open_source

WAIT = 10.0
PASON_LF = b"&&\n1984PASON/EDR\n01083650.4\n0110-9999\n0112TEXT\n!!"
RECORD_2 = b"&&\r\n02083650.4\r\n0210512.5\r\n!!"


def decoded(raw: bytes, source: str = "rig-1", *, metric: bool = False):  # type: ignore[no-untyped-def]
    return WITSDecoder(metric).decode_frame(raw, source=source)


def relay(url: str) -> RelaySink:
    sink = open_sink(url)
    assert isinstance(sink, RelaySink)
    return sink


# What a consumer sees (the view) ----------------------------------------------------------------
def test_by_default_a_consumer_gets_the_edrs_own_bytes() -> None:
    view = relay("wits-serve://127.0.0.1:0").view
    assert view.render(decoded(PASON_LF)) == (b"01", PASON_LF + b"\n")
    assert view.render(decoded(RECORD_2)) == (b"02", RECORD_2 + b"\r\n")


def test_records_keep_whole_frames_unchanged_and_skip_the_others() -> None:
    view = relay("wits-serve://127.0.0.1:0?records=1").view
    assert view.render(decoded(PASON_LF)) == (b"01", PASON_LF + b"\n")
    assert view.render(decoded(RECORD_2)) is None
    assert view.filtered == 1


def test_codes_and_remap_keep_the_vendor_line_and_the_values_text() -> None:
    view = relay("wits-serve://127.0.0.1:0?codes=0108,0112&remap=0112:0199").view
    assert view.render(decoded(PASON_LF)) == (b"01", b"&&\n1984PASON/EDR\n01083650.4\n0199TEXT\n!!\n")


def test_crlf_reframes_every_frame() -> None:
    view = relay("wits-serve://127.0.0.1:0?crlf=1").view
    assert view.render(decoded(PASON_LF)) == (b"01", PASON_LF.replace(b"\n", b"\r\n") + b"\r\n")


def test_units_convert_numbers_and_leave_nulls_and_text_as_sent() -> None:
    view = relay("wits-serve://127.0.0.1:0?units=metric").view
    _, data = view.render(decoded(PASON_LF)) or (b"", b"")
    assert data == b"&&\n1984PASON/EDR\n01081112.64\n0110-9999\n0112TEXT\n!!\n"  # 3650.4 ft in m
    # A metric feed asked for FPS: back to feet, to the decimals sent.
    back = relay("wits-serve://127.0.0.1:0?units=fps").view
    _, data = back.render(decoded(b"&&\n01081112.64\n!!", metric=True)) or (b"", b"")
    assert data == b"&&\n01083650.39\n!!\n"
    # Already in the wanted system: the EDR's bytes.
    assert view.render(decoded(b"&&\n01081112.64\n!!", metric=True)) == (b"01", b"&&\n01081112.64\n!!\n")


def test_max_rate_skips_frames_of_a_record_sent_too_recently() -> None:
    view = relay("wits-serve://127.0.0.1:0?max_rate=1").view
    assert view.render(decoded(PASON_LF)) is not None
    assert view.render(decoded(PASON_LF)) is None  # the same record within a second
    assert view.render(decoded(RECORD_2)) is not None  # another record has its own clock
    assert view.render(decoded(PASON_LF, source="rig-2")) is not None  # and another source
    assert view.rate_limited == 1


def test_source_relays_one_source_only() -> None:
    view = relay("wits-serve://127.0.0.1:0?source=rig-2").view
    assert view.render(decoded(PASON_LF, source="rig-1")) is None
    assert view.render(decoded(PASON_LF, source="rig-2")) is not None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("wits-serve://127.0.0.1:0?records=1,x", "records='1,x' is not a comma-separated list"),
        ("wits-serve://127.0.0.1:0?codes=108", "codes='108' is not a comma-separated list of 4-digit"),
        ("wits-serve://127.0.0.1:0?remap=0141-0108", "remap='0141-0108' is not FROM:TO pairs"),
        ("wits-serve://127.0.0.1:0?units=imperial", "units='imperial' is not one of METRIC, FPS"),
        ("wits-serve://127.0.0.1:0?max_rate=0", "max_rate='0' is not a positive number"),
        ("wits-serve://127.0.0.1:0?allow=10.0.0.300", "allowlist entry '10.0.0.300'"),
        ("wits-serve://127.0.0.1:0?max_consumers=-1", "max_consumers='-1' is not a positive integer"),
        ("wits-serve://127.0.0.1:0?ca=x.pem", "unknown option 'ca' for wits-serve://"),
        ("wits-serve://127.0.0.1:0?mode=poll", "mode='poll' is not one of STREAM, REQUEST"),
        ("wits-serve://127.0.0.1", "missing port"),
        ("wits-push://:10002", "missing host"),
        ("serial://?baud=9600", "names no serial port"),
        ("serial:///dev/ttyS1?baud=fast", "baud='fast' is not a positive integer"),
    ],
)
def test_a_bad_relay_url_is_one_line_naming_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        sink_kind(url)  # checked before anything opens: a pipeline file is checked whole
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


# A relay in a pipeline ----------------------------------------------------------------------------
async def read_frames(reader: asyncio.StreamReader, count: int) -> list[WITSFrame]:
    parser = FrameParser(source="consumer")
    frames: list[WITSFrame] = []
    async with asyncio.timeout(WAIT):
        while len(frames) < count:
            chunk = await reader.read(65536)
            assert chunk, "the relay closed the connection"
            frames += [e for e in parser.feed(chunk) if isinstance(e, WITSFrame)]
    return frames


@contextlib.asynccontextmanager
async def running(pipe: Pipeline) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(pipe.run())
    try:
        yield task
    finally:
        pipe.stop()
        await asyncio.wait_for(task, WAIT)


def sim_pipeline(tmp_path: Path, *sinks: object, rate: float = 50.0, rigs: int = 1) -> Pipeline:
    sources = [open_source(f"sim://rig-{i + 1}?rate={rate}&records=1,2") for i in range(rigs)]
    spool = Spool(tmp_path / "spool", fsync="interval", fsync_interval_ms=20)
    return Pipeline(sources, list(sinks), spool)  # type: ignore[arg-type]


async def test_consumers_get_live_frames_while_the_store_gets_everything(tmp_path: Path) -> None:
    sink = relay("wits-serve://127.0.0.1:0?records=1")
    store = MemorySink()
    pipe = sim_pipeline(tmp_path, sink, store)
    async with running(pipe):
        await until(lambda: sink.outlet._server is not None)
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        second = await asyncio.open_connection("127.0.0.1", sink.port)
        frames = await read_frames(reader, 10)
        others = await read_frames(second[0], 10)
        assert {f.lines[0][:2] for f in frames + others} == {b"01"}
        assert sink.stats.consumers == 2
        assert pipe.sink_counters()[sink.name]["connects"] == 2  # what the metrics read
        writer.close()
        second[1].close()
        await until(lambda: sink.stats.consumers == 0)
    assert store.frames  # the durable sink is not affected by the relay
    assert pipe.spool.acked_seq == pipe.spool.last_seq  # the relay never holds the spool


async def test_a_relay_alone_lets_the_spool_go(tmp_path: Path) -> None:
    sink = relay("wits-serve://127.0.0.1:0")
    pipe = sim_pipeline(tmp_path, sink, rate=100)
    async with running(pipe):
        await until(lambda: pipe.stats.frames_received > 20)
        await until(lambda: pipe.spool.acked_seq > 20)


async def test_a_consumer_that_never_reads_costs_a_bounded_queue_and_slows_nobody(tmp_path: Path) -> None:
    sink = relay("wits-serve://127.0.0.1:0?queue_size=8")
    pipe = sim_pipeline(tmp_path, sink, rate=2000)
    async with running(pipe):
        await until(lambda: sink.outlet._server is not None)
        # A consumer with a tiny receive buffer that never reads: its socket fills, then its queue.
        dead = await asyncio.open_connection("127.0.0.1", sink.port, limit=1024)
        dead[1].transport.pause_reading()
        live_reader, live_writer = await asyncio.open_connection("127.0.0.1", sink.port)
        await until(lambda: sink.stats.frames_dropped > 100, timeout=WAIT * 3)
        received_before = pipe.stats.frames_received
        frames = await read_frames(live_reader, 200)  # the live consumer keeps up meanwhile
        assert len(frames) >= 200
        await until(lambda: pipe.stats.frames_received > received_before + 100)  # ingest goes on
        assert all(len(o._queue) <= 8 for o in sink.outlet._outlets)  # memory: 8 frames a consumer
        for w in (dead[1], live_writer):
            w.close()


async def test_garbage_from_a_consumer_is_counted_and_a_handshake_is_a_packet(tmp_path: Path) -> None:
    sink = relay("wits-serve://127.0.0.1:0")
    pipe = sim_pipeline(tmp_path, sink, rate=20)
    async with running(pipe):
        await sink.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        writer.write(b"hello?\r\n" + DEFAULT_HANDSHAKE)  # a little noise, then a Pason handshake
        await read_frames(reader, 3)
        await until(lambda: sink.stats.packets_received == 1 and sink.stats.garbage_received == 1)
        assert pipe.stats.frame_errors == 0  # nothing of it reaches ingest
        writer.close()


async def test_a_consumer_that_floods_garbage_is_disconnected_and_the_others_go_on(tmp_path: Path) -> None:
    from witskit.transport.relay import MAX_GARBAGE_RUNS

    sink = relay("wits-serve://127.0.0.1:0")
    pipe = sim_pipeline(tmp_path, sink, rate=20)
    async with running(pipe):
        await sink.start()
        good_reader, good_writer = await asyncio.open_connection("127.0.0.1", sink.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        with contextlib.suppress(ConnectionError):
            writer.write(os.urandom(1 << 20).replace(b"&", b"?"))  # 1 MB that is not WITS
            await writer.drain()
        async with asyncio.timeout(WAIT):
            while await reader.read(65536):  # the relay closes it
                pass
        assert sink.stats.garbage_received == MAX_GARBAGE_RUNS
        await read_frames(good_reader, 3)  # the other consumer is served all along
        received = pipe.stats.frames_received
        await until(lambda: pipe.stats.frames_received > received)  # and ingest goes on
        writer.close()
        good_writer.close()


async def test_request_mode_answers_each_packet_with_the_latest_of_each_record(tmp_path: Path) -> None:
    sink = relay("wits-serve://127.0.0.1:0?mode=request&records=1")
    pipe = sim_pipeline(tmp_path, sink, rate=20)
    async with running(pipe):
        await until(lambda: sink.outlet._server is not None)
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        await until(lambda: pipe.stats.frames_received >= 4)
        with pytest.raises(TimeoutError):  # nothing unasked, as a send-and-receive EDR
            await asyncio.wait_for(reader.read(1), 0.3)
        assert len(sink.view.latest()) == 1  # one frame per source and record seen so far
        writer.write(DEFAULT_HANDSHAKE + DEFAULT_HANDSHAKE)  # two packets: two answers
        frames = await read_frames(reader, 2)
        assert [f.lines[0][:2] for f in frames] == [b"01", b"01"]
        assert sink.stats.packets_received == 2
        writer.close()


async def test_connections_over_the_cap_and_outside_the_allowlist_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = relay("wits-serve://127.0.0.1:0?max_consumers=2")
    fenced = relay("wits-serve://127.0.0.1:0?allow=192.0.2.0/24")
    pipe = sim_pipeline(tmp_path, sink, fenced, rate=20)
    async with running(pipe):
        await until(lambda: sink.outlet._server is not None and fenced.outlet._server is not None)
        kept = [await asyncio.open_connection("127.0.0.1", sink.port) for _ in range(2)]
        await until(lambda: sink.stats.consumers == 2)
        floods = [await asyncio.open_connection("127.0.0.1", sink.port) for _ in range(50)]
        for reader, _ in floods:
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed at once, unread
        assert sink.stats.refused == 50
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1  # a flood is one log line (then one per 30 s), not one per attempt
        outsider = await asyncio.open_connection("127.0.0.1", fenced.port)
        assert await asyncio.wait_for(outsider[0].read(), WAIT) == b""
        assert fenced.stats.refused == 1
        await read_frames(kept[0][0], 2)  # the consumers inside the cap are served all along
        for _, w in [*kept, *floods, outsider]:
            w.close()


async def test_wits_push_connects_out_and_reconnects(tmp_path: Path) -> None:
    from support.edr import fast_retry

    got: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def consumer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await got.put((reader, writer))

    server = await asyncio.start_server(consumer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = RelaySink(f"wits-push://127.0.0.1:{port}", retry=fast_retry())
    pipe = sim_pipeline(tmp_path, sink, rate=50)
    try:
        async with running(pipe):
            reader, writer = await asyncio.wait_for(got.get(), WAIT)
            await read_frames(reader, 3)
            writer.transport.abort()  # the consumer drops: the relay connects again
            reader, writer = await asyncio.wait_for(got.get(), WAIT)
            await read_frames(reader, 3)
            assert sink.stats.connects == 2
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_serial_output_writes_to_a_real_pty(tmp_path: Path) -> None:
    master, slave = os.openpty()
    device = os.ttyname(slave)
    os.close(slave)
    os.set_blocking(master, False)
    sink = relay(f"serial://{device}?baud=9600&records=1")
    pipe = sim_pipeline(tmp_path, sink, rate=50)
    received = bytearray()
    try:
        async with running(pipe):
            async with asyncio.timeout(WAIT):
                while received.count(b"!!") < 3:
                    try:
                        received += os.read(master, 4096)
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                    except OSError as exc:  # EIO until the relay has the slave side open
                        if exc.errno != errno.EIO:
                            raise
                        await asyncio.sleep(0.01)
    finally:
        os.close(master)
    parser = FrameParser(source="pty")
    frames = [e for e in parser.feed(bytes(received)) if isinstance(e, WITSFrame)]
    assert frames
    assert {f.lines[0][:2] for f in frames} == {b"01"}


async def test_a_port_in_use_fails_the_start_before_any_source_is_read(tmp_path: Path) -> None:
    from witskit.errors import ConnectError

    first = relay("wits-serve://127.0.0.1:0")
    await first.start()
    try:
        second = relay(f"wits-serve://127.0.0.1:{first.port}")
        pipe = sim_pipeline(tmp_path, second)
        with pytest.raises(ConnectError, match="cannot listen"):
            await pipe.run()
        assert pipe.stats.frames_received == 0
    finally:
        await first.aclose()


async def test_a_consumer_that_closes_its_sending_side_still_gets_frames(tmp_path: Path) -> None:
    sink = relay("wits-serve://127.0.0.1:0")
    pipe = sim_pipeline(tmp_path, sink, rate=50)
    async with running(pipe):
        await sink.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        writer.write_eof()  # as `nc relay 10002 < /dev/null` does
        await read_frames(reader, 5)
        assert sink.stats.consumers == 1
        writer.close()
