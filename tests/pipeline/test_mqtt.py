"""The MQTT sink against a real Mosquitto of the test's own (``support.mosquitto``), never the shared one.

The broker is stopped for 20 s mid-stream and started again on the same port: every frame the
pipeline received reaches a subscriber (counted by the rig's sequence numbers, item 0104), because
the spool is acknowledged only after PUBACK. A subscriber that never reads does not slow ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from support.mosquitto import Mosquitto
from support.waiting import until
from witskit.errors import UsageError
from witskit.pipeline import Pipeline, open_sink
from witskit.pipeline.mqtt import FRAME_SCHEMA, MQTTSink, frame_message, topic_level
from witskit.pipeline.sinks import sink_kind
from witskit.protocol import DecodedFrame, WITSDecoder
from witskit.storage.spool import Spool
from witskit.transport.urls import open_source

OUTAGE = 20.0  # seconds the broker is down mid-stream, as the issue asks


def test_the_payload_is_the_documented_schema() -> None:
    frame = WITSDecoder().decode_frame(
        b"&&\r\n0101RIG-7\r\n01083650.4\r\n0113-9999\r\n!!\r\n", source="rig-7"
    )
    message = frame_message(frame)
    assert message["schema"] == FRAME_SCHEMA
    assert message["source"] == "rig-7"
    assert message["record"] == 1
    assert message["values"] == {"WID": "RIG-7", "DBTM": 3650.4, "ROPA": None}
    assert message["units"]["DBTM"] == "F"
    assert message["codes"] == {"WID": "0101", "DBTM": "0108", "ROPA": "0113"}
    assert message["time"] == frame.timestamp.isoformat()
    assert json.loads(json.dumps(message)) == message


def test_source_names_become_one_topic_level() -> None:
    assert topic_level("tcp-listen://0.0.0.0:10001/192.0.2.7") == "tcp-listen:__0.0.0.0:10001_192.0.2.7"
    assert topic_level("rig+#") == "rig__"
    assert topic_level(None) == "_"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mqtt://127.0.0.1:1883", "names no topic prefix"),
        ("mqtt://127.0.0.1:1883/rigs/#", "has a wildcard"),
        ("mqtt://127.0.0.1:1883/rigs?qos=0", "qos='0' is not one of 1, 2"),
        ("mqtt://127.0.0.1:1883/rigs?ca=ca.pem", "option 'ca' needs mqtts://"),
        ("mqtt://:1883/rigs", "missing broker host"),
        ("mqtt://127.0.0.1:1883/rigs?retain=1", "unknown option 'retain'"),
    ],
)
def test_a_bad_mqtt_url_is_one_line(url: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        sink_kind(url)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_password_is_never_shown() -> None:
    sink = open_sink("mqtt://rig:s3cret@127.0.0.1:1883/rigs")
    assert isinstance(sink, MQTTSink)
    assert "s3cret" not in sink.name
    with pytest.raises(UsageError) as caught:
        sink_kind("mqtt://rig:s3cret@127.0.0.1:1883/rigs?qos=5")
    assert "s3cret" not in str(caught.value)


# Against a broker ------------------------------------------------------------------------------
class Subscriber:
    """A persistent-session QoS 1 subscriber that reconnects while the broker is down."""

    def __init__(self, port: int, topic: str) -> None:
        self.port = port
        self.topic = topic
        self.messages: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="witskit-test-subscriber", clean_session=False
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.ready.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.messages.append(json.loads(message.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def sequence_numbers(self) -> set[tuple[str, int]]:
        return {(m["source"], int(m["values"]["SQID"])) for m in self.messages if "SQID" in m["values"]}

    async def aclose(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def subscribed(port: int, topic: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber(port, topic)
    try:
        await asyncio.wait_for(sub.ready.wait(), 10)
        yield sub
    finally:
        await sub.aclose()


def sqid(frame: DecodedFrame) -> tuple[str, int] | None:
    point = frame.get_value("0104")
    if point is None or not isinstance(point.parsed_value, int | float) or frame.source is None:
        return None
    return frame.source, int(point.parsed_value)


async def test_a_broker_outage_of_20_s_loses_nothing(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        async with subscribed(broker.port, "rigs/#") as sub:
            sent: set[tuple[str, int]] = set()

            def on_frame(frame: DecodedFrame) -> None:
                key = sqid(frame)
                if key is not None:
                    sent.add(key)

            sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/rigs?timeout=2")
            pipe = Pipeline(
                [open_source("sim://rig-1?rate=10&records=1")],
                [sink],
                Spool(tmp_path / "spool", fsync="never"),
                on_frame=on_frame,
                breaker_timeout=1.0,
            )
            task = asyncio.create_task(pipe.run())
            try:
                await until(lambda: len(sub.messages) >= 10)
                broker.stop()
                during = pipe.stats.frames_received
                await asyncio.sleep(OUTAGE)
                assert pipe.stats.frames_received > during + 100  # ingest went on into the spool
                assert pipe.backlog > 100
                broker.start()
                await asyncio.sleep(2)
            finally:
                pipe.stop()
                await asyncio.wait_for(task, 60)
            await until(lambda: sent <= sub.sequence_numbers(), timeout=30)
    assert len(sent) > 200
    assert pipe.backlog == 0


def _mqtt_string(text: str) -> bytes:
    return struct.pack("!H", len(text)) + text.encode()


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([kind]) + encoded + body


async def test_a_subscriber_that_never_reads_does_not_stall_ingest(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        # A raw MQTT 3.1.1 client: CONNECT, SUBSCRIBE at QoS 1, then it never reads a byte.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", broker.port))
        slow.sendall(_packet(0x10, _mqtt_string("MQTT") + bytes([4, 2, 0, 60]) + _mqtt_string("slow")))
        slow.sendall(_packet(0x82, b"\x00\x01" + _mqtt_string("rigs/#") + b"\x01"))
        try:
            sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/rigs")
            assert isinstance(sink, MQTTSink)
            pipe = Pipeline(
                [open_source("sim://rig-1?rate=400&records=1")],
                [sink],
                Spool(tmp_path / "spool", fsync="never"),
            )
            task = asyncio.create_task(pipe.run())
            try:
                started = time.monotonic()
                await until(lambda: sink.published >= 2000, timeout=30)
                elapsed = time.monotonic() - started
                # 2,000 frames at 400 a second: the pace of the rig, not of the subscriber.
                assert elapsed < 15
                assert pipe.backlog < 1000
            finally:
                pipe.stop()
                await asyncio.wait_for(task, 30)
        finally:
            slow.close()


def test_a_password_given_in_the_query_is_masked_in_the_error() -> None:
    with pytest.raises(UsageError) as caught:
        sink_kind("mqtt://127.0.0.1:1883/rigs?password=s3cret")
    assert "s3cret" not in str(caught.value)
    assert "password=***" in str(caught.value)


async def test_retained_latest_values_greet_a_dashboard_that_subscribes_later(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/rigs?retain_latest=1")
        assert isinstance(sink, MQTTSink)
        decoder = WITSDecoder()
        older = decoder.decode_frame(b"&&\r\n0101RIG-7\r\n01083650.4\r\n!!\r\n", source="rig-7")
        newer = decoder.decode_frame(b"&&\r\n0101RIG-7\r\n01083651.9\r\n!!\r\n", source="rig-7")
        await sink.write([older, newer], upto=2)
        assert sink.published == 2 + 2  # two frames, then the latest of each of the two channels
        await sink.aclose()
        async with aiomqtt.Client("127.0.0.1", broker.port) as dashboard:
            await dashboard.subscribe("rigs/rig-7/latest/#", qos=1)
            got: dict[str, Any] = {}
            async with asyncio.timeout(10):
                async for message in dashboard.messages:
                    assert message.retain
                    assert isinstance(message.payload, bytes)
                    got[str(message.topic)] = json.loads(message.payload)
                    if len(got) == 2:
                        break
    assert got["rigs/rig-7/latest/DBTM"]["value"] == 3651.9
    assert got["rigs/rig-7/latest/DBTM"]["schema"] == "witskit/value/1"
    assert got["rigs/rig-7/latest/WID"]["value"] == "RIG-7"
