"""Every exception WitsKit raises, in one tree.

Each error says whose fault it is: the peer's (bad bytes on the wire), the caller's (misuse of the
API, bad settings) or the environment's (a network, a disk, a database). Anything else escaping
WitsKit is a bug.

::

    WitsKitError
    ├── ProtocolError (ValueError)        bytes from the peer are not valid WITS Level 0
    │   ├── FrameError                    one malformed frame or run of garbage (also a parser event)
    │   └── DecodeError                   a value that does not fit its item (strict mode)
    ├── EncodeError (ValueError)          a value the caller asked to send cannot be written as WITS
    ├── SymbolError (ValueError)          a dictionary overlay file is malformed
    ├── ConversionError (ValueError)      a unit is unknown or two units are incompatible
    ├── UsageError (ValueError)           any other misuse of the API by the caller
    ├── ConfigError (ValueError)          settings or a pipeline file are invalid (one line per field)
    ├── TransportError                    the network, a serial port or a file failed us
    │   ├── ConnectError (ConnectionError)  the peer could not be reached (after the retry policy)
    │   ├── TLSError (ConnectionError)      the TLS handshake or certificate check failed
    │   ├── SerialPortError (ConnectionError)  the serial port could not be opened or went away
    │   ├── ConnectionLost (ConnectionError)   an established link dropped or went silent
    │   │   └── ConnectionClosed             the peer closed the link cleanly (end of stream)
    │   ├── SourceFileError (OSError)       a file source cannot be read
    │   └── BrokerError                     NATS did not take or answer (witskit.transport.jetstream)
    ├── CircuitOpenError                  a circuit breaker is open: the call was not attempted
    ├── StorageError                      a SQL store failed (the full subtree: witskit.storage.errors)
    │   ├── StorageConfigError (ValueError)       permanent: the settings are wrong
    │   └── DatabaseUnavailable (ConnectionError)  transient: the database cannot serve us now
    ├── SpoolError                        the spool's directory or disk failed (witskit.storage.spool)
    │   ├── SpoolFullError                  append refused: the spool is at its max_bytes
    │   └── SpoolCorruptError               the spool holds files of a newer on-disk format
    ├── SpoolRecordError                  a spool record cannot be read (witskit.pipeline.records)
    ├── ReaderFailed                      an import's file reader failed (witskit.storage.file_import)
    ├── EnvelopeError                     a fleet stream's message is no frame (witskit.pipeline.envelope)
    └── AuthError                         a token or credential was refused (witskit.security.auth)
        └── LoginRefused, RefreshReused, LoginThrottled   (witskit.service.identity)

The last five branches are defined in their own layers and imported from the module named; this
module imports nothing, so every layer can import it (docs/architecture.md).

``ProtocolError`` and the caller's errors derive from :class:`ValueError` too, so code written for
witskit 0.1 (which raised ``ValueError`` in strict mode) keeps working.
"""

from __future__ import annotations

__all__ = [
    "CircuitOpenError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionLost",
    "ConversionError",
    "DecodeError",
    "EncodeError",
    "FrameError",
    "ProtocolError",
    "SerialPortError",
    "SourceFileError",
    "SymbolError",
    "TLSError",
    "TransportError",
    "UsageError",
    "WitsKitError",
]


class WitsKitError(Exception):
    """Base of every exception WitsKit raises."""


class ProtocolError(WitsKitError, ValueError):
    """Bytes received from a peer are not valid WITS Level 0: the peer's fault."""


class FrameError(ProtocolError):
    """A malformed frame, or a run of bytes outside any frame.

    The streaming parser *returns* these as events (in stream order, between the good frames) so a
    live feed goes on; strict callers may raise them. Each one says what was wrong, where it came
    from (``source``), the byte ``offset`` in the stream where the bad bytes start, the 1-based
    ``line`` number there, and an ``excerpt`` of the offending bytes.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        offset: int = 0,
        line: int = 0,
        excerpt: bytes = b"",
        kind: str = "malformed",
    ) -> None:
        self.reason = reason
        self.source = source
        self.offset = offset
        self.line = line
        self.excerpt = excerpt
        self.kind = kind
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The full human-readable message: what, where, and the offending bytes."""
        where = f"source {self.source!r}, " if self.source is not None else ""
        return f"{self.reason} ({where}line {self.line}, byte offset {self.offset}): {self.excerpt!r}"

    def __repr__(self) -> str:
        return (
            f"FrameError(kind={self.kind!r}, offset={self.offset}, line={self.line}, reason={self.reason!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameError):
            return NotImplemented
        return (self.kind, self.reason, self.source, self.offset, self.line, self.excerpt) == (
            other.kind,
            other.reason,
            other.source,
            other.offset,
            other.line,
            other.excerpt,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.offset, self.line))


class DecodeError(ProtocolError):
    """A data line that cannot be decoded as its item requires (raised in strict mode)."""


class EncodeError(WitsKitError, ValueError):
    """A value cannot be written as a WITS data line (the caller's fault)."""


class SymbolError(WitsKitError, ValueError):
    """A dictionary overlay CSV is malformed; the message names the file, line and column."""


class ConversionError(WitsKitError, ValueError):
    """A unit is not known, or the two units measure different things."""


class UsageError(WitsKitError, ValueError):
    """The API was called with arguments it cannot accept."""


class ConfigError(WitsKitError, ValueError):
    """Settings or a pipeline file are invalid; the message has one line per bad field."""


class TransportError(WitsKitError):
    """A transport (socket, TLS, serial port, file) failed; the message names the endpoint."""


class ConnectError(TransportError, ConnectionError):
    """The peer could not be reached (refused, unresolvable, invalid port, timed out)."""


class TLSError(TransportError, ConnectionError):
    """The TLS handshake failed: untrusted certificate, wrong host name, protocol too old."""


class SerialPortError(TransportError, ConnectionError):
    """The serial port could not be opened, or it went away (adapter unplugged)."""


class ConnectionLost(TransportError, ConnectionError):
    """An established link was closed by the peer, reset, or silent past the idle timeout."""


class ConnectionClosed(ConnectionLost):
    """The peer closed the link cleanly (an orderly end of stream, not a reset or a timeout)."""


class SourceFileError(TransportError, OSError):
    """A file source cannot be opened or read."""


class CircuitOpenError(WitsKitError):
    """A circuit breaker is open, so the call was refused without being attempted.

    The message matches the plan's sample (``"Circuit breaker is OPEN"``) and adds when the next
    trial call will be let through.
    """
