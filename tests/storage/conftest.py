"""Store test fixtures: a fresh database per module on each real backend, and a leak check.

Nothing is mocked. SQLite lives in ``tmp_path``; PostgreSQL and MariaDB/MySQL are the servers on
127.0.0.1 (see ``support.databases``: skipped when unreachable, a failure under ``CI=true``), where
each test module gets its own uniquely named database, dropped afterwards.

The spool tests share this directory; nothing here is autouse and nothing here imports SQLAlchemy
or a driver at import time, so they run without them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.databases import BACKENDS, admin_url, require_driver, temporary_database
from support.leaks import no_leaks


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The admin URL of a reachable PostgreSQL server (skip/fail otherwise)."""
    return admin_url("postgresql")


@pytest.fixture(scope="session")
def mysql_admin_url() -> str:
    """The admin URL of a reachable MariaDB/MySQL server (skip/fail otherwise)."""
    return admin_url("mysql")


def _url_factory(
    request: pytest.FixtureRequest, backend: str, tmp: Path
) -> Callable[[], contextlib.AbstractContextManager[str]]:
    if backend == "sqlite":
        require_driver("aiosqlite", "sqlite")

        @contextlib.contextmanager
        def sqlite_db() -> Iterator[str]:
            yield f"sqlite:///{tmp / f'wits-{uuid.uuid4().hex[:8]}.db'}"

        return sqlite_db
    admin = request.getfixturevalue("postgres_admin_url" if backend == "postgresql" else "mysql_admin_url")
    return lambda: temporary_database(backend, admin)


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated-on-first-use database shared by one test module, per backend.

    Tests that share it keep apart by writing under their own source name (``source_name``).
    """
    backend = str(request.param)
    with _url_factory(request, backend, tmp_path_factory.mktemp(backend))() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test (schema not created), per backend."""
    with _url_factory(request, str(request.param), tmp_path)() as url:
        yield url


@pytest.fixture
def source_name(request: pytest.FixtureRequest) -> str:
    """A source name no other test uses."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Any]:
    """An open store on the module's database; closed (and checked for leaks) after the test."""
    from witskit.storage import Store

    with no_leaks():
        s = await Store.open(db_url, timeout=10)
        try:
            yield s
        finally:
            await s.aclose()


# Test data --------------------------------------------------------------------------------------
def _decoded(
    source: str | None, steps: int = 50, *, seed: int = 7, records: tuple[int, ...] = (1, 2, 8)
) -> list[Any]:
    """Decoded frames of ``steps`` simulated seconds (records 1, 2, 8 by default)."""
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(seed, records=records).frames(steps))
    frames = [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]
    assert frames
    return frames


def _decode_text(text: str, source: str | None) -> list[Any]:
    """Decoded frames of WITS text (CRLF line ends added)."""
    from witskit.protocol import DecodedFrame, iter_decode

    data = text.strip().replace("\n", "\r\n").encode("latin-1") + b"\r\n"
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


@pytest.fixture
def sim_frames() -> Callable[..., list[Any]]:
    """``sim_frames(source, steps=50, *, seed=7, records=(1, 2, 8))``: decoded simulator frames."""
    return _decoded


@pytest.fixture
def wits_frames() -> Callable[[str, str | None], list[Any]]:
    """``wits_frames(text, source)``: decoded frames of hand-written WITS text."""
    return _decode_text


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database for one test (skip/fail when no server is reachable)."""
    with temporary_database("postgresql", postgres_admin_url) as url:
        yield url
