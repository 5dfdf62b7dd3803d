"""How a listener names its peers (address, certificate, names=), caps them, and says what it does.

A rig that reconnected to a listener used to become a new permanent source (``name/IP:port``) at
every reconnect, and a ``tcp-listen`` source printed nothing about who connected.
"""

from __future__ import annotations

import contextlib
import logging

import pytest

from support.edr import close_writer, push, take
from support.waiting import until
from witskit.errors import UsageError
from witskit.protocol import encode_frame
from witskit.transport import LinkState, LinkStatus, ListenerSource, open_source
from witskit.transport.listener import DEFAULT_MAX_SOURCES, parse_peer_names

FRAME = encode_frame([("0101", "RIG-7"), ("0108", 3650.4)])


async def send_once(listener: ListenerSource, address: str = "127.0.0.1") -> str | None:
    """Connect from ``address``, send one frame, disconnect; the source name the frame got."""
    _, writer = await push(listener.port, FRAME, local_addr=(address, 0))
    (event,) = await take(listener, 1)
    await close_writer(writer)
    return event.source


async def test_a_rig_that_reconnects_stays_one_source() -> None:
    async with ListenerSource("127.0.0.1", 0) as listener:
        names = [await send_once(listener) for _ in range(3)]  # three connections, three ports
    assert names == [f"{listener.name}/127.0.0.1"] * 3
    assert listener.sources == [f"{listener.name}/127.0.0.1"]
    assert listener.accepted == 3


async def test_names_option_names_peers_by_address() -> None:
    url = "tcp-listen://127.0.0.1:0?names=127.0.0.2=rig-7,127.0.0.3=rig-9&name=rigs"
    async with open_source(url) as listener:
        assert isinstance(listener, ListenerSource)
        got = [await send_once(listener, a) for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2")]
    assert got == ["rig-7", "rig-9", "rigs/127.0.0.4", "rig-7"]
    # The pipeline file's form: a mapping in options.
    listener = ListenerSource("127.0.0.1", 0, peer_names={"192.0.2.7": "rig-7", "::ffff:10.0.0.5": "rig-9"})
    assert listener.peer_names == {"192.0.2.7": "rig-7", "10.0.0.5": "rig-9"}


def test_bad_peer_names_are_usage_errors() -> None:
    assert parse_peer_names("192.0.2.7=rig-7, [2001:db8::7]=rig-6") == {
        "192.0.2.7": "rig-7",
        "2001:db8::7": "rig-6",
    }
    for text, message in (
        ("rig-7", "not ADDRESS=NAME"),
        ("rig-7.example=rig-7", "not an IP address"),
        ("192.0.2.7=", "empty"),
        ("192.0.2.7=rig-7,192.0.2.7=rig-8", "named twice"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_peer_names(text)
    with pytest.raises(UsageError, match="max_sources"):
        ListenerSource("127.0.0.1", 0, max_sources=0)
    with pytest.raises(UsageError, match="max_sources='many'"):
        open_source("tcp-listen://127.0.0.1:0?max_sources=many")
    assert ListenerSource("127.0.0.1", 0).max_sources == DEFAULT_MAX_SOURCES


async def test_past_max_sources_new_peers_are_refused_known_and_named_ones_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    statuses: list[LinkStatus] = []
    async with open_source(
        "tcp-listen://127.0.0.1:0?max_sources=2&names=127.0.0.9=rig-9", on_status=statuses.append
    ) as listener:
        assert isinstance(listener, ListenerSource)
        assert await send_once(listener, "127.0.0.2") == f"{listener.name}/127.0.0.2"
        assert await send_once(listener, "127.0.0.3") == f"{listener.name}/127.0.0.3"
        reader, stranger = await push(listener.port, FRAME, local_addr=("127.0.0.4", 0))
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""  # refused: closed (reset) without a byte read
        await close_writer(stranger)
        await until(lambda: listener.refused == 1)
        assert await send_once(listener, "127.0.0.2") == f"{listener.name}/127.0.0.2"  # known
        assert await send_once(listener, "127.0.0.9") == "rig-9"  # named: always accepted
    assert listener.accepted == 4
    assert listener.sources == [f"{listener.name}/127.0.0.2", f"{listener.name}/127.0.0.3"]
    (refusal,) = [s for s in statuses if (s.error or "").startswith("refused")]
    assert "over max_sources=2" in (refusal.error or "")
    assert (refusal.peer or "").startswith("127.0.0.4:")
    assert any(
        r.levelno == logging.WARNING and "over max_sources=2" in r.getMessage() for r in caplog.records
    )


async def test_peers_that_send_nothing_do_not_use_up_max_sources() -> None:
    # A port scan, or a load balancer's TCP health check, from as many addresses as max_sources
    # used to lock every new rig out until a restart: a name counts once its peer sends something.
    async with ListenerSource("127.0.0.1", 0, max_sources=2) as listener:
        for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            _, silent = await push(listener.port, b"", local_addr=(address, 0))
            await until(lambda: listener.active_connections == 1)
            await close_writer(silent)
            await until(lambda: listener.active_connections == 0)
        assert await send_once(listener, "127.0.0.5") == f"{listener.name}/127.0.0.5"
        # While connected, a silent peer holds its place: the bound is never passed.
        _, silent = await push(listener.port, b"", local_addr=("127.0.0.6", 0))
        await until(lambda: listener.active_connections == 1)
        reader, late = await push(listener.port, FRAME, local_addr=("127.0.0.7", 0))
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""  # refused
        await close_writer(late)
        await close_writer(silent)
        await until(lambda: listener.active_connections == 0)
        assert await send_once(listener, "127.0.0.7") == f"{listener.name}/127.0.0.7"
    assert listener.sources == [f"{listener.name}/127.0.0.5", f"{listener.name}/127.0.0.7"]
    assert listener.refused == 1


async def test_listening_and_every_peer_are_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="witskit.transport")
    statuses: list[LinkStatus] = []
    async with ListenerSource("127.0.0.1", 0, on_status=statuses.append) as listener:
        port = listener.port
        _, writer = await push(port, FRAME + FRAME)
        await take(listener, 2)
        peer = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
        await close_writer(writer)
        await until(lambda: listener.active_connections == 0)
    lines = [r.getMessage() for r in caplog.records if r.name == "witskit.transport"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "witskit.transport")
    source = f"{listener.name}/127.0.0.1"
    assert f"{listener.name}: listening on 127.0.0.1:{port}" in lines  # the real port
    assert f"{source}: {peer} connected" in lines
    (gone,) = [line for line in lines if "disconnected" in line]
    assert gone.startswith(f"{source}: {peer} disconnected after ")
    assert gone.endswith(" s, 2 frame(s): closed by the peer")
    assert statuses[0] == LinkStatus(
        listener.name, LinkState.CONNECTED, 0, None, statuses[0].at, peer=f"127.0.0.1:{port}"
    )
    left = [s for s in statuses if s.state is LinkState.DISCONNECTED]
    assert [(s.source, s.peer, s.frames, s.error) for s in left] == [(source, peer, 2, None)]
