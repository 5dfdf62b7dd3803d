"""Schema migrations (Alembic), shipped in the package and run programmatically.

A store migrates its database when it opens (``Store.open(url, migrate=True)``, the default), and
``witskit db upgrade`` calls :func:`upgrade`. No ``alembic.ini`` is involved: the script directory is
this package, the version table is ``witskit_alembic_version``.

Concurrent starts are safe: the upgrade runs under a lock (PostgreSQL advisory lock, MySQL
``GET_LOCK``, SQLite ``BEGIN IMMEDIATE``), and whoever gets it second finds nothing left to do.

For developers, a new revision is written with Alembic's command API::

    from alembic import command
    from witskit.storage.migrations import alembic_config
    command.revision(alembic_config(), message="add something", rev_id="0002")

then edited by hand (spell the column types out; do not import them from ``schema.py``), and
:data:`HEAD` is moved to it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from witskit.errors import UsageError
from witskit.storage._backends import backend_for
from witskit.storage._base import BackendImpl
from witskit.storage._translate import translate
from witskit.storage._url import SecretLike, parse_url
from witskit.storage.errors import DatabaseUnavailable, SchemaMismatch
from witskit.storage.schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["HEAD", "alembic_config", "aupgrade", "check_schema", "current_revision", "migrate", "upgrade"]

logger = logging.getLogger("witskit.storage")

#: The revision this WitsKit's schema is at (the newest file in ``versions/``).
HEAD: Final = "0014"

_HERE: Final = Path(__file__).resolve().parent
#: PostgreSQL advisory lock key: "WITSKIT" in ASCII, as a bigint. Any constant works if unique.
_PG_LOCK_KEY: Final = 0x57495453_4B4954
_MYSQL_LOCK: Final = "witskit_migrate"


def alembic_config() -> Config:
    """An Alembic config pointing at the shipped migrations (for ``command.*`` calls)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def _read_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()  # noqa: S608
    if len(rows) > 1:
        raise SchemaMismatch(f"the database has several schema heads {sorted(rows)}: not a WitsKit database?")
    return str(rows[0]) if rows else None


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _run_upgrade(connection: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def current_revision(conn: AsyncConnection) -> str | None:
    """The schema revision of the database (None: never migrated)."""
    revision = await conn.run_sync(_read_revision)
    await conn.rollback()
    return revision


def _newer(revision: str, url: str) -> SchemaMismatch:
    return SchemaMismatch(
        f"the database {url} has schema revision {revision!r}, unknown to this WitsKit (which knows up "
        f"to {HEAD!r}): it was upgraded by a newer WitsKit; upgrade WitsKit",
        url=url,
    )


async def check_schema(engine: AsyncEngine, backend: BackendImpl) -> None:
    """Raise :class:`SchemaMismatch` unless the database is at :data:`HEAD`."""
    display = backend.url.display
    with translate(backend, "connect to"):
        async with engine.connect() as conn:
            with translate(backend, "read the schema version of"):
                revision = await current_revision(conn)
    if revision == HEAD:
        return
    if revision is None:
        raise SchemaMismatch(
            f"the database {display} has no WitsKit schema: run `witskit db upgrade` "
            "(or open the store with migrate=True)",
            url=display,
        )
    if not _known(revision):
        raise _newer(revision, display)
    raise SchemaMismatch(
        f"the database {display} is at schema revision {revision!r}, this WitsKit needs {HEAD!r}: "
        "run `witskit db upgrade`",
        url=display,
    )


async def migrate(engine: AsyncEngine, backend: BackendImpl) -> bool:
    """Upgrade the database to :data:`HEAD` under a lock; True when something was done."""
    display = backend.url.display
    with translate(backend, "connect to"):
        async with engine.connect() as conn:
            with translate(backend, "migrate"):
                before = await current_revision(conn)
                if before == HEAD:
                    return False
                if before is not None and not _known(before):
                    raise _newer(before, display)
                await _locked_upgrade(conn, backend)
                after = await current_revision(conn)
    if after != HEAD:
        raise SchemaMismatch(f"migrating {display} ended at revision {after!r}, not {HEAD!r}", url=display)
    if before != after:
        logger.info("storage: upgraded the schema of %s from %s to %s", display, before or "empty", after)
    return before != after


async def _locked_upgrade(conn: AsyncConnection, backend: BackendImpl) -> None:
    if backend.name == "postgresql":
        async with conn.begin():
            # Transactional DDL: the lock and the migration commit together.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            await conn.run_sync(_run_upgrade)
    elif backend.name == "mysql":
        # MySQL commits each DDL statement implicitly, so the lock is a named session lock.
        got = (
            await conn.execute(
                text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": _MYSQL_LOCK, "timeout": int(backend.timeout)},
            )
        ).scalar()
        if got != 1:
            raise DatabaseUnavailable(
                f"could not migrate {backend.url.display}: another process holds the migration lock",
                url=backend.url.display,
            )
        try:
            # Alembic would name the version table's primary key, which MySQL ignores with a
            # warning (its primary key is always PRIMARY); create it the way MySQL spells it.
            await conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                    "(version_num VARCHAR(32) NOT NULL, PRIMARY KEY (version_num))"
                )
            )
            await conn.run_sync(_run_upgrade)
            await conn.commit()
        finally:
            await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MYSQL_LOCK})
            await conn.commit()
    else:
        # BEGIN IMMEDIATE: the write lock for the whole migration (SQLite's DDL is transactional).
        await conn.execution_options(witskit_immediate=True)
        async with conn.begin():
            await conn.run_sync(_run_upgrade)
        await conn.execution_options(witskit_immediate=False)


async def aupgrade(url: str | SecretLike, *, timeout: float = 30.0) -> str:
    """Upgrade the database at ``url`` to this WitsKit's schema; returns the revision (:data:`HEAD`).

    Idempotent: on an up-to-date database it only reads the version. Raises
    :class:`~witskit.storage.errors.StorageError` subclasses (the URL in them is sanitized).
    """
    parsed = parse_url(url)
    backend = backend_for(parsed)
    engine = backend.create_engine(pool_size=1, timeout=timeout)
    try:
        await migrate(engine, backend)
    finally:
        await engine.dispose()
    return HEAD


def upgrade(url: str | SecretLike, *, timeout: float = 30.0) -> str:
    """Synchronous :func:`aupgrade`, for ``witskit db upgrade`` and scripts.

    Raises :class:`~witskit.errors.UsageError` when called from a running event loop (use
    ``await aupgrade(url)`` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(aupgrade(url, timeout=timeout))
    raise UsageError("upgrade() cannot run inside an event loop; use `await aupgrade(url)`")
