"""witskit.storage.database: the public handle the service's tables and the live tailer share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text

from witskit.storage.database import Database, check_url
from witskit.storage.errors import DatabaseUnavailable, StorageConfigError
from witskit.storage.schema import sources


async def test_write_commits_and_read_sees_it_and_a_failed_write_rolls_back(db_url: str, store: Any) -> None:
    db = Database.open(db_url, pool_size=1, timeout=10)
    name = f"db-handle-{db.dialect}"
    row = {"name": name, "created_at": datetime(2026, 1, 2, tzinfo=UTC)}
    count = select(func.count()).select_from(sources).where(sources.c.name == name)
    try:
        async with db.write("add a source to") as conn:
            await conn.execute(insert(sources).values(row))
        async with db.read("count the sources of") as conn:
            assert (await conn.execute(count)).scalar_one() == 1

        async def delete_then_fail() -> None:
            async with db.write("remove a source from") as conn:
                await conn.execute(delete(sources).where(sources.c.name == name))
                raise RuntimeError("boom")  # not a database error: raised unchanged, write undone

        with pytest.raises(RuntimeError, match="boom"):
            await delete_then_fail()
        async with db.read("count the sources of") as conn:
            assert (await conn.execute(count)).scalar_one() == 1
        async with db.write("remove a source from") as conn:
            await conn.execute(delete(sources).where(sources.c.name == name))
    finally:
        await db.aclose()
        await db.aclose()  # idempotent


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_a_database_error_is_a_storage_error_naming_the_action_and_the_masked_url(scheme: str) -> None:
    pytest.importorskip("asyncpg" if scheme == "postgresql" else "asyncmy")
    db = Database.open(f"{scheme}://wits:s3cret-pw@127.0.0.1:1/wits", pool_size=1, timeout=3)
    try:
        assert "s3cret-pw" not in repr(db)
        assert not db.in_memory
        with pytest.raises(DatabaseUnavailable) as info:
            async with db.read("list the users of") as conn:
                await conn.execute(text("SELECT 1"))
        assert str(info.value).startswith(f"could not list the users of {scheme}://wits:***@127.0.0.1:1/wits")
        assert "s3cret-pw" not in str(info.value)
    finally:
        await db.aclose()


async def test_check_url_refuses_a_bad_url_and_in_memory_sqlite_is_told_apart(tmp_path: Any) -> None:
    with pytest.raises(StorageConfigError):
        check_url("mongodb://127.0.0.1/wits")
    with pytest.raises(StorageConfigError):
        check_url(f"sqlite:///{tmp_path / 'missing-dir' / 'wits.db'}")
    check_url(f"sqlite:///{tmp_path / 'wits.db'}")
    for url, in_memory in [("sqlite:///:memory:", True), (f"sqlite:///{tmp_path / 'wits.db'}", False)]:
        db = Database.open(url)
        assert db.in_memory is in_memory
        await db.aclose()
