"""Helpers of the live-frame, connection and health-port tests: databases on every backend, frames
with chosen times, and free ports.

The databases come from ``support.databases``: SQLite in a
temporary directory, PostgreSQL and MariaDB on 127.0.0.1 with a fresh database per test, dropped
after. An unreachable server skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.databases import admin_url, temporary_database
from witskit.protocol import DecodedFrame, FrameParser, WITSDecoder, WITSFrame

#: Frame times of the test frames count from here.
BASE = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """The URL of an empty database on ``backend`` (dropped afterwards; SQLite in ``tmp``)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'live.db'}"
        return
    with temporary_database(backend, admin_url(backend)) as url:
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


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
