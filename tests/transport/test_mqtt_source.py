"""The MQTT source (``mqtt://broker/<topic filter>``) against a real Mosquitto of the test's own.

A gateway publishes a rig's raw WITS bytes; frames split across messages are put back together per
topic, each topic's frames are named after it, and garbage in one topic never touches another's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from support.edr import take
from support.mosquitto import Mosquitto
from support.waiting import until
from witskit.errors import FrameError, UsageError
from witskit.protocol import WITSFrame
from witskit.transport.mqtt import MQTTSource
from witskit.transport.urls import open_source

FRAME = b"&&\r\n01083650.40\r\n011323.38\r\n!!\r\n"


async def test_frames_split_across_messages_are_read_per_topic(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker", extra=("log_type all",)) as broker:
        source = open_source(f"mqtt://127.0.0.1:{broker.port}/gw/+/wits?client_id=witskit-test-gw")
        assert isinstance(source, MQTTSource)
        first = asyncio.ensure_future(take(source, 3))
        async with aiomqtt.Client("127.0.0.1", broker.port) as gateway:
            # The broker's own log says when the source's subscription is in place.
            await until(lambda: "Received SUBSCRIBE from witskit-test-gw" in broker.log_text(), timeout=10)
            await gateway.publish("gw/rig-7/wits", FRAME[:9], qos=1)
            await gateway.publish("gw/rig-9/wits", b"\x00garbage&&\r\n01083651.00\r\n!!\r\n", qos=1)
            await gateway.publish("gw/rig-7/wits", FRAME[9:], qos=1)
            got = await first
        frames = [e for e in got if isinstance(e, WITSFrame)]
        errors = [e for e in got if isinstance(e, FrameError)]
        assert {(f.source, f.lines[0]) for f in frames} == {
            ("gw/rig-7/wits", b"01083650.40"),
            ("gw/rig-9/wits", b"01083651.00"),
        }
        assert [e.source for e in errors] == ["gw/rig-9/wits"]
        await source.aclose()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mqtt://127.0.0.1:1883", "names no topic filter"),
        ("mqtt://127.0.0.1:1883/rigs/#x", "multi-level wildcard only as the URL's last character"),
        ("mqtt://127.0.0.1:1883/rigs?max_topics=0", "max_topics='0' is not a positive integer"),
        ("mqtt://127.0.0.1:99999/rigs", "is not a TCP port"),
    ],
)
def test_a_bad_mqtt_source_url_is_one_line(url: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_source(url)
    assert says in str(caught.value)


def test_a_final_hash_is_the_multi_level_wildcard() -> None:
    source = open_source("mqtt://127.0.0.1:1883/rigs/#")
    assert isinstance(source, MQTTSource)
    assert source.topic_filter == "rigs/#"
