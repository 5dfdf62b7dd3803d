"""The database servers of the tests: PostgreSQL and MariaDB/MySQL on 127.0.0.1, and throw-away
databases on them.

``WITSKIT_TEST_POSTGRES_URL`` and ``WITSKIT_TEST_MYSQL_URL`` override the admin URLs. A server that
cannot be reached makes its tests SKIP with the reason, except under ``CI=true``: there the helper
first tries to start the server, then FAILS, because a CI run that silently skipped a backend would
prove nothing. Nothing here imports SQLAlchemy or a driver at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
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
    from witskit.storage import sanitize_url

    return sanitize_url(url)


def unavailable(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{message} (CI=true: a backend that cannot be tested fails the run)", pytrace=False)
    pytest.skip(message)


def require_driver(name: str, backend: str) -> None:
    try:
        __import__(name)
    except ImportError:
        unavailable(f"{backend} tests need the {name!r} driver: pip install 'witskit[{backend}]'")


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


def server(backend: str, env: str, default: str) -> str:
    url = os.environ.get(env, default)
    require_driver(
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
        unavailable(f"{backend} at {_masked(url)} is not reachable ({error}); set {env} or start the server")
    return url


def admin_url(backend: str) -> str:
    """The admin URL of the reachable ``postgresql`` or ``mysql`` server (skip/fail otherwise)."""
    if backend == "postgresql":
        return server("postgresql", "WITSKIT_TEST_POSTGRES_URL", PG_DEFAULT)
    return server("mysql", "WITSKIT_TEST_MYSQL_URL", MYSQL_DEFAULT)


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
