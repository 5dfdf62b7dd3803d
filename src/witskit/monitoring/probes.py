"""``/livez``, ``/readyz`` and ``/metrics`` for a process that serves no API (a fleet's worker).

A :class:`ProbeServer` answers three GET paths on a port of its own and nothing else:

* ``/livez``: 200 while the process runs;
* ``/readyz``: 200 or 503 with a JSON body of named checks, from the ``ready`` callable;
* ``/metrics``: Prometheus text (exposition format 0.0.4) from the ``metrics`` callable.

It is small on purpose (no web framework: a worker does not need the ``server`` extra) and bounded
like every listener of ours: a request line and headers of at most ``MAX_REQUEST_BYTES`` read within
``READ_TIMEOUT`` seconds, at most ``MAX_CONNECTIONS`` at once, one request per connection. Bind it to
127.0.0.1 (the default) or a management network: it has no authentication, and tells only counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Final

__all__ = ["MAX_CONNECTIONS", "MAX_REQUEST_BYTES", "READ_TIMEOUT", "ProbeServer", "render_metrics"]

#: A probe's request is one short line and a few headers; 8 KiB is a browser's worth.
MAX_REQUEST_BYTES: Final = 8192
#: Seconds a client has to send its request: a scraper sends it at once.
READ_TIMEOUT: Final = 5.0
#: Probes and a scraper or two: more at once is a misbehaving client, refused by closing.
MAX_CONNECTIONS: Final = 32

_REASONS: Final = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Too Large",
    503: "Unavailable",
}

#: (name, kind, help, labels, value) of one sample; kind is "counter" or "gauge".
Sample = tuple[str, str, str, Mapping[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(samples: Iterable[Sample]) -> bytes:
    """Prometheus text for ``samples``, each metric's HELP and TYPE once, before its first sample."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, kind, help_text, labels, value in samples:
        if name not in seen:
            seen.add(name)
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    return ("\n".join(lines) + "\n").encode()


class ProbeServer:
    """Serves ``/livez``, ``/readyz`` and ``/metrics`` on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], tuple[bool, dict[str, object]]],
        metrics: Callable[[], bytes],
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._open = 0

    async def start(self) -> None:
        """Listen; :attr:`port` is the bound port afterwards."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Stop listening (a request being answered finishes)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:
                return
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, ValueError):
                await self._send(writer, 431, "text/plain", b"request too large\n")
                return
            except (asyncio.IncompleteReadError, TimeoutError, OSError):
                return
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) != 3 or parts[0] != b"GET":
                await self._send(writer, 405, "text/plain", b"GET only\n")
                return
            path = parts[1].split(b"?", 1)[0]
            if path == b"/livez":
                await self._send(writer, 200, "application/json", b'{"status":"alive"}\n')
            elif path == b"/readyz":
                ok, checks = self._ready()
                body = json.dumps({"status": "ready" if ok else "not ready", "checks": checks}).encode()
                await self._send(writer, 200 if ok else 503, "application/json", body + b"\n")
            elif path == b"/metrics":
                await self._send(writer, 200, "text/plain; version=0.0.4; charset=utf-8", self._metrics())
            else:
                await self._send(writer, 404, "text/plain", b"not found\n")
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, kind: str, body: bytes) -> None:
        reason = _REASONS.get(status, "")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            writer.write(head.encode() + body)
            await writer.drain()
