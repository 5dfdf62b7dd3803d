"""Helpers of the live-frame, connection and health-port tests: databases on every backend, frames
with chosen times, and waiting for a condition.

The databases come from the storage tests' own helpers (``tests/storage/conftest.py``): SQLite in a
temporary directory, PostgreSQL and MariaDB on 127.0.0.1 with a fresh database per test, dropped
after. An unreachable server skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from witskit.protocol import DecodedFrame, FrameParser, WITSDecoder, WITSFrame

BACKENDS = ("sqlite", "postgresql", "mysql")
#: Frame times of the test frames count from here.
BASE = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


@cache
def storage_helpers() -> ModuleType:
    """``tests/storage/conftest.py`` as a module (loaded once), for its database servers."""
    path = Path(__file__).resolve().parents[1] / "storage" / "conftest.py"
    spec = importlib.util.spec_from_file_location("witskit_storage_test_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """The URL of an empty database on ``backend`` (dropped afterwards; SQLite in ``tmp``)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'live.db'}"
        return
    helpers = storage_helpers()
    if backend == "postgresql":
        admin = helpers._server("postgresql", "WITSKIT_TEST_POSTGRES_URL", helpers.PG_DEFAULT)
    else:
        admin = helpers._server("mysql", "WITSKIT_TEST_MYSQL_URL", helpers.MYSQL_DEFAULT)
    with helpers.temporary_database(backend, admin) as url:
        yield url


def make_frame(source: str, second: int, depth: float, *, received: datetime | None = None) -> DecodedFrame:
    """A record-1 frame of ``source`` timed ``BASE + second`` (DATE/TIME), bit depth ``depth``."""
    ts = BASE + timedelta(seconds=second)
    text = f"&&\r\n0105{ts:%y%m%d}\r\n0106{ts:%H%M%S}\r\n0108{depth:.2f}\r\n!!\r\n"
    at = received or datetime.now(UTC)
    parser = FrameParser(source=source, clock=lambda: at)
    [frame] = [e for e in parser.feed(text.encode("ascii")) if isinstance(e, WITSFrame)]
    return WITSDecoder().decode(frame)


def depth_of(record: dict[str, Any]) -> float:
    """The bit depth (0108) of a frame record (``DecodedFrame.to_record()``)."""
    return float(next(p["value"] for p in record["points"] if p["code"] == "0108"))


async def until(check: Callable[[], Awaitable[Any] | Any], timeout: float = 15.0) -> Any:
    """Call ``check()`` (awaiting it if need be) every 20 ms until it gives something true (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.02)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
