"""One open database for code outside the store: its engine, transactions and error translation.

The service's own tables (accounts, audit, sessions, throttle, connections) and the live tailer
read and write the database the store migrated, with the same engine settings (SQLite WAL and busy
timeout, hidden bound parameters) and the same errors. :class:`Database` is that handle, so no
module outside ``witskit.storage`` needs its private backends::

    db = Database.open("sqlite:///wits.db", pool_size=2)  # no connection yet
    try:
        async with db.write("add a source to") as conn:  # one transaction, committed on success
            await conn.execute(insert(sources).values(name="rig-7", created_at=now))
        async with db.read("count the sources of") as conn:
            total = (await conn.execute(select(func.count()).select_from(sources))).scalar_one()
    finally:
        await db.aclose()

A database or connection error inside :meth:`Database.read`, :meth:`Database.write` or
:meth:`Database.translate` is raised as a :class:`~witskit.storage.errors.StorageError` whose
message reads "could not <action> <url>: <reason>", the URL shown without its password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from witskit.storage._backends import backend_for
from witskit.storage._base import BackendImpl
from witskit.storage._translate import translate
from witskit.storage._url import SecretLike, parse_url

__all__ = ["Database", "check_url"]


def check_url(url: str | SecretLike) -> None:
    """Raise :class:`~witskit.storage.errors.StorageConfigError` when ``url`` is no database URL.

    Checks the text only (and that a SQLite file's directory exists); nothing is connected to.
    """
    parse_url(url)


class Database:
    """An engine on one database URL with read and write transactions that translate its errors.

    Make one with :meth:`open`; close it with :meth:`aclose`.
    """

    __slots__ = ("_backend", "_closed", "engine")

    def __init__(self, backend: BackendImpl, engine: AsyncEngine) -> None:
        """Use :meth:`open`."""
        self._backend = backend
        self._closed = False
        #: The SQLAlchemy engine, for what the helpers do not cover (event hooks, the pool).
        self.engine = engine

    @classmethod
    def open(cls, url: str | SecretLike, *, pool_size: int = 5, timeout: float = 30.0) -> Database:
        """An engine for ``url`` (a string or ``SecretStr``); nothing is connected until first use.

        Raises :class:`~witskit.storage.errors.StorageConfigError` for a malformed URL and
        :class:`~witskit.storage.errors.DriverNotInstalled` naming the extra to install.
        """
        backend = backend_for(parse_url(url))
        return cls(backend, backend.create_engine(pool_size=pool_size, timeout=timeout))

    @property
    def display(self) -> str:
        """The URL without its password, for messages and logs."""
        return self._backend.url.display

    @property
    def dialect(self) -> str:
        """SQLAlchemy's name for the database's SQL dialect: ``sqlite``, ``postgresql`` or ``mysql``."""
        return self.engine.dialect.name

    @property
    def in_memory(self) -> bool:
        """True for ``sqlite:///:memory:``, a database that other connections cannot share."""
        url = self._backend.url
        return url.backend == "sqlite" and url.sqlite_path is None

    @contextmanager
    def translate(self, action: str) -> Iterator[None]:
        """Raise database and connection errors as StorageErrors; ``action`` completes "could not ..."."""
        with translate(self._backend, action):
            yield

    @asynccontextmanager
    async def read(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for reads (no transaction is begun); errors translated."""
        with translate(self._backend, action):
            async with self.engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def write(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction committed on success, rolled back on error; errors translated.

        On SQLite the transaction takes the write lock up front (``BEGIN IMMEDIATE``), so a
        read-then-write waits for another writer instead of failing on a lock upgrade.
        """
        with translate(self._backend, action):
            async with self.engine.connect() as conn:
                await conn.execution_options(witskit_immediate=True)
                async with conn.begin():
                    yield conn

    async def aclose(self) -> None:
        """Close the pooled connections. Idempotent."""
        if not self._closed:
            self._closed = True
            await self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Database {self.display}>"
