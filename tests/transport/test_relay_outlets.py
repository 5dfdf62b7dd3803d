"""The relay's outlets over real TLS (a trustme PKI): ``wits-serve+tls://`` and ``wits-push+tls://``.

The sinks' filtering, queues and consumers are tested in ``tests/pipeline/test_relay.py``; here the
outlets themselves: the server presents its certificate and can require a client certificate, the
pushing link verifies the consumer's, and an untrusted peer is refused without touching the others.
"""

from __future__ import annotations

import asyncio
import ssl

from support.edr import PKI, TIMEOUT, fast_retry
from support.waiting import until
from witskit.pipeline.relay import RelaySink
from witskit.transport.relay import RelayLink, RelayServer, tcp_opener
from witskit.transport.tls import client_context, server_context

FRAME = b"&&\r\n01083650.40\r\n!!\r\n"


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(marker), TIMEOUT)


async def test_wits_serve_tls_serves_trusting_consumers_and_refuses_others(pki: PKI) -> None:
    sink = RelaySink(
        f"wits-serve+tls://127.0.0.1:0?cert={pki.server_cert}&key={pki.server_key}"
        f"&client_ca={pki.client_ca_file}&require_client_cert=1"
    )
    await sink.start()
    try:
        good = client_context(pki.ca_file, pki.client_cert, pki.client_key)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", sink.port, ssl=good, server_hostname="localhost"
        )
        await until(lambda: sink.stats.consumers == 1)
        sink.outlet.offer(FRAME)
        assert await read_until(reader, b"!!\r\n") == FRAME
        # No client certificate: refused in the handshake; the consumer inside is still served.
        anonymous = client_context(pki.ca_file)
        try:
            r2, w2 = await asyncio.open_connection(
                "127.0.0.1", sink.port, ssl=anonymous, server_hostname="localhost"
            )
            # TLS 1.3: the client's handshake ends before the server checks; the refusal is the close.
            assert await asyncio.wait_for(r2.read(), TIMEOUT) == b""
            w2.close()
        except (ssl.SSLError, ConnectionError):
            pass
        await until(lambda: sink.stats.refused == 1)
        assert sink.stats.consumers == 1
        sink.outlet.offer(FRAME)
        assert await read_until(reader, b"!!\r\n") == FRAME
        writer.close()
    finally:
        await sink.aclose()


async def test_wits_push_tls_verifies_the_consumer(pki: PKI) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def consumer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await received.put(await reader.readuntil(b"!!\r\n"))
        writer.close()

    server = await asyncio.start_server(
        consumer, "127.0.0.1", 0, ssl=server_context(pki.server_cert, pki.server_key)
    )
    port = server.sockets[0].getsockname()[1]
    sink = RelaySink(
        f"wits-push+tls://127.0.0.1:{port}?ca={pki.ca_file}&hostname=localhost", retry=fast_retry()
    )
    await sink.start()
    try:
        await until(lambda: sink.stats.connects == 1)
        sink.outlet.offer(FRAME)
        assert await asyncio.wait_for(received.get(), TIMEOUT) == FRAME
    finally:
        await sink.aclose()
        server.close()
        await server.wait_closed()


async def test_a_link_to_an_untrusted_consumer_is_retried_not_served(pki: PKI) -> None:
    server = await asyncio.start_server(
        lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context(pki.rogue_cert, pki.rogue_key)
    )
    port = server.sockets[0].getsockname()[1]
    opener = tcp_opener("127.0.0.1", port, name="push", ssl_context=client_context(pki.ca_file))
    link = RelayLink("push", opener, retry=fast_retry())
    await link.start()
    try:
        await until(lambda: link.failed_attempts >= 3)  # each refused by certificate
        assert link.stats.connects == 0
        link.offer(FRAME)  # queued (bounded) meanwhile, never sent to the rogue
    finally:
        await link.aclose()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # the server's side of the last failed handshake closes


async def test_a_server_closes_every_consumer_at_aclose() -> None:
    server = RelayServer("127.0.0.1", 0, name="relay")
    await server.start()
    conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    await until(lambda: server.stats.consumers == 3)
    await server.aclose()
    for reader, writer in conns:
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
    assert server.stats.consumers == 0
