"""TCP and TLS client links to an EDR (``tcp://host:port``, ``tls://host:port``)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from witskit.errors import UsageError
from witskit.transport.base import LinkSource, map_errors

__all__ = ["TCPSource", "check_port"]


def check_port(port: int, *, allow_zero: bool = False) -> int:
    """A TCP port number, or a clear error (the plan's example used 99999, which is not a port)."""
    low = 0 if allow_zero else 1
    if not isinstance(port, int) or isinstance(port, bool) or not low <= port <= 65535:
        raise UsageError(f"port {port!r} is not a TCP port ({low}-65535)")
    return port


class TCPSource(LinkSource):
    """A client link to an EDR over TCP, or TLS when ``ssl_context`` is given.

    With TLS the server certificate and host name are verified against the context's CA (use
    :func:`witskit.transport.tls.client_context`); ``server_hostname`` overrides the name checked.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        scheme = "tls" if ssl_context is not None else "tcp"
        super().__init__(name or f"{scheme}://{host}:{port}", **options)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        with map_errors(self.name):
            if not 1 <= int(self.port) <= 65535:
                raise ValueError(f"port {self.port} is not a TCP port (1-65535)")
            async with asyncio.timeout(self.connect_timeout):  # not wait_for: see LinkSource.events
                return await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=(self.server_hostname or self.host) if self.ssl_context else None,
                )
