"""The check that a test left no socket open, no thread and no asyncio task running.

:func:`no_leaks` checks a block. The fixtures :func:`_no_leaks` (autouse) and
:func:`_async_no_leaks` check every test of a directory whose ``conftest.py`` imports them (the
transport and simulator tests): an async test is checked in its own event loop, for its tasks too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

#: How long tasks still running at the end of a test get to finish (a generator being finalised,
#: a server handler closing) before they count as leaked.
LEAK_GRACE = 2.0


def socket_fds() -> set[str]:
    """The open socket file descriptors of this process, as ``"fd:socket:[inode]"``."""
    found: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd of the listing itself is gone by now
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:"):
                found.add(f"{fd}:{link}")
    return found


def live_threads() -> set[threading.Thread]:
    """The threads of this process, but asyncio's.

    asyncio's default executor (getaddrinfo) lives until its loop closes, which is after the check
    for async tests; its threads are asyncio's, not the test's.
    """
    return {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}


def check_left(before_fds: set[str], before_threads: set[threading.Thread], grace: float = 0.0) -> None:
    """Fail if sockets or threads beyond those ``before`` are still there after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while True:
        sockets = sorted(socket_fds() - before_fds)
        threads = [t.name for t in live_threads() - before_threads if t.is_alive()]
        if not (sockets or threads) or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    assert not sockets, f"the test left {len(sockets)} socket(s) open: {sockets[:10]}"
    assert not threads, f"the test left threads running: {threads}"


@contextlib.contextmanager
def no_leaks(grace: float = 2.0) -> Iterator[None]:
    """Fail if the block leaves a socket open or a thread (aiosqlite's) running, ``grace`` s after."""
    before_fds, before_threads = socket_fds(), live_threads()
    yield
    check_left(before_fds, before_threads, grace)


@pytest.fixture
async def _async_no_leaks() -> AsyncIterator[None]:
    """Runs in the test's event loop: after the test, no other task may still be running."""
    before_fds, before_threads = socket_fds(), live_threads()
    yield
    for _ in range(3):  # let asyncgen finalizers schedule their aclose() tasks
        await asyncio.sleep(0)
    me = asyncio.current_task()
    pending = {t for t in asyncio.all_tasks() if t is not me and not t.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=LEAK_GRACE)
    if pending:
        names = sorted(repr(t.get_coro()) for t in pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # AssertionError, not pytest.fail: a BaseException would break the event loop's runner.
        raise AssertionError(f"the test left {len(names)} asyncio task(s) running: {names}")
    await asyncio.sleep(0)  # transports closed by the last tasks release their sockets now
    check_left(before_fds, before_threads)


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Any:
    """Fail a test that leaks tasks, sockets or threads (checked in its loop for async tests)."""
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue("_async_no_leaks")
        yield
        return
    before_fds, before_threads = socket_fds(), live_threads()
    yield
    check_left(before_fds, before_threads)
