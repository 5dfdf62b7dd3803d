"""Store test fixtures: a fresh database per module on each real backend, and a leak check.

Nothing is mocked. SQLite lives in ``tmp_path``; PostgreSQL and MariaDB/MySQL are the servers on
127.0.0.1 (``WITSKIT_TEST_POSTGRES_URL``, ``WITSKIT_TEST_MYSQL_URL`` override the admin URLs), where
each test module gets its own uniquely named database, dropped afterwards. A server that cannot be
reached makes its tests SKIP with the reason, except under ``CI=true``: there the fixture first
tries to start the server, then FAILS, because a CI run that silently skipped a backend would
prove nothing.

The spool tests share this directory; nothing here is autouse and nothing here imports SQLAlchemy
or a driver at import time, so they run without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import pytest

from support.ci import in_ci

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL_DEFAULT = "mysql://root@127.0.0.1:3306/test"
BACKENDS = ("sqlite", "postgresql", "mysql")

#: How the servers are started on the development and CI machines (see the task brief / DEVELOPERS.md).
_START = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mysql": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}
_PROBE_TIMEOUT = 3.0
_START_WAIT = 30.0


def _masked(url: str) -> str:
    from witskit.storage._url import sanitize_url

    return sanitize_url(url)


def _unavailable(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{message} (CI=true: a backend that cannot be tested fails the run)", pytrace=False)
    pytest.skip(message)


def _driver(name: str, backend: str) -> None:
    try:
        __import__(name)
    except ImportError:
        _unavailable(f"{backend} tests need the {name!r} driver: pip install 'witskit[{backend}]'")


# Admin connections (the driver, directly: these create and drop whole databases) -----------------
def _mysql_params(url: str, database: str | None = None) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": database if database is not None else (parts.path.lstrip("/") or None),
        "connect_timeout": _PROBE_TIMEOUT,
    }


async def _pg_exec(url: str, *sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(
        url.replace("postgresql+asyncpg://", "postgresql://"), timeout=_PROBE_TIMEOUT
    )
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _mysql_exec(url: str, *sql: str) -> None:
    import asyncmy

    conn = await asyncmy.connect(**_mysql_params(url))
    try:
        async with conn.cursor() as cur:
            for statement in sql:
                await cur.execute(statement)
        await conn.commit()
    finally:
        conn.close()
        await conn.ensure_closed()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def _probe(backend: str, url: str) -> str | None:
    try:
        asyncio.run((_pg_exec if backend == "postgresql" else _mysql_exec)(url, "SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _server(backend: str, env: str, default: str) -> str:
    url = os.environ.get(env, default)
    _driver(
        "asyncpg" if backend == "postgresql" else "asyncmy",
        "postgres" if backend == "postgresql" else "mysql",
    )
    error = _probe(backend, url)
    if error is not None and in_ci():
        # The brief's start commands; harmless when the server is already up.
        subprocess.run(_START[backend], shell=True, check=False, capture_output=True, timeout=60)
        deadline = time.monotonic() + _START_WAIT
        while error is not None and time.monotonic() < deadline:
            time.sleep(0.5)
            error = _probe(backend, url)
    if error is not None:
        _unavailable(f"{backend} at {_masked(url)} is not reachable ({error}); set {env} or start the server")
    return url


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The admin URL of a reachable PostgreSQL server (skip/fail otherwise)."""
    return _server("postgresql", "WITSKIT_TEST_POSTGRES_URL", PG_DEFAULT)


@pytest.fixture(scope="session")
def mysql_admin_url() -> str:
    """The admin URL of a reachable MariaDB/MySQL server (skip/fail otherwise)."""
    return _server("mysql", "WITSKIT_TEST_MYSQL_URL", MYSQL_DEFAULT)


@contextlib.contextmanager
def temporary_database(backend: str, admin_url: str) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it."""
    name = f"witskit_test_{uuid.uuid4().hex[:12]}"
    if backend == "postgresql":
        asyncio.run(_pg_exec(admin_url, f'CREATE DATABASE "{name}"'))
        try:
            yield _with_database(admin_url, name)
        finally:
            asyncio.run(_pg_exec(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        asyncio.run(_mysql_exec(admin_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        try:
            yield _with_database(admin_url, name)
        finally:
            asyncio.run(_mysql_exec(admin_url, f"DROP DATABASE IF EXISTS `{name}`"))


def _url_factory(
    request: pytest.FixtureRequest, backend: str, tmp: Path
) -> Callable[[], contextlib.AbstractContextManager[str]]:
    if backend == "sqlite":
        _driver("aiosqlite", "sqlite")

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


# Leak check -------------------------------------------------------------------------------------
def _sockets() -> set[str]:
    found: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:"):
                found.add(f"{fd}:{link}")
    return found


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}


@contextlib.contextmanager
def no_leaks() -> Iterator[None]:
    """Fail if the block leaves a socket open or a thread (aiosqlite's) running."""
    sockets, threads = _sockets(), _threads()
    yield
    deadline = time.monotonic() + 2.0
    while True:
        left_threads = [t.name for t in _threads() - threads if t.is_alive()]
        left_sockets = sorted(_sockets() - sockets)
        if not (left_threads or left_sockets) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left_sockets, f"the test left sockets open: {left_sockets[:10]}"
    assert not left_threads, f"the test left threads running: {left_threads}"


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
