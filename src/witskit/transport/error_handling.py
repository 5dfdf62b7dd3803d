"""Error records, counted per category, with callbacks: the plan's view of what went wrong.

:class:`WitsError` is a *record* of something that went wrong (a dropped link, a garbage run, a
refused TLS handshake), not an exception: exceptions live in :mod:`witskit.errors`. Transports do not
write records: they report through one channel, the events they already produce (a
:class:`~witskit.errors.FrameError` in the data stream for bad bytes, a
:class:`~witskit.transport.LinkStatus` to ``on_status`` for a link's news), and :func:`error_record`
derives the record from either. An :class:`ErrorHandler` given to a transport (``error_handler=``)
is one more listener of those events (:meth:`ErrorHandler.observe`); it logs the records (never with
secrets: messages are built by WitsKit from endpoints and counts, not from user credentials), counts
them per category and calls the callbacks registered for the category (metrics, alerts, the
dashboard).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from witskit.errors import FrameError

__all__ = ["ErrorCategory", "ErrorHandler", "ErrorSeverity", "WitsError", "error_handler", "error_record"]

log = logging.getLogger("witskit.errors")


class ErrorSeverity(Enum):
    """How bad it is."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ErrorCategory(Enum):
    """What kind of thing went wrong."""

    CONNECTION = "connection"
    PARSING = "parsing"
    VALIDATION = "validation"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    SYSTEM = "system"


_LEVELS = {
    ErrorSeverity.LOW: logging.INFO,
    ErrorSeverity.MEDIUM: logging.WARNING,
    ErrorSeverity.HIGH: logging.ERROR,
    ErrorSeverity.CRITICAL: logging.CRITICAL,
}


@dataclass
class WitsError:
    """One thing that went wrong, with enough context to act on it."""

    category: ErrorCategory
    severity: ErrorSeverity
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    source: str | None = None


Callback = Callable[[WitsError], Awaitable[None] | None]


class _Status(Protocol):
    """What :func:`error_record` reads of a :class:`~witskit.transport.LinkStatus` (the transport
    layer imports this module, so the type is described rather than imported)."""

    @property
    def source(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def kind(self) -> str | None: ...


#: ``LinkStatus.kind`` -> the record's category and severity. A clean close by the peer is news,
#: not an error; a link of ours that failed or dropped is; a listener's peer that dropped is one of
#: many; a refused peer (allowlist, limits) or a failed TLS handshake is someone knocking.
STATUS_RECORDS: dict[str, tuple[ErrorCategory, ErrorSeverity]] = {
    "closed": (ErrorCategory.CONNECTION, ErrorSeverity.LOW),
    "lost": (ErrorCategory.CONNECTION, ErrorSeverity.HIGH),
    "peer-lost": (ErrorCategory.CONNECTION, ErrorSeverity.MEDIUM),
    "refused": (ErrorCategory.AUTHORIZATION, ErrorSeverity.HIGH),
    "tls": (ErrorCategory.AUTHENTICATION, ErrorSeverity.HIGH),
}


def error_record(event: FrameError | _Status) -> WitsError | None:
    """The record a transport's event stands for: PARSING for a FrameError, the category of
    :data:`STATUS_RECORDS` for a LinkStatus that carries an error, ``None`` for good news."""
    if isinstance(event, FrameError):
        return WitsError(
            ErrorCategory.PARSING,
            ErrorSeverity.MEDIUM,
            event.message,
            details={"kind": event.kind, "offset": event.offset, "line": event.line},
            source=event.source,
        )
    if event.error is None:
        return None
    category, severity = STATUS_RECORDS.get(event.kind or "lost", STATUS_RECORDS["lost"])
    return WitsError(category, severity, event.error, source=event.source)


class ErrorHandler:
    """Counts error records per category and fans them out to callbacks.

    A failing callback is logged and never stops the others (or the transport that reported).
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.error_callbacks: dict[ErrorCategory, list[Callback]] = {}
        self.error_counts: dict[ErrorCategory, int] = {}
        self._log = logger or log

    def register_callback(self, category: ErrorCategory, callback: Callback) -> None:
        """Call ``callback(error)`` (sync or async) for every error of ``category``."""
        self.error_callbacks.setdefault(category, []).append(callback)

    def record(self, error: WitsError) -> list[Awaitable[None]]:
        """Log and count synchronously; return the awaitables of async callbacks (if any)."""
        self._log.log(
            _LEVELS[error.severity],
            "%s [%s] %s",
            error.category.value,
            error.source or "-",
            error.message,
            extra={
                "category": error.category.value,
                "severity": error.severity.value,
                "details": error.details,
            },
        )
        self.error_counts[error.category] = self.error_counts.get(error.category, 0) + 1
        pending: list[Awaitable[None]] = []
        for callback in self.error_callbacks.get(error.category, ()):
            try:
                result = callback(error)
            except Exception:
                self._log.exception("error callback %r failed", callback)
                continue
            if inspect.isawaitable(result):
                pending.append(result)
        return pending

    def observe(self, event: FrameError | _Status) -> list[Awaitable[None]]:
        """Record what a transport's event stands for (:func:`error_record`), if anything."""
        record = error_record(event)
        return self.record(record) if record is not None else []

    def on_status(self, status: _Status) -> None:
        """An ``on_status`` callback: ``TCPSource(..., on_status=handler.on_status)`` records a
        link's problems as ``error_handler=handler`` does. Async callbacks are not awaited here."""
        for awaitable in self.observe(status):
            _close_unawaited(awaitable)

    async def handle(self, event: FrameError | _Status) -> None:
        """Record the event and run every callback for its category, awaiting async ones."""
        record = error_record(event)
        if record is not None:
            await self.handle_error(record)

    async def handle_error(self, error: WitsError) -> None:
        """Log, count and run every callback for the error's category."""
        for awaitable in self.record(error):
            try:
                await awaitable
            except Exception:
                self._log.exception("error callback failed")

    def get_error_stats(self) -> dict[str, int]:
        """Counts per category name."""
        return {cat.value: n for cat, n in self.error_counts.items()}


def _close_unawaited(awaitable: Awaitable[None]) -> None:
    """A coroutine a synchronous caller cannot await: closed, so it warns of nothing."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


#: A process-wide handler for code that has no other (the plan's ``error_handler``).
error_handler = ErrorHandler()
