"""Serial-port links to a rig recorder (``serial:///dev/ttyUSB0?baud=9600``).

A :class:`SerialSource` is a :class:`~witskit.transport.base.LinkSource`: the read-parse loop,
handshake keep-alive, idle timeout, partial frame at a drop and reconnect with backoff are the shared
ones; this module only opens the port and translates pyserial's errors.

Unplugging a USB-serial adapter makes the read fail (``SerialPortError``); the pending partial frame
becomes a :class:`~witskit.errors.FrameError` and the link retries opening the port, with backoff,
until the adapter is back (opening a missing device is a ``SerialPortError`` too, which the retry
policy retries).

pyserial is an optional dependency (``pip install 'witskit[serial]'``); it is imported when a port
is opened, so ``import witskit.transport`` works without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from witskit.errors import SerialPortError, TransportError, UsageError
from witskit.transport.base import LinkSource
from witskit.transport.link_options import CLIENT_OPTIONS, client_options
from witskit.transport.options import URLOptions

__all__ = [
    "BYTESIZES",
    "LINE_OPTIONS",
    "PARITIES",
    "STOPBITS",
    "URL_OPTIONS",
    "SerialSource",
    "line_settings",
    "map_serial_errors",
    "open_serial",
    "serial_port",
]

#: Data bits per character pyserial (and UARTs) support.
BYTESIZES = (5, 6, 7, 8)

#: None, Even, Odd, Mark, Space: pyserial's ``PARITY_*`` values.
PARITIES = ("N", "E", "O", "M", "S")

#: pyserial's ``STOPBITS_*`` values (1.5 exists on some UARTs for 5-bit characters).
STOPBITS = (1, 1.5, 2)

_EXTRA_HINT = "serial ports need pyserial-asyncio-fast: pip install 'witskit[serial]'"

#: The line settings in a ``serial://`` URL's query (a source's or the relay's output).
LINE_OPTIONS = ("baud", "bytesize", "parity", "stopbits")

#: Query keys of ``serial://`` URLs: the line settings, then the options every client link takes.
URL_OPTIONS = ("name", *LINE_OPTIONS, *(o for o in CLIENT_OPTIONS if o != "name"))


# pyserial lets termios.error (not an OSError) escape when it configures the line.
_TERMIOS_ERRORS: tuple[type[Exception], ...]
try:
    import termios

    _TERMIOS_ERRORS = (termios.error,)
except ImportError:  # pragma: no cover - Windows: pyserial uses win32 calls there
    _TERMIOS_ERRORS = ()


@contextlib.contextmanager
def map_serial_errors(name: str, *, opening: bool) -> Iterator[None]:
    """Translate pyserial's and the OS's errors into :class:`~witskit.errors.SerialPortError`.

    ``serial.SerialException`` derives from ``IOError`` (that is, :class:`OSError`), so catching
    OSError maps it without importing pyserial here. Settings the port or pyserial cannot take
    (pyserial's :class:`ValueError`, a driver's ``EINVAL`` from ``tcsetattr``) are the caller's
    fault, a :class:`~witskit.errors.UsageError`, which the retry policy does not retry.
    """
    try:
        yield
    except TransportError:
        raise
    except OSError as exc:
        what = "cannot open the port" if opening else "the port went away"
        raise SerialPortError(f"{name}: {what} ({exc})") from exc
    except ValueError as exc:
        raise UsageError(f"{name}: invalid serial settings ({exc})") from exc
    except _TERMIOS_ERRORS as exc:
        code, *rest = (*exc.args, "")
        if code == errno.EINVAL:
            raise UsageError(f"{name}: the port rejects these line settings ({rest[0] or exc})") from exc
        raise SerialPortError(f"{name}: cannot configure the port ({exc})") from exc


class _SerialReader(asyncio.StreamReader):
    """A StreamReader whose read errors are SerialPortErrors naming the port.

    The serial transport hands pyserial's exception to the reader when the device disappears; the
    shared loop would report it as a generic ConnectionLost, and "the port went away" is what a
    user of a USB adapter needs to read.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._port_name = name

    async def read(self, n: int = -1) -> bytes:
        with map_serial_errors(self._port_name, opening=False):
            return await super().read(n)


def _check_settings(baudrate: int, bytesize: int, parity: str, stopbits: float) -> str:
    """Validate line settings; return the parity letter upper-cased, or raise UsageError."""
    if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate <= 0:
        raise UsageError(f"baud rate {baudrate!r} is not a positive integer")
    if not isinstance(bytesize, int) or isinstance(bytesize, bool) or bytesize not in BYTESIZES:
        raise UsageError(f"bytesize {bytesize!r} is not one of 5, 6, 7, 8")
    letter = parity.upper() if isinstance(parity, str) else parity
    if letter not in PARITIES:
        raise UsageError(f"parity {parity!r} is not one of N, E, O, M, S")
    if stopbits not in STOPBITS or isinstance(stopbits, bool):
        raise UsageError(f"stopbits {stopbits!r} is not one of 1, 1.5, 2")
    return str(letter)


def serial_port(url: str) -> str:
    """The device of a ``serial://`` URL (``serial:///dev/ttyUSB0``, or ``serial://COM3``)."""
    parts = urlsplit(url)
    if parts.scheme != "serial":
        raise UsageError(f"{url!r} is not a serial:// URL")
    if parts.fragment:
        raise UsageError(f"{url}: unexpected fragment '#{parts.fragment}'")
    # serial:///dev/ttyUSB0 has an empty host; serial://COM3 puts the port in the host part.
    port = unquote(parts.netloc + parts.path)
    if not port:
        raise UsageError(f"{url}: names no serial port (expected serial:///dev/ttyUSB0)")
    return port


def line_settings(query: URLOptions) -> dict[str, Any]:
    """The :data:`LINE_OPTIONS` given in ``query`` as keyword arguments (``baudrate``, ``parity``, ...)."""
    kwargs: dict[str, Any] = {}
    baud = query.count("baud")
    if baud is not None:
        kwargs["baudrate"] = baud
    bytesize = query.choice("bytesize", {str(n): n for n in BYTESIZES})
    if bytesize is not None:
        kwargs["bytesize"] = bytesize
    parity = query.choice("parity", {p: p for p in (*PARITIES, *map(str.lower, PARITIES))})
    if parity is not None:
        kwargs["parity"] = parity
    stopbits = query.choice("stopbits", {"1": 1, "1.5": 1.5, "2": 2})
    if stopbits is not None:
        kwargs["stopbits"] = stopbits
    return kwargs


class SerialSource(LinkSource):
    """A link to a rig recorder on a serial port (RS-232/RS-422 via a UART or a USB adapter).

    ``port`` is a device path (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``; a stable by-id path or
    udev symlink survives the adapter coming back under another number). The line settings default
    to 9600 8N1, the usual WITS Level 0 setting. Other keyword options are those of
    :class:`~witskit.transport.base.LinkSource` (``retry``, ``reconnect``, ``handshake``,
    ``handshake_interval``, ``idle_timeout``, ``on_status``, ``parser_options``, ...).

    Posix only: the asyncio serial backend needs a file descriptor the event loop can watch.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        name: str | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(port, str) or not port:
            raise UsageError(f"serial port {port!r} is not a device name")
        self.port = port
        self.parity = _check_settings(baudrate, bytesize, parity, stopbits)
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.stopbits = stopbits
        super().__init__(name or f"serial://{port}", **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SerialSource:
        """A source from ``serial:///dev/ttyUSB0?baud=9600&bytesize=8&parity=N&stopbits=1``.

        The query also takes the client-link options of :func:`~witskit.transport.urls.open_source`
        (``handshake=0|1``, ``handshake_interval=SECONDS`` with 0 for "at connect only",
        ``idle_timeout=SECONDS`` with 0 for none, ``reconnect=0|1``, ``request=``,
        ``connect_timeout=``), parsed by the same code as for ``tcp://``. An unknown key, a key
        given twice or a bad value raises :class:`~witskit.errors.UsageError`; keyword ``options``
        override the query, as in ``open_source``.
        """
        port = serial_port(url)
        query = URLOptions(url, URL_OPTIONS)
        kwargs = client_options(query)
        kwargs.update(line_settings(query))
        kwargs.update(options)
        return cls(port, **kwargs)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await open_serial(
            self.name,
            self.port,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
        )


async def open_serial(
    name: str, port: str, *, baudrate: int = 9600, bytesize: int = 8, parity: str = "N", stopbits: float = 1
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``port`` as an asyncio stream pair (a source reads it, the relay writes to it).

    Errors are :class:`~witskit.errors.SerialPortError` (cannot open: retried by the callers'
    policies) or :class:`~witskit.errors.UsageError` (settings the port rejects, or pyserial
    missing), naming ``name``.
    """
    parity = _check_settings(baudrate, bytesize, parity, stopbits)
    try:
        import serial_asyncio_fast
    except ImportError as exc:  # the optional extra is not installed; retrying will not help
        raise UsageError(f"{name}: {_EXTRA_HINT}") from exc
    loop = asyncio.get_running_loop()
    # What serial_asyncio_fast.open_serial_connection does, with our reader class so that a
    # vanished device reads as a SerialPortError rather than a bare pyserial exception.
    reader = _SerialReader(name)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    with map_serial_errors(name, opening=True):
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop,
            lambda: protocol,
            port,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            # flock the port: two programs on one port would each get part of the bytes, and
            # both would report garbage. A second WitsKit on the port fails and retries.
            exclusive=True,
        )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
