"""A webhook receiver on 127.0.0.1 for the alarm tests, and the receiver's signature check.

``async with webhook_receiver() as rec:`` listens on port 0; ``rec.url`` is where to POST; each
request is kept in ``rec.requests`` as (headers, body); the answers come from ``rec.statuses``
(then 200); ``rec.hang`` makes it never answer. :func:`signed_correctly` is the documented
recipe, written out here rather than calling the library's own ``verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records each request; answers from ``statuses`` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hang: bool = False
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((headers, body))
            if self.hang:
                await asyncio.sleep(3600)
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def webhook_receiver(path: str = "/hooks/alarms") -> AsyncIterator[Receiver]:
    """A :class:`Receiver` listening on 127.0.0.1, port 0, until the block ends."""
    rec = Receiver()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()


def signed_correctly(secret: bytes, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's own check, from the documented recipe (not the library's helper)."""
    stamp = headers["x-witskit-timestamp"]
    expected = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(stamp)) <= 300
    return fresh and hmac.compare_digest(headers["x-witskit-signature"], f"sha256={expected}")
