"""Database connections that never leak their credentials (plan Task 1.2).

:class:`SecureDatabaseManager` keeps the plan's names (``get_engine``, ``_sanitize_url``) over
:class:`witskit.storage.database.Database`, the one handle that opens an engine for a URL, so
the engine settings and the masking are the store's:

- ``get_engine()`` returns a SQLAlchemy **async** engine (:class:`~sqlalchemy.ext.asyncio.AsyncEngine`)
  on the same driver the store uses (aiosqlite, asyncpg, asyncmy), so a health check is
  ``async with manager.get_engine().connect() as conn: await conn.exec_driver_sql("SELECT 1")``.
  A synchronous engine would need a second driver per backend and block the event loop.
- The URL is logged only sanitized (``postgresql://user:***@host/db``); the manager's ``repr``
  shows the sanitized URL; SQL echo is off and bound parameters are hidden from error messages.
- ``config`` is any object with ``database_url`` (``str`` or pydantic ``SecretStr``),
  ``database_pool_size`` and ``database_timeout``, such as ``witskit.config.WitsConfig``.

Most code wants :class:`witskit.storage.store.Store` instead, which adds the schema, idempotent
writes and queries on top of the same engine settings.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from witskit.storage._url import SecretLike, sanitize_url
from witskit.storage.database import Database

__all__ = ["DatabaseConfig", "SecureDatabaseManager", "sanitize_url"]

logger = logging.getLogger("witskit.storage")


class DatabaseConfig(Protocol):
    """The settings the manager reads (``WitsConfig`` has them; so can any object)."""

    @property
    def database_url(self) -> str | SecretLike:
        """The database URL, plain or as a ``SecretStr``."""

    @property
    def database_pool_size(self) -> int:
        """Connections kept open."""

    @property
    def database_timeout(self) -> float:
        """Seconds to wait for a connection."""


class SecureDatabaseManager:
    """Creates (once) the async engine for ``config.database_url`` without exposing its secrets."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self._database: Database | None = None

    def __repr__(self) -> str:
        return f"SecureDatabaseManager(url={self.sanitized_url!r})"

    @property
    def sanitized_url(self) -> str:
        """The configured URL with its password masked (safe to log and display)."""
        return self._sanitize_url(self.config.database_url)

    def get_engine(self) -> AsyncEngine:
        """The async engine (created on first call, then reused).

        Raises :class:`~witskit.storage.errors.StorageConfigError` for a bad or unsupported URL and
        :class:`~witskit.storage.errors.DriverNotInstalled` when the backend's driver is missing.
        No connection is made until the engine is used.
        """
        if self._database is None:
            self._database = Database.open(
                self.config.database_url,
                pool_size=int(self.config.database_pool_size),
                timeout=float(self.config.database_timeout),
            )
            logger.info("storage: connecting to %s", self._database.display)
        return self._database.engine

    async def aclose(self) -> None:
        """Dispose of the engine's connections (the next ``get_engine`` makes a new one)."""
        if self._database is not None:
            database, self._database = self._database, None
            await database.aclose()

    def _sanitize_url(self, url: str | SecretLike) -> str:
        """``url`` with credentials masked: ``postgresql://user:***@host/db``."""
        return sanitize_url(url)
