"""The accounts revision builds exactly what ``witskit.service.accounts`` declares, on every backend,
and follows the store's schema in one Alembic history."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from witskit.service.accounts import accounts_metadata
from witskit.storage.schema import VERSION_TABLE
from witskit.storage.store import Store

ACCOUNT_TABLES = set(accounts_metadata.tables)


async def test_the_accounts_tables_match_their_declaration(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = await Store.open(db_url, timeout=10)  # runs every revision, the accounts one too
    try:

        def diff(sync_conn: Any) -> list[Any]:
            context = MigrationContext.configure(
                sync_conn,
                opts={
                    "compare_type": True,
                    "version_table": VERSION_TABLE,
                    # Only the accounts tables: the store's are compared by the storage tests.
                    "include_name": lambda name, type_, _parents: type_ != "table" or name in ACCOUNT_TABLES,
                },
            )
            return list(compare_metadata(context, accounts_metadata))

        async with store._engine.connect() as conn:
            changes = await conn.run_sync(diff)
    finally:
        await store.aclose()
    assert changes == []


def test_the_accounts_revision_follows_the_stores_head() -> None:
    from alembic.script import ScriptDirectory

    from witskit.storage.migrations import HEAD, alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    accounts = script.get_revision("0002")
    assert accounts is not None
    assert accounts.down_revision == "0001"
    assert script.get_heads() == [HEAD]  # one line of history, not a branch


async def test_the_accounts_revision_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from witskit.storage.migrations import alembic_config

    url = f"sqlite:///{tmp_path / 'down.db'}"
    store = await Store.open(url)

    def tables(sync_conn: Any) -> set[str]:
        return set(inspect(sync_conn).get_table_names())

    def run(sync_conn: Any, how: str, target: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        getattr(command, how)(cfg, target)

    try:
        async with store._engine.begin() as conn:
            assert await conn.run_sync(tables) >= ACCOUNT_TABLES
            await conn.run_sync(run, "downgrade", "0001")
        async with store._engine.begin() as conn:
            left = await conn.run_sync(tables)
            assert not ACCOUNT_TABLES & left
            assert {"sources", "frames", "points"} <= left
            await conn.run_sync(run, "upgrade", "head")
        async with store._engine.connect() as conn:
            assert await conn.run_sync(tables) >= ACCOUNT_TABLES
    finally:
        with contextlib.suppress(Exception):
            await store.aclose()
