"""Secrets never reach the logs: after a login, a failed login, an API key, and database errors
whose text carries a password in a URL. And every request's log line has its request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import PASSWORD, SECRET, make_config, reset_logging, running_service

from witskit.monitoring.metrics import WitsMetrics
from witskit.security.logging import configure_logging
from witskit.service.runtime import Service
from witskit.storage.errors import StorageError

DB_PASSWORD = "Sup3r-Secret-DB-pw"
WRONG_PASSWORD = "Hunter2-wrong-password!"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        yield stream
    finally:
        reset_logging()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_no_secret_in_the_logs_of_logins_keys_and_database_errors(
    tmp_path: Path, captured: io.StringIO
) -> None:
    async with running_service(make_config(tmp_path), ingest=False) as svc:
        ok = await svc.client.post("/api/v1/auth/token", data={"username": "viewer", "password": PASSWORD})
        access, refresh = ok.json()["access_token"], ok.json()["refresh_token"]
        await svc.client.get("/api/v1/sources", headers={"Authorization": f"Bearer {access}"})
        bad = await svc.client.post(
            "/api/v1/auth/token", data={"username": "viewer", "password": WRONG_PASSWORD}
        )
        assert bad.status_code == 401
        await svc.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        key = (
            await svc.client.post(
                "/api/v1/api-keys", json={"name": "scraper", "roles": ["viewer"]}, headers=svc.auth("super")
            )
        ).json()["key"]
        await svc.client.get("/api/v1/sources", headers={"X-API-Key": key})
        await svc.client.get("/api/v1/sources", headers={"X-API-Key": key + "-tampered"})

        # A driver error quoting the URL with its password, in the middle of a request.
        async def broken() -> Any:
            raise OSError(f"could not connect to postgresql://witskit:{DB_PASSWORD}@db:5432/wits")

        svc.service.store.sources = broken
        failed = await svc.client.get("/api/v1/sources", headers=svc.auth("viewer"))
        assert failed.status_code == 500
        assert DB_PASSWORD not in failed.text
        assert failed.json()["request_id"] == failed.headers["x-request-id"]
        await svc.service.audit.flush()

    # A database that cannot be reached at start, named by a URL with a password.
    config = make_config(tmp_path, database_url=f"postgresql://witskit:{DB_PASSWORD}@127.0.0.1:1/wits")
    with pytest.raises(StorageError) as caught:
        await Service.open(config, ingest=False, metrics=WitsMetrics())
    assert DB_PASSWORD not in str(caught.value)
    logging.getLogger("witskit.cli").error("start failed", exc_info=caught.value)

    text = captured.getvalue()
    for secret in (PASSWORD, WRONG_PASSWORD, DB_PASSWORD, SECRET, access, refresh, key):
        assert secret not in text
    logged = records(captured)
    assert any(r.get("event") == "audit" and r.get("outcome") == "failure" for r in logged)
    assert any("postgresql://witskit:***@" in json.dumps(r) for r in logged)


async def test_every_request_is_logged_with_its_request_id(tmp_path: Path, captured: io.StringIO) -> None:
    async with running_service(make_config(tmp_path), ingest=False) as svc:
        await svc.client.get("/api/v1/sources", headers={**svc.auth("viewer"), "X-Request-ID": "req-123"})
    lines = [r for r in records(captured) if r.get("event") == "request"]
    [line] = [r for r in lines if r.get("request_id") == "req-123"]
    assert line["path"] == "/api/v1/sources"
    assert line["status"] == 200
    assert line["principal"] == "viewer"
    assert line["client"] == "192.0.2.10"
    assert isinstance(line["duration_ms"], float)


async def test_debug_logs_of_a_real_server_hold_no_hash_session_or_token(
    tmp_path: Path, captured: io.StringIO
) -> None:
    """WITS_LOG_LEVEL=DEBUG: the database drivers' and uvicorn's own DEBUG lines (SQL parameters,
    query strings) stay out, so password hashes, key hashes and session ids are never written."""
    import httpx
    from service_helpers import admin_auth, serving
    from websockets.asyncio.client import connect

    from witskit.security.auth import AuthManager, TokenType, hash_api_key

    config = make_config(tmp_path, log_level="DEBUG")
    async with serving(config, ingest=False) as bound:
        root = await admin_auth(bound)
        async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
            made = await http.post(
                "/api/v1/users",
                json={"username": "dana", "password": PASSWORD, "roles": ["viewer"]},
                headers=root,
            )
            assert made.status_code == 201
            login = (
                await http.post("/api/v1/auth/token", data={"username": "dana", "password": PASSWORD})
            ).json()
            refreshed = (
                await http.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
            ).json()
            key = (
                await http.post("/api/v1/api-keys", json={"name": "k", "roles": ["viewer"]}, headers=root)
            ).json()
            await http.get("/api/v1/sources", headers={"X-API-Key": key["key"]})
        ws_url = bound.url.replace("http://", "ws://") + f"/api/v1/live?token={refreshed['access_token']}"
        async with connect(ws_url):
            pass
        from witskit.service.accounts import AccountStore

        accounts = await AccountStore.open(config.database_url_value)
        try:
            user = await accounts.get_user("dana")
        finally:
            await accounts.aclose()
    assert user is not None
    session = AuthManager(SECRET).decode_token(login["refresh_token"], TokenType.REFRESH)["jti"]
    text = captured.getvalue()
    assert "SELECT" not in text  # no SQL: the drivers' loggers stay at WARNING
    for secret in (
        user.password_hash,
        user.password_hash.split("$")[-1],
        hash_api_key(key["key"]),
        key["key"],
        session,
        login["access_token"],
        refreshed["access_token"],
        PASSWORD,
    ):
        assert secret not in text, secret[:12]


async def test_a_secret_in_a_rejected_request_reaches_no_422_audit_entry_or_log(
    tmp_path: Path, captured: io.StringIO
) -> None:
    from service_helpers import sim_pipeline

    secret = "Hunter2-key-passphrase"
    async with running_service(make_config(tmp_path), ingest=True, pipeline=sim_pipeline()) as svc:
        answers = [
            await svc.client.post(
                "/api/v1/connections",
                json={"url": f"tls://127.0.0.1:1?key_password={secret}", "name": "x"},
                headers=svc.auth("super"),
            ),
            await svc.client.post(
                "/api/v1/users",
                json={"username": "eve", "password": secret[:8], "roles": ["viewer"]},
                headers=svc.auth("super"),
            ),
            await svc.client.post(
                "/api/v1/auth/password",
                json={"current_password": secret, "new_password": 5},
                headers=svc.auth("viewer"),
            ),
        ]
        await svc.service.audit.flush()
        audit = await svc.service.accounts.list_audit()
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert secret not in answer.text
        assert secret[:8] not in answer.text
    assert "key_password=***" in answers[0].json()["detail"]
    assert answers[1].json()["detail"][0]["loc"] == ["body", "password"]
    assert secret not in repr(audit)
    assert secret not in captured.getvalue()
