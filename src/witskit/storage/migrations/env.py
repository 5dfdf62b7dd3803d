"""Alembic environment: runs on the connection WitsKit hands it (never reads alembic.ini).

:func:`witskit.storage.migrations.upgrade` opens the connection (async engine, ``run_sync``), takes
the migration lock, and passes the connection in ``config.attributes["connection"]``; this file
only configures the migration context on it. Offline (SQL script) mode is not supported: a store
migrates itself on start.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from witskit.storage.schema import VERSION_TABLE, metadata


def run_migrations_online() -> None:
    """Run the pending migrations on the connection given by WitsKit."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "WitsKit migrations run through witskit.storage.migrations.upgrade(url) "
            "(or `witskit db upgrade`), not through the alembic command line"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported by WitsKit")
run_migrations_online()
