"""RetryPolicy and CircuitBreaker: the one implementation every transport and sink uses."""

from __future__ import annotations

import asyncio

import pytest

from witskit.errors import CircuitOpenError, UsageError
from witskit.transport import CircuitBreaker, CircuitState, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing(times: int, exc: type[BaseException] = OSError):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    async def func() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc(f"failure {calls['n']}")
        return "ok"

    return func, calls


def test_retry_succeeds_after_failures() -> None:
    func, calls = failing(2)
    policy = RetryPolicy(max_attempts=3, backoff_factor=0.001)
    assert asyncio.run(policy.execute(func)) == "ok"
    assert policy.attempts == 3 == calls["n"]


def test_retry_reraises_the_last_error_when_spent() -> None:
    func, calls = failing(10)
    policy = RetryPolicy(max_attempts=3, backoff_factor=0.001)
    with pytest.raises(OSError, match="failure 3"):
        asyncio.run(policy.execute(func))
    assert calls["n"] == 3


def test_retry_does_not_retry_other_exceptions() -> None:
    func, calls = failing(10, exc=KeyError)
    policy = RetryPolicy(max_attempts=5, backoff_factor=0.001, retry_on=(OSError,))
    with pytest.raises(KeyError):
        asyncio.run(policy.execute(func))
    assert calls["n"] == 1


def test_retry_reports_each_retry_with_its_delay() -> None:
    seen: list[tuple[int, str, float]] = []
    func, _ = failing(2)
    policy = RetryPolicy(
        max_attempts=3,
        backoff_factor=0.01,
        jitter=False,
        on_retry=lambda n, e, d: seen.append((n, str(e), d)),
    )
    asyncio.run(policy.execute(func))
    assert [(n, e) for n, e, _ in seen] == [(1, "failure 1"), (2, "failure 2")]
    assert [round(d, 3) for _, _, d in seen] == [0.01, 0.02]


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(backoff_factor=1.0, max_backoff=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_bad_policy_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        RetryPolicy(max_attempts=0)


def test_breaker_opens_after_threshold_and_refuses_without_calling() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=3, recovery_timeout=10, expected_exception=OSError, clock=clock
    )
    func, calls = failing(100)
    for _ in range(3):
        with pytest.raises(OSError):
            asyncio.run(breaker.call(func))
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError, match="Circuit breaker is OPEN"):
        asyncio.run(breaker.call(func))
    assert calls["n"] == 3


def test_breaker_half_opens_after_timeout_then_closes_on_success() -> None:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        failure_threshold=2, recovery_timeout=10, expected_exception=OSError, clock=clock
    )
    breaker.listeners.append(lambda old, new: changes.append((old.value, new.value)))
    func, _ = failing(2)
    for _ in range(2):
        with pytest.raises(OSError):
            asyncio.run(breaker.call(func))
    clock.now += 9.9
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.now += 0.2
    assert breaker.state is CircuitState.HALF_OPEN
    assert asyncio.run(breaker.call(func)) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_breaker_failed_trial_opens_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5, expected_exception=OSError, clock=clock)
    func, _ = failing(2)
    with pytest.raises(OSError):
        asyncio.run(breaker.call(func))
    clock.now += 5
    with pytest.raises(OSError):
        asyncio.run(breaker.call(func))  # the trial fails
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == 5


def test_half_open_lets_only_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow() is True
    assert breaker.allow() is False
    breaker.record_success()
    assert breaker.allow() is True


def test_unexpected_exceptions_do_not_count() -> None:
    breaker = CircuitBreaker(failure_threshold=1, expected_exception=OSError)
    func, _ = failing(1, exc=KeyError)
    with pytest.raises(KeyError):
        asyncio.run(breaker.call(func))
    assert breaker.state is CircuitState.CLOSED
