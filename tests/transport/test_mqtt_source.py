"""The MQTT source (``mqtt://broker/<topic filter>``) against a real Mosquitto of the test's own.

A gateway publishes a rig's raw WITS bytes; frames split across messages are put back together per
topic, each topic's frames are named after it, and garbage in one topic never touches another's.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from support.edr import PKI, take
from support.mosquitto import Mosquitto
from support.waiting import until
from witskit.errors import ConnectionLost, FrameError, UsageError
from witskit.pipeline import open_sink
from witskit.pipeline.mqtt import MQTTSink
from witskit.protocol import WITSDecoder, WITSFrame
from witskit.transport.mqtt import MQTTSource
from witskit.transport.tls import client_context
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


async def test_mqtts_with_a_client_certificate_and_a_password(
    tmp_path: Path, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    """Sink and source over TLS, to a broker that wants a client certificate and a password; the
    password is in no log line, no error and no name."""
    caplog.set_level(logging.DEBUG)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "rig", "s3cret-pw"], check=True)
    tls = (
        f"cafile {pki.client_ca_file}",
        f"certfile {pki.server_cert}",
        f"keyfile {pki.server_key}",
        "require_certificate true",
        "log_type all",
        f"password_file {passwords}",
    )
    with Mosquitto(tmp_path / "broker", extra=tls, anonymous=False) as broker:
        query = f"ca={pki.ca_file}&cert={pki.client_cert}&key={pki.client_key}"
        login = {"username": "rig", "password": "s3cret-pw"}
        source = open_source(f"mqtts://127.0.0.1:{broker.port}/gw/+/wits?{query}&client_id=t-src", **login)
        received = asyncio.ensure_future(take(source, 1))
        await until(lambda: "Received SUBSCRIBE from t-src" in broker.log_text(), timeout=10)
        context = client_context(pki.ca_file, pki.client_cert, pki.client_key)
        async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=context, **login) as gateway:
            await gateway.publish("gw/rig-7/wits", FRAME, qos=1)
        (frame,) = await received
        assert isinstance(frame, WITSFrame)
        assert frame.source == "gw/rig-7/wits"
        sink = open_sink(f"mqtts://127.0.0.1:{broker.port}/witskit?{query}", **login)
        assert isinstance(sink, MQTTSink)
        decoded = WITSDecoder().decode_frame(FRAME, source="rig-7")
        await sink.write([decoded], upto=1)  # returns after the broker's PUBACK
        assert sink.published == 1
        assert "'witskit/rig-7/01'" in broker.log_text()  # the broker logged the PUBLISH it acknowledged
        # A wrong password is refused, and the error does not echo it.
        bad = open_sink(
            f"mqtts://127.0.0.1:{broker.port}/witskit?{query}&timeout=2", username="rig", password="wrong-pw"
        )
        with pytest.raises(ConnectionLost) as caught:
            await bad.write([decoded], upto=1)
        await sink.aclose()
        await bad.aclose()
    assert "wrong-pw" not in str(caught.value)
    assert "s3cret-pw" not in caplog.text
    assert "wrong-pw" not in caplog.text
    assert "s3cret-pw" not in sink.name
