"""The check that a test left no socket open and no thread running (asyncio tasks: see the
transport tests' conftest, which runs it in the test's own loop)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator


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
