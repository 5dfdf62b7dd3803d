"""Bounded polling: wait until a condition holds, or fail after a timeout."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 15.0, interval: float = 0.02
) -> Any:
    """Call ``check()`` (awaiting it if need be) every ``interval`` s until it gives something true.

    Returns that value; raises ``TimeoutError`` after ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(interval)


def wait_until(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1, what: str = "") -> Any:
    """Blocking :func:`until` (for threads, processes and browsers): the true value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)
