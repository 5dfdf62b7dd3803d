"""A new SQLite database is readable by its owner only (0600), with its -wal and -shm files,
whatever the umask, in a data directory that is 0755 (as an existing one often is)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from witskit.service.accounts import AccountStore
from witskit.storage import Store


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(int(request.param))
    try:
        yield int(request.param)
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
async def test_a_new_database_and_its_wal_files_are_private(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    path = data / "witskit.db"
    store = await Store.open(f"sqlite:///{path}", migrate=True)
    accounts = await AccountStore.open(f"sqlite:///{path}")
    try:
        await accounts.add_user("alice", "$argon2id$v=19$not-a-real-hash", ["viewer"])
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert all(p.exists() for p in files), [p.name for p in data.iterdir()]
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
    finally:
        await accounts.aclose()
        await store.aclose()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
async def test_an_existing_database_readable_by_others_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    store = await Store.open(f"sqlite:///{path}", migrate=True)
    await store.aclose()
    path.chmod(0o644)  # as an older version left it
    with caplog.at_level("WARNING", logger="witskit.storage"):
        store = await Store.open(f"sqlite:///{path}", migrate=True)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert any("was readable by others (mode 644); set to 0600" in r.getMessage() for r in caplog.records)
    finally:
        await store.aclose()
