"""Storage errors: what failed, whose fault, and never a password in a message, a log or a traceback."""

from __future__ import annotations

import inspect
import logging
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from witskit.errors import UsageError, WitsKitError
from witskit.storage import (
    AuthenticationFailed,
    DatabaseNotFound,
    DatabaseUnavailable,
    DriverNotInstalled,
    SchemaMismatch,
    SecureDatabaseManager,
    StorageConfigError,
    StorageError,
    StorageFull,
    Store,
    sanitize_url,
)
from witskit.storage._backends import backend_for
from witskit.storage._translate import error_for
from witskit.storage._url import parse_url

PASSWORD = "Sup3r-s3cret_pw"


@pytest.fixture(autouse=True)
def _all_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def assert_no_secret(err: BaseException, caplog: pytest.LogCaptureFixture, secret: str = PASSWORD) -> None:
    """Not in the message, the repr, the chained exceptions' traceback, nor any log record."""
    assert secret not in str(err)
    assert secret not in repr(err)
    assert secret not in "".join(traceback.format_exception(err))
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()


def pg_url(admin: str, *, user: str = "wits", port: int | None = None, database: str | None = None) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(admin)
    host = parts.hostname or "127.0.0.1"
    return f"postgresql://{user}:{PASSWORD}@{host}:{port or parts.port or 5432}/{database or 'postgres'}"


def my_url(admin: str, *, user: str = "wits", port: int | None = None, database: str | None = None) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(admin)
    host = parts.hostname or "127.0.0.1"
    return f"mysql://{user}:{PASSWORD}@{host}:{port or parts.port or 3306}/{database or 'test'}"


# Unreachable, wrong credentials, missing database ------------------------------------------------
@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_an_unreachable_server_is_transient_and_names_the_masked_url(
    scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("asyncpg" if scheme == "postgresql" else "asyncmy")
    url = f"{scheme}://wits:{PASSWORD}@127.0.0.1:1/wits"

    with pytest.raises(DatabaseUnavailable) as info:
        await Store.open(url, timeout=3)

    err = info.value
    assert err.transient
    assert isinstance(err, ConnectionError)
    assert f"{scheme}://wits:***@127.0.0.1:1/wits" in str(err)
    assert err.url == f"{scheme}://wits:***@127.0.0.1:1/wits"
    assert_no_secret(err, caplog)


async def test_an_unknown_postgres_user_is_an_authentication_error(
    postgres_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The local server trusts 127.0.0.1, so a wrong password alone would pass; an unknown role fails.
    with pytest.raises(AuthenticationFailed) as info:
        await Store.open(pg_url(postgres_admin_url, user="witskit_no_such_role"), timeout=5)
    assert not info.value.transient
    assert "witskit_no_such_role:***@" in str(info.value)
    assert_no_secret(info.value, caplog)


async def test_wrong_mysql_credentials_are_an_authentication_error(
    mysql_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        await Store.open(my_url(mysql_admin_url, user="witskit_no_such_user"), timeout=5)
    assert "access denied" in str(info.value)
    assert_no_secret(info.value, caplog)


async def test_a_missing_postgres_database(postgres_admin_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from urllib.parse import urlsplit

    user = urlsplit(postgres_admin_url).username or "postgres"
    with pytest.raises(DatabaseNotFound, match="does not exist") as info:
        await Store.open(pg_url(postgres_admin_url, user=user, database="witskit_no_such_db"), timeout=5)
    assert_no_secret(info.value, caplog)


async def test_a_missing_mysql_database(mysql_admin_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(mysql_admin_url)
    url = f"mysql://{parts.username or 'root'}@{parts.hostname}:{parts.port or 3306}/witskit_no_such_db"
    with pytest.raises(DatabaseNotFound, match="does not exist"):
        await Store.open(url, timeout=5)


def test_a_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatabaseNotFound, match="does not exist"):
        parse_url(f"sqlite:///{tmp_path / 'nope' / 'wits.db'}")


# Bad URLs -----------------------------------------------------------------------------------------
def test_an_unknown_scheme_lists_the_supported_ones(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(StorageConfigError) as info:
        parse_url(f"oracle://scott:{PASSWORD}@db/orcl")
    message = str(info.value)
    assert "unsupported database URL scheme 'oracle'" in message
    for scheme in ("sqlite:///", "postgresql://", "mysql://", "mariadb://"):
        assert scheme in message
    assert "oracle://scott:***@db/orcl" in message
    assert isinstance(info.value, ValueError)
    assert not info.value.transient
    assert_no_secret(info.value, caplog)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        (f"postgresql+psycopg2://u:{PASSWORD}@h/db", "WitsKit uses asyncpg"),
        (f"mysql+pymysql://u:{PASSWORD}@h/db", "WitsKit uses asyncmy"),
        (f"u:{PASSWORD}@host/db", "not a database URL"),
        (f"postgresql://u:{PASSWORD}@h:notaport/db", "malformed database URL"),
        ("sqlite:///wits.db?synchronous=SOMETIMES", "NORMAL, FULL or EXTRA"),
        (f"sqlite:///wits.db?password={PASSWORD}", "SQLite URLs take: synchronous"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, match: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(StorageConfigError, match=match) as info:
        parse_url(url)
    assert_no_secret(info.value, caplog)


def test_plain_and_driver_urls_map_to_the_async_drivers(tmp_path: Path) -> None:
    assert parse_url("postgresql://u@h/db").sqlalchemy_url == "postgresql+asyncpg://u@h/db"
    assert parse_url("postgres://u@h/db").sqlalchemy_url == "postgresql+asyncpg://u@h/db"
    assert parse_url("postgresql+asyncpg://u@h/db").backend == "postgresql"
    assert parse_url("mariadb://u@h/db").sqlalchemy_url == "mysql+asyncmy://u@h/db?charset=utf8mb4"
    assert (
        parse_url("mysql://u@h/db?charset=latin1").sqlalchemy_url == "mysql+asyncmy://u@h/db?charset=latin1"
    )
    db = tmp_path / "w.db"
    assert parse_url(f"sqlite:///{db}").sqlite_path == db
    assert parse_url("sqlite://").sqlite_path is None
    assert parse_url(f"sqlite:///{db}?synchronous=full").sqlite_synchronous == "FULL"


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(DriverNotInstalled, match=r"pip install 'witskit\[postgres\]'") as info:
        backend_for(parse_url(f"postgresql://u:{PASSWORD}@h/db")).create_engine(pool_size=1, timeout=1)
    assert isinstance(info.value, ImportError)
    assert PASSWORD not in str(info.value)


# Sanitizing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host:5432/db", "postgresql://user@host:5432/db"),
        ("postgresql://user:p@ss/w:rd@host/db", "postgresql://user:***@host/db"),
        ("mysql://u:pw@h/db?password=x&charset=utf8mb4", "mysql://u:***@h/db?password=***&charset=utf8mb4"),
        ("postgresql://h/db?sslpassword=x&user=u", "postgresql://h/db?sslpassword=***&user=u"),
        ("sqlite:////data/rig@7/wits.db", "sqlite:////data/rig@7/wits.db"),
        ("postgresql://:pw@host/db", "postgresql://:***@host/db"),
        ("user:pw@host", "<unparseable database URL>"),
    ],
)
def test_sanitize_url(url: str, shown: str) -> None:
    assert sanitize_url(url) == shown
    assert SecureDatabaseManager._sanitize_url(None, url) == shown  # type: ignore[arg-type]


class Config:
    """What WitsConfig provides."""

    def __init__(self, url: Any) -> None:
        self.database_url = url
        self.database_pool_size = 2
        self.database_timeout = 5


async def test_secure_manager_gives_an_async_engine_and_logs_only_the_masked_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pydantic import SecretStr
    from sqlalchemy.ext.asyncio import AsyncEngine

    manager = SecureDatabaseManager(Config(SecretStr(f"sqlite:///{tmp_path / 'w.db'}")))
    engine = manager.get_engine()
    assert isinstance(engine, AsyncEngine)
    assert manager.get_engine() is engine
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    await manager.aclose()

    pytest.importorskip("asyncpg")
    secret = SecureDatabaseManager(
        Config(SecretStr(f"postgresql://wits:{PASSWORD}@db:5432/wits?sslpassword=x"))
    )
    assert PASSWORD not in repr(secret)
    engine = secret.get_engine()  # no connection is made yet
    assert "postgresql://wits:***@db:5432/wits?sslpassword=***" in caplog.text
    assert PASSWORD not in repr(engine)
    assert PASSWORD not in caplog.text
    await secret.aclose()


async def test_secure_manager_connection_errors_stay_masked(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("asyncpg")
    manager = SecureDatabaseManager(Config(f"postgresql://wits:{PASSWORD}@127.0.0.1:1/wits"))
    assert repr(manager) == "SecureDatabaseManager(url='postgresql://wits:***@127.0.0.1:1/wits')"
    engine = manager.get_engine()
    with pytest.raises(OSError) as info:  # the plain engine raises the driver's error...
        async with engine.connect():
            pass
    err = error_for(info.value, backend_for(parse_url(manager.config.database_url)), "reach")
    assert isinstance(err, DatabaseUnavailable)  # ...which the storage layer maps, masked
    assert_no_secret(err, caplog)
    await manager.aclose()


# Running out of room, waiting for a lock, the wrong schema ---------------------------------------
async def test_a_full_sqlite_database_is_storage_full(tmp_path: Path, sim_frames: Any) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'full.db'}", pool_size=1)
    try:
        async with store._engine.connect() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
            await conn.exec_driver_sql(f"PRAGMA max_page_count={int(pages) + 2}")
        with pytest.raises(StorageFull, match="full") as info:
            await store.write(sim_frames("rig", 200))
        assert info.value.transient
        assert [s for s in await store.sources() if s.name == "rig"] == []  # nothing left behind
    finally:
        await store.aclose()


async def test_a_locked_sqlite_database_times_out_as_unavailable(tmp_path: Path, sim_frames: Any) -> None:
    path = tmp_path / "locked.db"
    store = await Store.open(f"sqlite:///{path}", timeout=0.3)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(DatabaseUnavailable, match="locked"):
            await store.write(sim_frames("rig", 2))
        other.execute("ROLLBACK")
        assert await store.write(sim_frames("rig", 2)) > 0
    finally:
        other.close()
        await store.aclose()


async def test_opening_without_migrating_an_empty_database_says_what_to_run(fresh_url: str) -> None:
    with pytest.raises(SchemaMismatch, match="witskit db upgrade"):
        await Store.open(fresh_url, migrate=False, timeout=5)


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        await store.write([])
    with pytest.raises(UsageError, match="closed"):
        await store.ping()


async def test_ping(store: Store) -> None:
    await store.ping()


# No driver exception escapes unmapped (httpx's test_exceptions idea) -------------------------------
def _exception_classes(module: Any) -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Exception)
        and not issubclass(obj, Warning)
        and obj.__module__.startswith(module.__name__)
    ]


def _instance(cls: type[BaseException]) -> BaseException:
    for args in (("boom",), (2003, "boom"), ()):
        try:
            return cls(*args)
        except Exception:
            continue
    raise AssertionError(f"cannot build {cls}")


@pytest.mark.parametrize(
    ("url", "modules"),
    [
        ("sqlite:///:memory:", ["sqlite3", "aiosqlite"]),
        ("postgresql://u@h/db", ["asyncpg.exceptions"]),
        ("mysql://u@h/db", ["asyncmy.errors"]),
    ],
)
def test_every_driver_exception_maps_to_a_storage_error(url: str, modules: list[str]) -> None:
    backend = backend_for(parse_url(url))
    checked = 0
    for name in modules:
        module = pytest.importorskip(name)
        for cls in _exception_classes(module):
            err = error_for(_instance(cls), backend, "use")
            assert isinstance(err, StorageError), cls
            assert isinstance(err, WitsKitError)
            checked += 1
    assert checked >= 5
    assert error_for(KeyError("a bug"), backend, "use") is None  # bugs are not dressed up
    assert isinstance(error_for(ConnectionRefusedError(111, "refused"), backend, "use"), DatabaseUnavailable)
    assert isinstance(error_for(TimeoutError(), backend, "use"), DatabaseUnavailable)
