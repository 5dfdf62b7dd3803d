"""The transport tests' helpers: a scriptable EDR server, a trustme PKI's files, and small helpers
(quick reconnects, taking events, pushing as a rig). The fixtures that build them are in
``tests/transport/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from witskit.transport.resilience import RetryPolicy

#: Every wait in these tests is bounded by this; a hang fails fast instead of stalling the suite.
TIMEOUT = 10.0


def fast_retry(max_attempts: int | None = None) -> RetryPolicy:
    """Reconnect quickly (10-50 ms), so reconnect tests take milliseconds."""
    from witskit.errors import TransportError

    return RetryPolicy(
        max_attempts=max_attempts, backoff_factor=0.01, max_backoff=0.05, retry_on=(TransportError,)
    )


async def take(source: Any, count: int, timeout: float = TIMEOUT) -> list[Any]:
    """The first ``count`` events of ``source``; the iteration is closed afterwards."""
    events: list[Any] = []
    stream = source.events() if hasattr(source, "events") else source
    async with contextlib.aclosing(stream):
        async with asyncio.timeout(timeout):
            async for event in stream:
                events.append(event)
                if len(events) >= count:
                    break
    return events


@dataclass(frozen=True)
class PKI:
    """PEM files: a server CA and server cert, a client CA and client cert, and a rogue CA."""

    ca_file: Path  # signs the server certificate
    server_cert: Path  # for localhost and 127.0.0.1
    server_key: Path
    client_ca_file: Path  # signs rigs' client certificates (mTLS)
    client_cert: Path
    client_key: Path
    rogue_ca_file: Path  # trusted by nobody
    rogue_cert: Path  # a client/server certificate signed by the rogue CA
    rogue_key: Path


# A scriptable EDR ---------------------------------------------------------------------------------
class Peer:
    """One connection to :class:`EDRServer`: every byte it received, and ways to answer."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.eof = False
        self._changed = asyncio.Event()

    async def pump(self) -> None:
        """Record what the client sends until it closes (runs beside the script)."""
        try:
            while chunk := await self.reader.read(65536):
                self.received += chunk
                self._changed.set()
        except OSError:
            pass
        self.eof = True
        self._changed.set()

    async def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = TIMEOUT) -> None:
        """Wait until what was received satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            while not predicate(bytes(self.received)):
                if self.eof:
                    raise AssertionError(f"client closed; received only {bytes(self.received)!r}")
                self._changed.clear()
                await self._changed.wait()

    async def send(self, data: bytes) -> None:
        """Write and flush."""
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Drop the connection with a TCP reset (RST), as a crashing EDR or a firewall does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def hold(self, timeout: float = TIMEOUT) -> None:
        """Keep the connection open until the client closes it."""
        async with asyncio.timeout(timeout):
            while not self.eof:
                self._changed.clear()
                await self._changed.wait()


Script = Callable[[Peer], Awaitable[None]]


class EDRServer:
    """A tiny EDR on 127.0.0.1: connection *n* runs ``scripts[n]`` (the last repeats), then closes.

    ``peers`` keeps each connection's received bytes, so tests can check what went on the wire.
    """

    def __init__(self, *scripts: Script, ssl_context: ssl.SSLContext | None = None) -> None:
        assert scripts
        self.scripts = scripts
        self.ssl_context = ssl_context
        self.peers: list[Peer] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> EDRServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers), reader, writer)
        self.peers.append(peer)
        script = self.scripts[min(peer.index, len(self.scripts) - 1)]
        pump = asyncio.create_task(peer.pump())
        try:
            await script(peer)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await writer.wait_closed()
        except asyncio.CancelledError:
            # aclose() stopped this connection, maybe mid-cleanup: abort it. The task then ends
            # normally, because Python 3.11's start_server logs an error for a cancelled handler.
            pump.cancel()
            writer.transport.abort()
            await asyncio.gather(pump, asyncio.sleep(0), return_exceptions=True)
        finally:
            self._tasks.discard(task)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def push(
    port: int,
    data: bytes = b"",
    *,
    ssl_context: ssl.SSLContext | None = None,
    local_addr: tuple[str, int] | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a listener as a pushing rig and send ``data``; the caller closes the writer."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        port,
        ssl=ssl_context,
        server_hostname="localhost" if ssl_context else None,
        local_addr=local_addr,
    )
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a client writer, ignoring how the peer already ended it."""
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await writer.wait_closed()
