"""Transport test fixtures: a leak detector, a trustme PKI, and a scriptable EDR server.

Every transport test runs on real sockets on 127.0.0.1 (port 0) and real TLS; nothing is mocked.
The autouse ``_no_leaks`` fixture fails any test that leaves an asyncio task running, a socket open
or a thread alive, so a transport that forgets to close something cannot pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from support.leaks import check_left, live_threads, socket_fds
from witskit.transport.resilience import RetryPolicy

#: How long tasks still running at the end of a test get to finish (a generator being finalised,
#: a server handler closing) before they count as leaked.
LEAK_GRACE = 2.0

#: Every wait in these tests is bounded by this; a hang fails fast instead of stalling the suite.
TIMEOUT = 10.0


# Leak detection ---------------------------------------------------------------------------------
@pytest.fixture
async def _async_no_leaks() -> AsyncIterator[None]:
    """Runs in the test's event loop: after the test, no other task may still be running."""
    before_fds, before_threads = socket_fds(), live_threads()
    yield
    for _ in range(3):  # let asyncgen finalizers schedule their aclose() tasks
        await asyncio.sleep(0)
    me = asyncio.current_task()
    pending = {t for t in asyncio.all_tasks() if t is not me and not t.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=LEAK_GRACE)
    if pending:
        names = sorted(repr(t.get_coro()) for t in pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # AssertionError, not pytest.fail: a BaseException would break the event loop's runner.
        raise AssertionError(f"the test left {len(names)} asyncio task(s) running: {names}")
    await asyncio.sleep(0)  # transports closed by the last tasks release their sockets now
    check_left(before_fds, before_threads)


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Any:
    """Fail a test that leaks tasks, sockets or threads (checked in its loop for async tests)."""
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue("_async_no_leaks")
        yield
        return
    before_fds, before_threads = socket_fds(), live_threads()
    yield
    check_left(before_fds, before_threads)


# Small helpers ------------------------------------------------------------------------------------
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


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` every few milliseconds until it holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


# PKI ----------------------------------------------------------------------------------------------
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


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A trustme PKI written to PEM files (session-wide: key generation is the slow part)."""
    root = tmp_path_factory.mktemp("pki")
    ca, client_ca, rogue_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = client_ca.issue_cert("rig-7.example")
    rogue = rogue_ca.issue_cert("localhost", "127.0.0.1")
    files = {name: root / f"{name}.pem" for name in PKI.__dataclass_fields__}
    ca.cert_pem.write_to_path(files["ca_file"])
    client_ca.cert_pem.write_to_path(files["client_ca_file"])
    rogue_ca.cert_pem.write_to_path(files["rogue_ca_file"])
    for prefix, issued in (("server", server), ("client", client), ("rogue", rogue)):
        for i, blob in enumerate(issued.cert_chain_pems):
            blob.write_to_path(files[f"{prefix}_cert"], append=i > 0)
        issued.private_key_pem.write_to_path(files[f"{prefix}_key"])
    return PKI(**files)


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


@pytest.fixture
async def edr() -> AsyncIterator[Callable[..., Awaitable[EDRServer]]]:
    """Start scripted EDR servers: ``server = await edr(script1, script2, ssl_context=...)``."""
    servers: list[EDRServer] = []

    async def start(*scripts: Script, ssl_context: ssl.SSLContext | None = None) -> EDRServer:
        server = await EDRServer(*scripts, ssl_context=ssl_context).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose()


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
