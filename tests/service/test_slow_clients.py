"""Clients that hold connections open without finishing a request are cut off, and the API takes
at most ``WITS_HTTP_MAX_CONNECTIONS`` at once: a real uvicorn, raw sockets on 127.0.0.1.

uvicorn closes an idle connection only after its first response: a client that connects and sends
nothing, or trickles a request head or body a byte at a time (slowloris), kept its socket for ever,
and a few thousand such clients used up the process's file descriptors, which the spool, the
database and the rig listeners of ``witskit run`` need too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from service_helpers import admin_auth, make_config, serving

TIMEOUT = 0.5


async def open_socket(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def seconds_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: bytes = b"", limit: float = 10
) -> float:
    """Seconds until the server closes the connection, sending ``trickle`` every 0.1 s meanwhile."""
    start = time.monotonic()
    try:
        while time.monotonic() - start < limit:
            if trickle:
                writer.write(trickle)
            try:
                if await asyncio.wait_for(reader.read(65536), 0.1) == b"":
                    break
            except TimeoutError:
                continue
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return time.monotonic() - start


@pytest.mark.parametrize(
    ("opening", "trickle"),
    [
        (b"", b""),
        (b"GET /livez HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n"),
        (b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", b"x"),
    ],
    ids=["silent", "slow-head", "slow-body"],
)
async def test_a_request_not_received_in_time_is_cut_off(
    tmp_path: Path, opening: bytes, trickle: bytes
) -> None:
    async with serving(make_config(tmp_path, http_request_timeout=TIMEOUT), ingest=False) as bound:
        reader, writer = await open_socket(bound.url)
        writer.write(opening)
        lasted = await seconds_until_closed(reader, writer, trickle)
        assert lasted < TIMEOUT + 3, f"still open after {lasted:.1f} s"
        # A client that asks in time is served, twice on one connection with a pause between.
        async with httpx.AsyncClient(base_url=bound.url) as client:
            assert (await client.get("/livez")).status_code == 200
            await asyncio.sleep(TIMEOUT / 2)
            assert (await client.get("/livez")).status_code == 200


async def test_an_open_live_stream_outlasts_the_request_timeout(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect

    async with serving(make_config(tmp_path, http_request_timeout=TIMEOUT), ingest=False) as bound:
        auth = await admin_auth(bound)
        url = bound.url.replace("http://", "ws://") + "/api/v1/live"
        async with connect(url, additional_headers=auth) as ws:
            await asyncio.sleep(TIMEOUT * 4)
            await asyncio.wait_for(await ws.ping(), 5)  # still open, both ways


async def test_connections_past_the_limit_are_closed_at_once(tmp_path: Path) -> None:
    async with serving(make_config(tmp_path, http_max_connections=4), ingest=False) as bound:
        held = [await open_socket(bound.url) for _ in range(4)]
        await asyncio.sleep(0.2)
        reader, writer = await open_socket(bound.url)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 2) == b""  # closed unanswered
        writer.close()
        for _, w in held:
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=bound.url) as client:
            assert (await client.get("/livez")).status_code == 200
