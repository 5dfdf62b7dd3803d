"""Migrations on every backend: run on start, idempotent, concurrent-safe, and they build the schema."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import text

from witskit.errors import UsageError
from witskit.storage import SchemaMismatch, Store, aupgrade, upgrade
from witskit.storage.migrations import HEAD, alembic_config
from witskit.storage.schema import VERSION_TABLE, metadata, postgres_metadata


async def revision(store: Store) -> str:
    async with store._engine.connect() as conn:
        return str((await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalar_one())


def test_head_is_the_newest_revision_file() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


async def test_opening_a_store_creates_the_schema(fresh_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="witskit.storage")
    store = await Store.open(fresh_url, timeout=10)
    try:
        assert await revision(store) == HEAD
        assert "upgraded the schema" in caplog.text
        assert await store.sources() == []
    finally:
        await store.aclose()
    caplog.clear()
    # The second start finds the schema current and changes nothing.
    again = await Store.open(fresh_url, migrate=False, timeout=10)
    await again.aclose()
    assert "upgraded the schema" not in caplog.text


def test_upgrade_is_idempotent(fresh_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="witskit.storage")
    assert upgrade(fresh_url) == HEAD
    assert caplog.text.count("upgraded the schema") == 1
    assert upgrade(fresh_url) == HEAD
    assert caplog.text.count("upgraded the schema") == 1


async def test_upgrade_inside_an_event_loop_points_to_aupgrade(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with pytest.raises(UsageError, match="aupgrade"):
        upgrade(url)
    assert await aupgrade(url) == HEAD


async def test_concurrent_starts_migrate_once(fresh_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(fresh_url, timeout=20) for _ in range(3)))
    try:
        assert {await revision(s) for s in stores} == {HEAD}
    finally:
        for s in stores:
            await s.aclose()


async def test_a_schema_from_a_newer_witskit_is_refused(fresh_url: str) -> None:
    store = await Store.open(fresh_url, timeout=10)
    try:
        async with store._engine.begin() as conn:
            await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    finally:
        await store.aclose()
    for migrate in (True, False):
        with pytest.raises(SchemaMismatch, match="newer WitsKit"):
            await Store.open(fresh_url, migrate=migrate, timeout=10)


async def test_the_migrated_schema_matches_the_metadata(fresh_url: str) -> None:
    """What the migration builds is what schema.py declares (Alembic's autogenerate finds nothing)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = await Store.open(fresh_url, timeout=10)
    try:
        from sqlalchemy import MetaData

        from witskit.service.accounts import accounts_metadata

        # Every revision's tables: the store's (schema.py) and the service's accounts (0002).
        everything = MetaData()
        for table in (*metadata.tables.values(), *accounts_metadata.tables.values()):
            table.to_metadata(everything)
        if store.backend == "postgresql":  # revision 0009's hourly blocks
            for table in postgres_metadata.tables.values():
                table.to_metadata(everything)

        def diff(sync_conn: Any) -> list[Any]:
            context = MigrationContext.configure(
                sync_conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            return list(compare_metadata(context, everything))

        async with store._engine.connect() as conn:
            changes = await conn.run_sync(diff)
    finally:
        await store.aclose()
    assert changes == []
