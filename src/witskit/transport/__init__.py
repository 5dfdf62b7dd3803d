"""Asyncio transports around the sans-I/O parser: TCP, TLS, serial, files; retry and breaker."""

from witskit.transport.error_handling import ErrorCategory, ErrorHandler, ErrorSeverity, WitsError
from witskit.transport.resilience import CircuitBreaker, CircuitState, RetryPolicy

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "ErrorCategory",
    "ErrorHandler",
    "ErrorSeverity",
    "RetryPolicy",
    "WitsError",
]
