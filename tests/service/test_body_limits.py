"""Request bodies over the limit are refused with 413 before they are read, by a real uvicorn.

A body is refused by its ``Content-Length`` at once, and a streamed (chunked) one as soon as the
bytes received pass the limit; the rest is never read and the connection is closed. Raw sockets on
127.0.0.1: a client library would not send a lying or endless body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from service_helpers import admin_auth, make_config, serving

from witskit.service.limits import AUTH_MAX_BODY_BYTES

#: What a chunked sender offers at most (it must be stopped long before).
OFFERED = 64 * 1024 * 1024
CHUNK = 64 * 1024


async def request(
    url: str, path: str, headers: dict[str, str], body: bytes | None = None, *, chunked: int = 0
) -> tuple[int, dict[str, str], bytes, int]:
    """Send a POST; (status, headers, body, bytes of body sent before the answer came).

    ``chunked``: stream that many bytes in chunks (``Transfer-Encoding: chunked``), stopping as
    soon as an answer arrives.
    """
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
    sent = len(body or b"")
    answered = asyncio.Event()

    async def stream() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while sent < chunked and not answered.is_set():
                size = min(CHUNK, chunked - sent)
                writer.write(f"{size:x}\r\n".encode() + b"x" * size + b"\r\n")
                await writer.drain()
                sent += size
            if chunked and not answered.is_set():
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    sender = asyncio.create_task(stream())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 20)
        answered.set()
        sent_then = sent
        response_headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            response_headers[key.strip().lower()] = value.strip()
        length = int(response_headers.get("content-length", "0"))
        content = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        answered.set()
        await sender
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1]), response_headers, content, sent_then


async def closed_by_server(url: str, path: str, headers: dict[str, str]) -> bool:
    """True when the server answers and closes a request that declares a huge body it never gets."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        data = await asyncio.wait_for(reader.read(), 10)  # to EOF: the server closed
        return data.startswith(b"HTTP/1.1 413")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_huge_declared_body_is_refused_at_once(tmp_path: Path) -> None:
    async with serving(make_config(tmp_path), ingest=False) as bound:
        headers = {"Content-Type": "application/json", "Content-Length": "300000000"}
        assert await closed_by_server(bound.url, "/api/v1/auth/logout", headers)
        status, answer_headers, body, _ = await request(
            bound.url, "/api/v1/auth/logout", {**headers, "Content-Length": str(AUTH_MAX_BODY_BYTES + 1)}
        )
        assert status == 413
        assert json.loads(body) == {
            "detail": f"request body too large: at most {AUTH_MAX_BODY_BYTES} bytes here"
        }
        assert "x-request-id" in answer_headers


async def test_a_streamed_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    async with serving(make_config(tmp_path), ingest=False) as bound:
        headers = {"Content-Type": "application/json"}
        status, _, body, sent = await request(bound.url, "/api/v1/auth/logout", headers, chunked=OFFERED)
        assert status == 413, body
        assert sent < OFFERED // 4, f"{sent} bytes were taken before the answer"
        # A small chunked body is read as usual.
        small = json.dumps({"refresh_token": "not-a-token"}).encode()
        parts = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        chunked = f"{len(small):x}\r\n".encode() + small + b"\r\n0\r\n\r\n"
        status, _, _, _ = await request(bound.url, "/api/v1/auth/logout", parts, chunked)
        assert status == 204


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_other_routes_have_the_setting_as_limit(tmp_path: Path, chunked: bool) -> None:
    async with serving(make_config(tmp_path, max_body_bytes=4096), ingest=False) as bound:
        root = await admin_auth(bound)
        big = json.dumps({"username": "big", "password": "p" * 5000, "roles": ["viewer"]}).encode()
        headers = {**root, "Content-Type": "application/json"}
        if chunked:
            sized = {**headers, "Transfer-Encoding": "chunked"}
            status, _, _, _ = await request(
                bound.url, "/api/v1/users", sized, f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n"
            )
        else:
            status, _, _, _ = await request(
                bound.url, "/api/v1/users", {**headers, "Content-Length": str(len(big))}, big
            )
        assert status == 413
        fits = json.dumps({"username": "fits", "password": "p" * 16, "roles": ["viewer"]}).encode()
        status, _, body, _ = await request(
            bound.url, "/api/v1/users", {**headers, "Content-Length": str(len(fits))}, fits
        )
        assert status == 201, body


async def test_a_big_websocket_message_closes_the_live_stream(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with serving(make_config(tmp_path), ingest=False) as bound:
        root = await admin_auth(bound)
        ws_url = bound.url.replace("http://", "ws://") + "/api/v1/live"
        async with connect(ws_url, additional_headers=root, max_size=None) as ws:
            await ws.send("x" * 1_000_000)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1009  # message too big


async def flood_head(url: str, prefix: bytes, filler: bytes, offered: int) -> tuple[bytes, int]:
    """Send ``prefix`` then ``filler`` repeated (a request head that never ends) until the server
    answers or ``offered`` bytes went; (the status line, bytes of filler sent before it came)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(prefix)
    sent = 0
    answered = asyncio.Event()

    async def stream() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while sent < offered and not answered.is_set():
                writer.write(filler)
                await writer.drain()
                sent += len(filler)
            if not answered.is_set():
                writer.write(b"\r\n\r\n")
                await writer.drain()

    sender = asyncio.create_task(stream())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 60)
        answered.set()
        return status_line, sent
    finally:
        answered.set()
        await sender
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.parametrize("where", ["header", "many-headers", "query"])
async def test_a_huge_request_head_is_refused_before_it_is_read(tmp_path: Path, where: str) -> None:
    # No body needed: a 200 MB header line grew the server by 400 MB (and took a minute of its
    # event loop) when the head had no limit; a head is a few KiB at most.
    prefixes = {
        "header": (b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * CHUNK),
        "many-headers": (b"GET /livez HTTP/1.1\r\nHost: x\r\n", b"X-A: a\r\n" * (CHUNK // 8)),
        "query": (b"GET /livez?q=", b"a" * CHUNK),
    }
    prefix, filler = prefixes[where]
    async with serving(make_config(tmp_path), ingest=False) as bound:
        status_line, sent = await flood_head(bound.url, prefix, filler, OFFERED)
        assert status_line.split()[1:2] in ([b"400"], [b"431"]), status_line
        assert sent < OFFERED // 4, f"{sent} bytes of request head were taken before the answer"
        async with httpx.AsyncClient() as client:  # and the server serves the next client
            assert (await client.get(bound.url + "/livez")).status_code == 200
