"""Connections added through the API outlive the process: ``witskit run`` restores them, started or
stopped as they were left; the pipeline file wins a name clash; a URL's secrets stay out of logs.

Each "restart" closes the service and opens a new one on the same database, as ``witskit run``
does (``Service.open`` restores the connections; ``running_service`` runs the pipeline).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from service_helpers import make_config, running_service, serving, sim_pipeline

from support.waiting import until
from witskit.service.accounts import AccountStore
from witskit.storage.store import Store

RIG_2 = "sim://rig-2?rate=20&records=1"


async def states(svc: Any) -> dict[str, tuple[str, bool]]:
    listed = (await svc.client.get("/api/v1/connections", headers=svc.auth("admin"))).json()
    return {c["name"]: (c["url"], c["running"]) for c in listed}


async def kept(url: str) -> dict[str, bool]:
    accounts = await AccountStore.open(url)
    try:
        return {c.name: c.enabled for c in await accounts.list_connections()}
    finally:
        await accounts.aclose()


async def admin_token(svc: Any) -> dict[str, str]:
    """A token for the admin created by the first start (its users are in the same database)."""
    from witskit.security.auth import User

    return {"admin": svc.service.identity.auth.create_access_token(User(username="admin", roles=["admin"]))}


async def test_added_connections_are_restored_as_they_were_left(db_url: str, tmp_path: Path) -> None:
    config = make_config(tmp_path, database_url=db_url)
    async with running_service(config, ingest=True, pipeline=sim_pipeline()) as svc:
        auth = svc.auth("admin")
        added = await svc.client.post(
            "/api/v1/connections", json={"url": RIG_2, "name": "rig-2"}, headers=auth
        )
        assert added.status_code == 201, added.text
        idle = await svc.client.post(
            "/api/v1/connections",
            json={"url": "sim://rig-3?rate=1", "name": "rig-3", "start": False},
            headers=auth,
        )
        assert idle.json()["running"] is False
        added_at = added.json()["added_at"]
    assert await kept(db_url) == {"rig-2": True, "rig-3": False}  # the pipeline file's are not kept

    # Restart: rig-2 is back and running (it ingests), rig-3 is back and stopped.
    async with running_service(config, ingest=True, pipeline=sim_pipeline(), users=False) as svc:
        svc.tokens.update(await admin_token(svc))
        assert await states(svc) == {
            "rig-1": ("sim://rig-1?rate=20.0&records=1", True),
            "rig-2": (RIG_2, True),
            "rig-3": ("sim://rig-3?rate=1", False),
        }
        one = (await svc.client.get("/api/v1/connections/rig-2", headers=svc.auth("admin"))).json()
        assert one["added_at"] == added_at

        async def ingests_rig_2() -> bool:
            return any(s.name == "rig-2" and s.frame_count > 0 for s in await svc.service.store.sources())

        await until(ingests_rig_2)
        auth = svc.auth("admin")
        assert (await svc.client.post("/api/v1/connections/rig-2/stop", headers=auth)).status_code == 200
        assert (await svc.client.post("/api/v1/connections/rig-3/start", headers=auth)).status_code == 200
        # Stopping a source of the pipeline file lasts until the process ends.
        assert (await svc.client.post("/api/v1/connections/rig-1/stop", headers=auth)).status_code == 200
    assert await kept(db_url) == {"rig-2": False, "rig-3": True}

    async with running_service(config, ingest=True, pipeline=sim_pipeline(), users=False) as svc:
        svc.tokens.update(await admin_token(svc))
        running = {name: run for name, (_, run) in (await states(svc)).items()}
        assert running == {"rig-1": True, "rig-2": False, "rig-3": True}
        auth = svc.auth("admin")
        assert (await svc.client.delete("/api/v1/connections/rig-2", headers=auth)).status_code == 204
    assert await kept(db_url) == {"rig-3": True}

    async with running_service(config, ingest=True, pipeline=sim_pipeline(), users=False) as svc:
        svc.tokens.update(await admin_token(svc))
        assert set(await states(svc)) == {"rig-1", "rig-3"}

    # What `witskit run` announces at start ("Ingesting: ...") names the restored one too.
    async with serving(config, pipeline=sim_pipeline()) as bound:
        assert set(bound.connections) == {"rig-1", "rig-3"}


async def test_the_pipeline_file_wins_a_name_clash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path)
    url = config.database_url_value
    await (await Store.open(url, migrate=True)).aclose()
    accounts = await AccountStore.open(url)
    try:
        await accounts.add_connection("rig-1", "sim://impostor?rate=5", enabled=True, created_by="test")
    finally:
        await accounts.aclose()
    with caplog.at_level(logging.WARNING, logger="witskit.service"):
        async with running_service(config, ingest=True, pipeline=sim_pipeline()) as svc:
            assert await states(svc) == {"rig-1": ("sim://rig-1?rate=20.0&records=1", True)}
    assert any("pipeline file has one by that name" in r.getMessage() for r in caplog.records)
    assert await kept(url) == {"rig-1": True}  # left alone: it returns if the file stops naming rig-1


async def test_secrets_in_urls_stay_out_of_logs_and_audit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    url = config.database_url_value
    await (await Store.open(url, migrate=True)).aclose()
    accounts = await AccountStore.open(url)
    try:
        # Kept as given (it was added when such URLs were allowed, or written by hand): it no
        # longer opens, and the start says so without the password.
        await accounts.add_connection("old-rig", "tcp://wits:hunter2@127.0.0.1:9", created_by="test")
    finally:
        await accounts.aclose()
    with caplog.at_level(logging.INFO):
        async with running_service(config, ingest=True, pipeline=sim_pipeline()) as svc:
            auth = svc.auth("admin")
            assert "old-rig" not in await states(svc)
            refused = await svc.client.post(
                "/api/v1/connections",
                json={"url": "tls://127.0.0.1:9?password=hunter2", "name": "x"},
                headers=auth,
            )
            assert refused.status_code == 422
            # The row that cannot be restored can still be removed through the API.
            assert (await svc.client.delete("/api/v1/connections/old-rig", headers=auth)).status_code == 204
            assert (await svc.client.delete("/api/v1/connections/old-rig", headers=auth)).status_code == 404
            await svc.service.audit.flush()
            audit = await svc.service.accounts.list_audit(action="connection.add")
    messages = [r.getMessage() for r in caplog.records]
    assert any("old-rig (tcp://wits:***@127.0.0.1:9) cannot be restored" in m for m in messages), messages
    assert not any("hunter2" in m for m in messages)
    assert audit[0].outcome == "failure"
    assert "hunter2" not in str(audit[0].detail)
    assert await kept(url) == {}


async def test_a_name_too_long_to_keep_is_refused(tmp_path: Path) -> None:
    async with running_service(make_config(tmp_path), ingest=True, pipeline=sim_pipeline()) as svc:
        auth = svc.auth("admin")
        long = await svc.client.post(
            "/api/v1/connections", json={"url": RIG_2, "name": "r" * 101}, headers=auth
        )
        assert long.status_code == 422
        fits = await svc.client.post(
            "/api/v1/connections", json={"url": RIG_2, "name": "r" * 100}, headers=auth
        )
        assert fits.status_code == 201
        assert (await svc.client.get("/api/v1/connections", headers=auth)).status_code == 200
    assert await kept(make_config(tmp_path).database_url_value) == {"r" * 100: True}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"url": RIG_2, "name": "rig-2\n2026-12-03 error: forged"}, "name"),
        ({"url": RIG_2, "name": "rig-\x1b]0;owned\x07"}, "name"),
        ({"url": RIG_2, "name": " rig-2"}, "name"),
        ({"url": "tcp://127.0.0.1:9?name=evil%0aline"}, "option"),
    ],
    ids=["newline", "escape", "space", "name-option"],
)
async def test_a_name_with_control_characters_is_refused(
    tmp_path: Path, body: dict[str, str], why: str
) -> None:
    # A source's name reaches log lines, terminals (witskit query, status lines) and the store: an
    # admin must not be able to forge a log line or send escape sequences to whoever reads them.
    async with running_service(make_config(tmp_path), ingest=True, pipeline=sim_pipeline()) as svc:
        auth = svc.auth("admin")
        refused = await svc.client.post("/api/v1/connections", json=body, headers=auth)
        assert refused.status_code == 422, (why, refused.text)
        assert "printable" in refused.text
        names = [c["name"] for c in (await svc.client.get("/api/v1/connections", headers=auth)).json()]
        assert names == ["rig-1"]
