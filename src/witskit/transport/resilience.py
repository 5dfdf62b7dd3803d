"""Retry with exponential backoff and jitter, and a circuit breaker: one implementation for all.

Every transport reconnects through :class:`RetryPolicy` and every storage sink guards its database
with :class:`CircuitBreaker`, so the behaviour (and its tests) exist once. Retrying is done by
tenacity, a maintained library; this module keeps the plan's names and arguments.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from witskit.errors import CircuitOpenError, UsageError

__all__ = ["CircuitBreaker", "CircuitState", "RetryPolicy"]

P = ParamSpec("P")
T = TypeVar("T")


class RetryPolicy:
    """Retry an async call with exponential backoff: ``backoff_factor * 2**n`` seconds, capped.

    ``max_attempts=None`` retries forever (what a rig connection wants). With ``jitter`` (the
    default) half of each delay is random, so a fleet of clients does not reconnect in lockstep
    after an outage. ``retry_on`` limits which exceptions are retried; others propagate at once.
    ``attempts`` counts calls made by the last :meth:`execute`.
    """

    def __init__(
        self,
        max_attempts: int | None = 3,
        backoff_factor: float = 1.0,
        max_backoff: float = 60.0,
        *,
        jitter: bool = True,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise UsageError(f"max_attempts must be at least 1 (or None for forever), got {max_attempts}")
        if backoff_factor < 0 or max_backoff < 0:
            raise UsageError("backoff_factor and max_backoff must not be negative")
        self.max_attempts = max_attempts
        self.backoff_factor = backoff_factor
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.retry_on = retry_on
        self.on_retry = on_retry
        self.attempts = 0

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, backoff_factor={self.backoff_factor}, "
            f"max_backoff={self.max_backoff}, jitter={self.jitter})"
        )

    def _retrying(self, done: int = 0) -> Any:
        import tenacity

        # ``done`` failed attempts happened before this run (a link that dropped at once): the
        # waits go on growing from there, and they count against max_attempts.
        def wait(state: tenacity.RetryCallState) -> float:
            return self.backoff(state.attempt_number + done)

        def stop(state: tenacity.RetryCallState) -> bool:
            return self.max_attempts is not None and state.attempt_number + done >= self.max_attempts

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self.on_retry is not None and state.outcome is not None:
                exc = state.outcome.exception()
                if exc is not None:
                    delay = state.next_action.sleep if state.next_action else 0.0
                    self.on_retry(state.attempt_number + done, exc, delay)

        return tenacity.AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception_type(self.retry_on),
            reraise=True,
            sleep=asyncio.sleep,
            before_sleep=before_sleep,
        )

    def delay(self, attempt: int) -> float:
        """The un-jittered delay after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff_factor * 2 ** max(attempt - 1, 0), self.max_backoff))

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failed attempts: :meth:`delay`, half of it random.

        With ``jitter`` the wait is uniform between half the delay and the delay, so it never
        exceeds ``max_backoff`` and a fleet of clients spreads out after a shared outage.
        """
        full = self.delay(failures)
        if not self.jitter:
            return full
        return full / 2 + random.uniform(0.0, full / 2)  # jitter, not cryptography

    async def execute(self, func: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``await func(*args, **kwargs)`` until it succeeds or the policy is spent.

        The last exception is re-raised unchanged when attempts run out.
        """
        return await self._run(0, lambda: func(*args, **kwargs))

    async def execute_after(self, failures: int, error: BaseException, func: Callable[[], Awaitable[T]]) -> T:
        """Like :meth:`execute`, going on after ``failures`` attempts that failed elsewhere.

        A link that connects and drops at once is such a failure: the connect succeeded, so
        :meth:`execute` knew nothing of it. This first waits as after ``failures`` failures
        (reporting ``error`` to ``on_retry``), then retries with the waits still growing; those
        earlier failures count against ``max_attempts`` (``error`` is raised when they spend it).
        """
        if failures > 0:
            if self.max_attempts is not None and failures >= self.max_attempts:
                raise error
            delay = self.backoff(failures)
            if self.on_retry is not None:
                self.on_retry(failures, error, delay)
            await asyncio.sleep(delay)
        return await self._run(failures, func)

    async def _run(self, done: int, func: Callable[[], Awaitable[T]]) -> T:
        self.attempts = 0
        async for attempt in self._retrying(done):
            with attempt:
                self.attempts += 1
                return await func()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


class CircuitState(StrEnum):
    """Where a breaker is: passing calls, refusing them, or letting one trial through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stop calling something that keeps failing; try again after ``recovery_timeout`` seconds.

    CLOSED: calls pass; ``failure_threshold`` consecutive failures of ``expected_exception`` open
    it. OPEN: calls raise :class:`~witskit.errors.CircuitOpenError` at once. After the timeout it
    is HALF_OPEN: one trial call passes; success closes it, failure opens it again. Other exceptions
    pass through without counting. ``listeners`` are told of every state change (metrics, logs).

    Async code uses :meth:`call`; code that manages its own calls (a sink's batch loop) uses
    :meth:`allow`, :meth:`record_success` and :meth:`record_failure`.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        expected_exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        *,
        name: str = "circuit",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise UsageError(f"failure_threshold must be at least 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.expected_exception = expected_exception
        self.name = name
        self._clock = clock
        self.failure_count = 0
        self.opened_at: float | None = None
        self._state = CircuitState.CLOSED
        self._trial_running = False
        self.listeners: list[Callable[[CircuitState, CircuitState], None]] = []

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name} {self.state.value} failures={self.failure_count}>"

    @property
    def state(self) -> CircuitState:
        """The current state (OPEN becomes HALF_OPEN once the recovery timeout has passed)."""
        if self._state is CircuitState.OPEN and self._timeout_passed():
            self._set(CircuitState.HALF_OPEN)
        return self._state

    def _timeout_passed(self) -> bool:
        return self.opened_at is not None and self._clock() - self.opened_at >= self.recovery_timeout

    def _set(self, new: CircuitState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        for listener in list(self.listeners):
            listener(old, new)

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when it would now)."""
        if self._state is not CircuitState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.recovery_timeout - (self._clock() - self.opened_at))

    def allow(self) -> bool:
        """May a call be made now? (In HALF_OPEN, only one trial at a time.)"""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        """The call succeeded: close the breaker."""
        self._trial_running = False
        self.failure_count = 0
        self.opened_at = None
        self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """The call failed with an expected error: count it, and open the breaker if due."""
        self._trial_running = False
        self.failure_count += 1
        if self._state is CircuitState.HALF_OPEN or self.failure_count >= self.failure_threshold:
            self.opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def _refuse(self) -> CircuitOpenError:
        return CircuitOpenError(
            f"Circuit breaker is OPEN ({self.name}: {self.failure_count} failures; "
            f"next trial in {self.retry_after():.1f} s)"
        )

    async def call(self, func: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await func(*args, **kwargs)`` through the breaker."""
        if not self.allow():
            raise self._refuse()
        try:
            result = await func(*args, **kwargs)
        except self.expected_exception:
            self.record_failure()
            raise
        except BaseException:
            self._trial_running = False
            raise
        self.record_success()
        return result
