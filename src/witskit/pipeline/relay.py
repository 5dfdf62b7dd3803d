"""The WITS relay sinks: ``wits-serve://``, ``wits-push://``, ``serial://`` and their TLS variants.

A relay sink passes the live stream on to downstream consumers as WITS Level 0, as a rig's
"WITS splitter" does. It is a :class:`~witskit.pipeline.sinks.LiveSink`: the pipeline offers it
each frame as soon as the frame is spooled, it never waits for a consumer, and it never holds the
spool (a consumer that is down misses what was sent meanwhile; the relay is live only).

What each consumer sees is set per sink URL (:class:`RelayView`):

* by default, every frame exactly as the EDR sent it (its own bytes, its own line endings);
* ``records=1,2`` and ``codes=0108,0110`` keep only those records and codes (as received);
* ``remap=0141:0108`` sends a code under another code (after the filters);
* ``units=metric`` or ``units=fps`` converts values from the feed's unit system;
* ``crlf=1`` re-frames every frame with CRLF line endings;
* ``max_rate=N`` sends at most N frames a second per source and record (the rest are skipped);
* ``source=NAME`` relays one source only (by default all sources, interleaved);
* ``mode=request`` answers each packet a consumer sends (a Pason handshake, a request) with the
  latest frame of each record, as a send-and-receive EDR does, and sends nothing unasked.

A frame that a filter changes is re-framed: ``&&``, its vendor header lines (Pason's
``1984PASON/EDR``) and kept data lines, each value's text as received unless converted, ``!!``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from witskit.errors import ConversionError, EncodeError, UsageError
from witskit.pipeline.base import LiveSink
from witskit.protocol import DecodedFrame
from witskit.protocol.limits import DEFAULT_NULL_VALUES
from witskit.transport.options import URLOptions, redact_url
from witskit.transport.relay import (
    DEFAULT_MAX_CONSUMERS,
    DEFAULT_OUTLET_QUEUE,
    RelayLink,
    RelayServer,
    RelayStats,
)

__all__ = ["RELAY_SCHEMES", "RelaySink", "RelayView", "check_relay_url"]

#: The sink schemes of the relay.
RELAY_SCHEMES = ("wits-serve", "wits-serve+tls", "wits-push", "wits-push+tls", "serial")

#: What every relay URL takes: what its consumers see.
_VIEW_OPTIONS = (
    "name",
    "records",
    "codes",
    "remap",
    "units",
    "crlf",
    "max_rate",
    "source",
    "mode",
    "queue_size",
)
_SERVE_OPTIONS = (*_VIEW_OPTIONS, "allow", "max_consumers")
_PUSH_OPTIONS = (*_VIEW_OPTIONS, "connect_timeout")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "wits-serve": _SERVE_OPTIONS,
    "wits-serve+tls": (
        *_SERVE_OPTIONS,
        "cert",
        "key",
        "key_password",
        "client_ca",
        "require_client_cert",
        "tls_handshake_timeout",
    ),
    "wits-push": _PUSH_OPTIONS,
    "wits-push+tls": (*_PUSH_OPTIONS, "ca", "cert", "key", "key_password", "hostname"),
    "serial": (*_VIEW_OPTIONS, "baud", "bytesize", "parity", "stopbits"),
}

#: Pason's vendor line (record 19, item 84, ``1984PASON/EDR``) heads every record's frame: it goes
#: with the frame, never filtered or remapped, as the decoder keeps other vendor header lines.
_VENDOR_CODE = b"1984"

_NULLS = frozenset(DEFAULT_NULL_VALUES)


def _codes(query: URLOptions) -> frozenset[bytes] | None:
    text = query.text("codes")
    if text is None:
        return None
    codes = [c.strip() for c in text.split(",")]
    if not all(len(c) == 4 and c.isascii() and c.isdigit() for c in codes):
        raise query.bad("codes", "is not a comma-separated list of 4-digit codes (codes=0108,0110)")
    return frozenset(c.encode() for c in codes)


def _remap(query: URLOptions) -> dict[bytes, bytes]:
    text = query.text("remap")
    pairs: dict[bytes, bytes] = {}
    for entry in text.split(",") if text else ():
        old, colon, new = entry.strip().partition(":")
        if not colon or not all(len(c) == 4 and c.isascii() and c.isdigit() for c in (old, new)):
            raise query.bad("remap", "is not FROM:TO pairs of 4-digit codes (remap=0141:0108)")
        if old.encode() in pairs:
            raise query.bad("remap", f"maps {old} twice")
        pairs[old.encode()] = new.encode()
    return pairs


def _eol(raw: bytes) -> bytes:
    """The line ending a frame was sent with (CRLF, LF or CR)."""
    end = raw.find(b"&&") + 2
    if raw[end : end + 2] == b"\r\n":
        return b"\r\n"
    return raw[end : end + 1] if raw[end : end + 1] in (b"\n", b"\r") else b"\r\n"


class RelayView:
    """What one relay output's consumers see: the filters, remapping, units and framing of its URL.

    :meth:`render` turns a decoded frame into the bytes to send (``None``: not sent). Options come
    from the URL's query (see the module docstring); a bad one is a
    :class:`~witskit.errors.UsageError` naming it.
    """

    def __init__(self, query: URLOptions) -> None:
        self.records = frozenset(query.integers("records", range(1, 100)) or ()) or None
        self.codes = _codes(query)
        self.remap = _remap(query)
        self.to_metric = query.choice("units", {"metric": True, "fps": False})
        self.crlf = bool(query.flag("crlf"))
        rate = query.number("max_rate")
        self.min_interval = 1.0 / rate if rate is not None else 0.0
        self.source = query.text("source")
        self.request_mode = query.choice("mode", {"stream": False, "request": True}) or False
        #: Frames not sent: filtered out whole, or over max_rate.
        self.filtered = 0
        self.rate_limited = 0
        self._sent_at: dict[tuple[str | None, bytes], float] = {}
        self._latest: dict[tuple[str | None, bytes], bytes] = {}
        self._passes_raw = self.codes is None and not self.remap and self.to_metric is None and not self.crlf

    def keep(self, source: str | None, record: bytes, data: bytes) -> None:
        """Remember ``data`` as the latest frame of ``record`` from ``source`` (request mode)."""
        self._latest[(source, record)] = data

    def latest(self) -> Iterable[bytes]:
        """The latest frame of each source and record: a send-and-receive EDR's answer."""
        return list(self._latest.values())

    def render(self, frame: DecodedFrame) -> tuple[bytes, bytes] | None:
        """(record key, bytes to send) for ``frame``, or ``None`` when this view sends nothing of it."""
        if self.source is not None and frame.source != self.source:
            return None
        lines = frame.frame.lines
        record = next((line[:2] for line in lines if line[:4] != _VENDOR_CODE and line[:4].isdigit()), b"")
        if self.min_interval:
            key = (frame.source, record)
            now = time.monotonic()
            if now - self._sent_at.get(key, -math.inf) < self.min_interval:
                self.rate_limited += 1
                return None
        data = self._bytes(frame, lines)
        if data is None:
            self.filtered += 1
            return None
        if self.min_interval:
            self._sent_at[(frame.source, record)] = now
        return record, data

    def _bytes(self, frame: DecodedFrame, lines: Sequence[bytes]) -> bytes | None:
        records = self.records
        raw = frame.frame.raw
        eol = b"\r\n" if self.crlf else _eol(raw)
        if self._passes_raw and (
            records is None
            or all(
                not line[:4].isdigit() or line[:4] == _VENDOR_CODE or int(line[:2]) in records
                for line in lines
            )
        ):
            return raw + eol  # the EDR's own bytes (the parser keeps them up to the "!!")
        out = [b"&&"]
        kept = 0
        for line in lines:
            code = line[:4]
            if len(code) < 4 or not code.isdigit() or code == _VENDOR_CODE:
                out.append(line)  # a vendor header line goes with its frame
                continue
            if records is not None and int(code[:2]) not in records:
                continue
            if self.codes is not None and code not in self.codes:
                continue
            value = line[4:]
            if self.to_metric is not None:
                value = self._convert(frame, code.decode(), value)
            out.append(self.remap.get(code, code) + value)
            kept += 1
        if not kept:
            return None
        out.append(b"!!")
        return eol.join(out) + eol

    def _convert(self, frame: DecodedFrame, code: str, value: bytes) -> bytes:
        """``value`` of ``code`` in the wanted unit system; as received when it cannot be converted
        (text, a null, an unknown code, a unit without a counterpart)."""
        from witskit.protocol.encoder import format_value
        from witskit.units import convert

        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return value
        symbol = frame.symbols.get(code)
        if symbol is None or not math.isfinite(number) or number in _NULLS:
            return value
        have, want = frame.unit(code), symbol.unit(bool(self.to_metric))
        if have == want:
            return value
        try:
            converted = convert(number, have, want)
        except ConversionError:
            return value
        # As many decimals as were sent (at least two): a converted value claims no more precision.
        decimals = max(len(text.partition(b".")[2]), 2)
        result: float | int = round(converted) if symbol.data_type.is_integer else round(converted, decimals)
        try:
            return format_value(code, result).encode()
        except EncodeError:
            return value


def _tls_server(query: URLOptions, options: dict[str, Any]) -> Any:
    from witskit.transport.tls import server_context

    cert = query.text("cert")
    if cert is None:
        raise UsageError(f"{query.url}: wits-serve+tls:// needs cert= (the server certificate, PEM)")
    return server_context(
        cert,
        query.text("key"),
        client_ca_file=query.text("client_ca"),
        require_client_cert=bool(query.flag("require_client_cert")),
        key_password=options.pop("key_password", None) or query.secret("key_password"),
    )


def _tls_client(query: URLOptions, options: dict[str, Any]) -> Any:
    from witskit.transport.tls import client_context

    return client_context(
        query.text("ca"),
        query.text("cert"),
        query.text("key"),
        key_password=options.pop("key_password", None) or query.secret("key_password"),
    )


def check_relay_url(url: str) -> None:
    """Check a relay sink URL and its options (nothing is opened, no certificate is read)."""
    _parse(url, build=False)


def _parse(url: str, *, build: bool, options: dict[str, Any] | None = None) -> tuple[RelayView, Any]:
    from urllib.parse import urlsplit

    from witskit.transport.urls import host_port

    options = dict(options or {})
    scheme = urlsplit(url).scheme.lower()
    query = URLOptions(url, _OPTIONS[scheme])
    view = RelayView(query)
    parts = urlsplit(url)
    # Named without its query: certificate paths and filters make a log line unreadable.
    name = query.text("name") or redact_url(f"{parts.scheme}://{parts.netloc}{parts.path}")
    queue_size = query.count("queue_size") or DEFAULT_OUTLET_QUEUE
    answer = view.latest if view.request_mode else None
    if scheme.startswith("wits-serve"):
        host, port = host_port(url, listen=True)
        allow = query.text("allow")
        if allow is not None:
            from witskit.transport.listener import parse_allowlist

            try:
                parse_allowlist(allow)
            except UsageError as exc:
                raise UsageError(f"{query.url}: {exc}") from None
        max_consumers = query.count("max_consumers") or DEFAULT_MAX_CONSUMERS
        handshake = query.seconds("tls_handshake_timeout") if "tls_handshake_timeout" in query else None
        if not build:
            return view, None
        tls = _tls_server(query, options) if scheme.endswith("+tls") else None
        server = RelayServer(
            host,
            port,
            name=name,
            ssl_context=tls,
            allowlist=allow,
            max_consumers=max_consumers,
            queue_size=queue_size,
            answer=answer,
            **({"tls_handshake_timeout": handshake} if handshake else {}),
        )
        return view, server
    if scheme.startswith("wits-push"):
        from witskit.transport.relay import tcp_opener

        host, port = host_port(url, listen=False)
        timeout = query.seconds("connect_timeout") or 10.0
        hostname = query.text("hostname")
        if not build:
            return view, None
        tls = _tls_client(query, options) if scheme.endswith("+tls") else None
        opener = tcp_opener(
            host, port, name=name, ssl_context=tls, server_hostname=hostname, connect_timeout=timeout
        )
        return view, RelayLink(name, opener, queue_size=queue_size, answer=answer, retry=options.get("retry"))
    from witskit.transport.serial import line_settings, open_serial, serial_port

    device = serial_port(url)
    line = line_settings(query)
    if not build:
        return view, None
    try:
        import serial_asyncio_fast  # noqa: F401 - checked now, not at the first reconnect
    except ImportError as exc:
        raise UsageError(
            f"{name}: serial output needs pyserial-asyncio-fast: pip install 'witskit[serial]'"
        ) from exc

    async def open_port() -> Any:
        return await open_serial(name, device, **line)

    return view, RelayLink(name, open_port, queue_size=queue_size, answer=answer, retry=options.get("retry"))


class RelaySink(LiveSink):
    """A relay output (see the module docstring): consumers get each frame as it is received.

    ``start()`` listens (``wits-serve://``: a port in use is a
    :class:`~witskit.errors.ConnectError`) or starts connecting (``wits-push://``, ``serial://``,
    retried in the background). ``offer`` never waits. ``stats`` counts consumers, frames sent
    and dropped (a consumer's queue full), frames filtered and rate-limited.
    """

    def __init__(self, url: str, **options: Any) -> None:
        unknown = set(options) - {"key_password", "retry"}
        if unknown:
            raise UsageError(
                f"{redact_url(url)}: unknown option(s) {', '.join(sorted(unknown))} for a relay sink"
            )
        self.url = url
        self.view, self.outlet = _parse(url, build=True, options=options)
        self.name: str = self.outlet.name

    @property
    def port(self) -> int:
        """The listening port of a ``wits-serve://`` sink (the real one with port 0, once started)."""
        if not isinstance(self.outlet, RelayServer):
            raise UsageError(f"{self.name}: only wits-serve:// listens on a port")
        return self.outlet.port

    @property
    def stats(self) -> RelayStats:
        """The outlet's counters (consumers, connects, refused, frames sent and dropped, ...)."""
        stats: RelayStats = self.outlet.stats
        return stats

    def counters(self) -> dict[str, int]:
        """Every counter of this sink by name, for metrics (the view's filtered and rate-limited too)."""
        return {
            **self.stats.as_dict(),
            "frames_filtered": self.view.filtered,
            "frames_rate_limited": self.view.rate_limited,
        }

    async def start(self) -> None:
        """Listen, or start connecting."""
        await self.outlet.start()

    def offer(self, frame: DecodedFrame) -> None:
        """Send ``frame`` to every consumer, as this sink's view renders it (never waits)."""
        rendered = self.view.render(frame)
        if rendered is None:
            return
        record, data = rendered
        if self.view.request_mode:
            self.view.keep(frame.source, record, data)
        else:
            self.outlet.offer(data)

    async def aclose(self) -> None:
        """Close the server or the link, and every consumer connection."""
        await self.outlet.aclose()
