"""Asyncio transports around the sans-I/O parser: TCP, TLS, serial, files; retry and breaker.

``open_source(url)`` picks a source by URL scheme (``tcp://``, ``tls://``, ``tcp-listen://``,
``tls-listen://``, ``serial://``, ``file://``). The source classes are imported on first use, so
``import witskit.transport`` stays light and never needs pyserial.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from witskit._lazy import lazy_exports
from witskit.transport.error_handling import ErrorCategory, ErrorHandler, ErrorSeverity, WitsError
from witskit.transport.resilience import CircuitBreaker, CircuitState, RetryPolicy

if TYPE_CHECKING:
    from witskit.transport.async_tcp_reader import AsyncTCPReader
    from witskit.transport.base import LinkSource, LinkState, LinkStatus, Source, SourceEvent, map_errors
    from witskit.transport.file import FileSource
    from witskit.transport.listener import ListenerSource
    from witskit.transport.secure_tcp_reader import SecureTCPReader
    from witskit.transport.serial import SerialSource
    from witskit.transport.tcp import TCPSource
    from witskit.transport.tls import client_context, server_context
    from witskit.transport.urls import open_source

__all__ = [
    "AsyncTCPReader",
    "CircuitBreaker",
    "CircuitState",
    "ErrorCategory",
    "ErrorHandler",
    "ErrorSeverity",
    "FileSource",
    "LinkSource",
    "LinkState",
    "LinkStatus",
    "ListenerSource",
    "RetryPolicy",
    "SecureTCPReader",
    "SerialSource",
    "Source",
    "SourceEvent",
    "TCPSource",
    "WitsError",
    "client_context",
    "map_errors",
    "open_source",
    "server_context",
]

# name -> module, for names imported on first use (PEP 562).
_LAZY = {
    "AsyncTCPReader": "witskit.transport.async_tcp_reader",
    "FileSource": "witskit.transport.file",
    "LinkSource": "witskit.transport.base",
    "LinkState": "witskit.transport.base",
    "LinkStatus": "witskit.transport.base",
    "ListenerSource": "witskit.transport.listener",
    "SecureTCPReader": "witskit.transport.secure_tcp_reader",
    "SerialSource": "witskit.transport.serial",
    "Source": "witskit.transport.base",
    "SourceEvent": "witskit.transport.base",
    "TCPSource": "witskit.transport.tcp",
    "client_context": "witskit.transport.tls",
    "map_errors": "witskit.transport.base",
    "open_source": "witskit.transport.urls",
    "server_context": "witskit.transport.tls",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
