"""JetStream URLs (the fleet's ``nats://``), credentials and TLS against a real ``nats-server``.

The URL tests need nothing running. The credential tests each start one JetStream node on a free
loopback port that demands user/password, a token, an NKey or mutual TLS, publish a frame through
the edge's sink, and check that a wrong secret is refused with a message (and log) without it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from support.edr import PKI
from support.natscluster import NatsCluster
from witskit.errors import TransportError, UsageError
from witskit.pipeline.jetstream import JetStreamSink
from witskit.pipeline.sinks import open_sink, sink_kind
from witskit.protocol import FrameParser, WITSDecoder, WITSFrame
from witskit.transport.jetstream import DEFAULT_REPLICAS, parse_target, subject_token

HOSTS = "127.0.0.1:4301,127.0.0.1:4302"


def test_an_edge_url_names_servers_subject_stream_and_edge() -> None:
    target = parse_target(f"nats://{HOSTS}/fleet.wits?stream=WITS&edge=site-a&replicas=1", role="edge")
    assert target.servers == ("nats://127.0.0.1:4301", "nats://127.0.0.1:4302")
    assert (target.subject, target.stream, target.edge, target.replicas) == (
        "fleet.wits",
        "WITS",
        "site-a",
        1,
    )
    assert target.stream_subjects == ["fleet.>"]
    assert target.covered_subject == "fleet.wits.>"


def test_a_worker_url_takes_a_filter_and_needs_a_durable() -> None:
    target = parse_target(f"nats+tls://{HOSTS}/wits.>?stream=WITS&durable=central&ack_wait=5", role="worker")
    assert target.tls
    assert target.servers[0] == "tls://127.0.0.1:4301"
    assert (target.durable, target.ack_wait, target.replicas) == ("central", 5.0, DEFAULT_REPLICAS)
    with pytest.raises(UsageError, match="durable=NAME is required"):
        parse_target(f"nats://{HOSTS}/wits.>?stream=WITS", role="worker")


@pytest.mark.parametrize(
    ("url", "role", "message"),
    [
        ("nats://h:4222/wits", "edge", "stream=NAME is required"),
        ("nats://h:4222/?stream=S", "edge", "the path names the subject"),
        ("nats://h:4222/wits.*?stream=S", "edge", "a subject prefix takes no wildcards"),
        ("nats://h:4222/wits.>.x?stream=S&durable=d", "worker", "'>' must be the last token"),
        ("nats://h:4222/wits?stream=a.b", "edge", "is not a name"),
        ("nats://h:4222/wits?stream=S&edge=a b", "edge", "is not a name"),
        ("nats://h:4222/wits?stream=S&replicas=7", "edge", "more than 5"),
        ("nats://h:99999/wits?stream=S", "edge", "bad port"),
        ("nats://h:4222,/wits?stream=S", "edge", "empty server"),
        ("nats://h:4222/wits?stream=S&durable=x", "edge", "unknown option 'durable'"),
        ("nats://h:4222/wits?stream=S&ca=/nonexistent.pem", "edge", "no such file"),
        ("nats://u:p@h:4222/wits?stream=S&token=t", "edge", "give one of"),
        ("nats://tok@h:4222/wits?stream=S", "edge", "give a token as token="),
    ],
)
def test_a_bad_url_is_refused_with_its_reason(url: str, role: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(url, role=role)


def test_ca_and_certificates_need_nats_tls(pki: PKI) -> None:
    with pytest.raises(UsageError, match="use nats\\+tls://"):
        parse_target(f"nats://h:4222/wits?stream=S&ca={pki.ca_file}", role="edge")
    with pytest.raises(UsageError, match="needs both cert= and key="):
        parse_target(f"nats+tls://h:4222/wits?stream=S&cert={pki.client_cert}", role="edge")


def test_secrets_in_the_url_are_never_shown() -> None:
    with pytest.raises(UsageError) as caught:
        parse_target("nats://edge:hunter2@h:4222/wits?stream=S&replicas=x", role="edge")
    assert "hunter2" not in str(caught.value)
    assert "edge:***@" in str(caught.value)
    with pytest.raises(UsageError) as caught:
        parse_target("nats://h:4222/wits?stream=S&token=s3cret&replicas=x", role="edge")
    assert "s3cret" not in str(caught.value)
    sink = JetStreamSink("nats://edge:hunter2@h:4222/wits?stream=S")
    assert "hunter2" not in sink.name
    assert "hunter2" not in repr(sink)
    assert "hunter2" not in repr(sink.target)


def test_sink_urls_pick_the_jetstream_sink() -> None:
    assert sink_kind("nats://h:4222/wits?stream=S") == "nats"
    assert isinstance(open_sink("nats://h:4222/wits?stream=S&edge=e1"), JetStreamSink)
    with pytest.raises(UsageError, match="options in the URL"):
        open_sink("nats://h:4222/wits?stream=S", edge="e1")


@pytest.mark.parametrize(
    ("source", "token"),
    [("rig-7", "rig-7"), ("rig 7.a", "rig~207~2Ea"), ("", "~"), ("bohrloch-ü", "bohrloch-~C3~BC")],
)
def test_a_source_name_becomes_one_subject_token(source: str, token: str) -> None:
    assert subject_token(source) == token


# Credentials and TLS, against a real server ------------------------------------------------------
def _frames() -> list[object]:
    parser = FrameParser(source="rig-1")
    frames = [e for e in parser.feed(b"&&\r\n01041\r\n0108100.5\r\n!!\r\n") if isinstance(e, WITSFrame)]
    return [WITSDecoder().decode(f) for f in frames]


async def _publish(url: str) -> JetStreamSink:
    sink = JetStreamSink(url)
    try:
        await sink.write_sequenced(_frames(), [1], upto=1)  # type: ignore[arg-type]
    finally:
        await sink.aclose()
    return sink


def _node(tmp_path: Path, *extra: str, **client: object) -> NatsCluster:
    node = NatsCluster(tmp_path, 1, extra=extra)
    node.client_options = dict(client)
    return node


async def _refused(url: str, secret: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(TransportError) as caught:
        await _publish(url)
    assert secret not in str(caught.value)
    assert secret not in caplog.text


@pytest.mark.slow
async def test_user_and_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node = _node(tmp_path, "--user", "edge", "--pass", "right-pw", user="edge", password="right-pw")
    node.start_node(0)
    try:
        await node.wait_ready()
        host = f"127.0.0.1:{node.client_ports[0]}"
        sink = await _publish(f"nats://edge:right-pw@{host}/wits?stream=CRED&replicas=1")
        assert sink.stats.acked == 1
        await _refused(
            f"nats://edge:wrong-pw@{host}/wits?stream=CRED&replicas=1&timeout=1", "wrong-pw", caplog
        )
    finally:
        node.stop()


@pytest.mark.slow
async def test_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node = _node(tmp_path, "--auth", "tok-right", token="tok-right")
    node.start_node(0)
    try:
        await node.wait_ready()
        host = f"127.0.0.1:{node.client_ports[0]}"
        sink = await _publish(f"nats://{host}/wits?stream=CRED&replicas=1&token=tok-right")
        assert sink.stats.acked == 1
        await _refused(
            f"nats://{host}/wits?stream=CRED&replicas=1&timeout=1&token=tok-wrong", "tok-wrong", caplog
        )
    finally:
        node.stop()


@pytest.mark.slow
async def test_nkey(tmp_path: Path) -> None:
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "edge.nk"
    seed_file.write_bytes(seed)
    conf = tmp_path / "nkey.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    node = _node(tmp_path, "-c", str(conf), nkeys_seed=str(seed_file))
    node.start_node(0)
    try:
        await node.wait_ready()
        host = f"127.0.0.1:{node.client_ports[0]}"
        sink = await _publish(f"nats://{host}/wits?stream=CRED&replicas=1&nkey={seed_file}")
        assert sink.stats.acked == 1
        with pytest.raises(TransportError):
            await _publish(f"nats://{host}/wits?stream=CRED&replicas=1&timeout=1")
    finally:
        node.stop()


@pytest.mark.slow
async def test_mutual_tls(tmp_path: Path, pki: PKI) -> None:
    import ssl

    client = ssl.create_default_context(cafile=str(pki.ca_file))
    client.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    node = _node(
        tmp_path,
        "--tlsverify",
        "--tlscert",
        str(pki.server_cert),
        "--tlskey",
        str(pki.server_key),
        "--tlscacert",
        str(pki.client_ca_file),
        tls=client,
    )
    node.start_node(0)
    try:
        await node.wait_ready()
        host = f"127.0.0.1:{node.client_ports[0]}"
        tls = f"ca={pki.ca_file}&cert={pki.client_cert}&key={pki.client_key}"
        sink = await _publish(f"nats+tls://{host}/wits?stream=CRED&replicas=1&{tls}")
        assert sink.stats.acked == 1
        with pytest.raises(TransportError):  # no client certificate: the server refuses
            await _publish(f"nats+tls://{host}/wits?stream=CRED&replicas=1&timeout=1&ca={pki.ca_file}")
    finally:
        node.stop()
