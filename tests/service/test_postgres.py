"""The service on PostgreSQL: the same login, data and account flow as on SQLite.

The database comes from the storage tests' own helpers (``tests/storage/conftest.py``): a server on
127.0.0.1 (``WITSKIT_TEST_POSTGRES_URL`` overrides it), a fresh database per test, dropped after.
An unreachable server skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live_helpers import database
from service_helpers import PASSWORD, make_config, running_service


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with database("postgresql", tmp_path) as url:
        yield url


async def test_login_data_and_accounts_on_postgresql(
    postgres_url: str, tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    async with running_service(make_config(tmp_path, database_url=postgres_url), ingest=False) as svc:
        assert svc.service.store.backend == "postgresql"
        await svc.service.store.write(sim_frames("rig-pg", 10))
        login = await svc.client.post("/api/v1/auth/token", data={"username": "viewer", "password": PASSWORD})
        assert login.status_code == 200
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        page = (await svc.client.get("/api/v1/data", params={"codes": "0108"}, headers=auth)).json()
        assert page["count"] == 10
        latest = (await svc.client.get("/api/v1/latest", params={"source": "rig-pg"}, headers=auth)).json()
        assert latest[0]["source"] == "rig-pg"
        key = await svc.client.post(
            "/api/v1/api-keys", json={"name": "pg", "roles": ["viewer"]}, headers=svc.auth("super")
        )
        assert (
            await svc.client.get("/api/v1/sources", headers={"X-API-Key": key.json()["key"]})
        ).status_code == 200
        await svc.service.audit.flush()
        actions = {e.action for e in await svc.service.accounts.list_audit()}
        assert {"login", "user.add", "api_key.add"} <= actions
        assert (await svc.client.get("/readyz")).json()["status"] == "healthy"
