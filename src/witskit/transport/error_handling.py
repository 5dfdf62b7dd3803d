"""Error records, counted per category, with callbacks: how transports report what went wrong.

:class:`WitsError` is a *record* of something that went wrong (a dropped link, a garbage run, a
refused TLS handshake), not an exception: exceptions live in :mod:`witskit.errors`. Transports hand
records to an :class:`ErrorHandler`, which logs them (never with secrets: messages are built by
WitsKit from endpoints and counts, not from user credentials), counts them per category and calls
the callbacks registered for the category (metrics, alerts, the dashboard).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

__all__ = ["ErrorCategory", "ErrorHandler", "ErrorSeverity", "WitsError", "error_handler"]

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


#: A process-wide handler for code that has no other (the plan's ``error_handler``).
error_handler = ErrorHandler()
