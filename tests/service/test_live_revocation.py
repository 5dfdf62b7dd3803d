"""An open live WebSocket ends when its credential does: expiry, a disabled user, a revoked key.

A real uvicorn on 127.0.0.1 streams a simulated rig at 20 frames a second; the credential is
re-checked every 0.2 s here (``WITS_LIVE_RECHECK_SECONDS``). The stream must close with 1008 and
send nothing after the token's ``exp``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import SECRET, admin_auth, make_config, serving, sim_pipeline
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from witskit.security.auth import AuthManager, TokenType, User

API = "/api/v1"
RECHECK = 0.2


async def frames_until_closed(ws: ClientConnection, limit: float = 10.0) -> list[float]:
    """The arrival time of every message until the server closes (``limit`` seconds at most)."""
    arrivals: list[float] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        except ConnectionClosed:
            return arrivals
        arrivals.append(time.time())
    raise AssertionError(f"still streaming after {limit} s")


def short_token(name: str, seconds: float) -> tuple[str, float]:
    """An access token for ``name`` signed with the service's key, expiring in ``seconds``."""
    auth = AuthManager(SECRET)
    claims: dict[str, Any] = auth._claims(User(username=name), TokenType.ACCESS, timedelta(seconds=seconds))
    return auth._encode(claims), float(int(claims["exp"].timestamp()))  # JWT times are whole seconds


async def test_the_stream_closes_at_the_tokens_expiry(tmp_path: Path) -> None:
    config = make_config(tmp_path, live_recheck_seconds=30)  # expiry must not wait for a re-check
    async with serving(config, pipeline=sim_pipeline(rate=20)) as bound:
        assert bound.admin_credentials is not None
        token, exp = short_token(bound.admin_credentials[0], 2.5)
        ws_url = bound.url.replace("http://", "ws://") + f"{API}/live?token={token}"
        async with connect(ws_url) as ws:
            arrivals = await frames_until_closed(ws)
            closed = time.time()
            assert ws.close_code == 1008
            assert ws.close_reason == "credential expired or revoked"
        assert arrivals, "nothing was streamed before the expiry"
        assert max(arrivals) <= exp + 0.05, "a frame was sent after the token expired"
        assert closed >= exp - 0.05
        assert closed <= exp + 2.0


@pytest.mark.parametrize("change", ["user disabled", "roles taken away", "API key revoked"])
async def test_the_stream_closes_when_the_credential_is_revoked(tmp_path: Path, change: str) -> None:
    config = make_config(tmp_path, live_recheck_seconds=RECHECK)
    async with serving(config, pipeline=sim_pipeline(rate=20)) as bound:
        root = await admin_auth(bound)
        async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
            password = "watcher's passphrase"
            made = await http.post(
                f"{API}/users",
                json={"username": "watcher", "password": password, "roles": ["viewer"]},
                headers=root,
            )
            assert made.status_code == 201, made.text
            if change == "API key revoked":
                key = (
                    await http.post(
                        f"{API}/api-keys", json={"name": "wall", "roles": ["viewer"]}, headers=root
                    )
                ).json()
                credential = {"X-API-Key": key["key"]}
            else:
                login = await http.post(
                    f"{API}/auth/token", data={"username": "watcher", "password": password}
                )
                credential = {"Authorization": f"Bearer {login.json()['access_token']}"}
            ws_url = bound.url.replace("http://", "ws://") + f"{API}/live"
            async with connect(ws_url, additional_headers=credential) as ws:
                await asyncio.wait_for(ws.recv(), 10)  # streaming
                if change == "user disabled":
                    done = await http.patch(f"{API}/users/watcher", json={"is_active": False}, headers=root)
                elif change == "roles taken away":
                    done = await http.patch(f"{API}/users/watcher", json={"roles": []}, headers=root)
                else:
                    done = await http.delete(f"{API}/api-keys/{key['key_id']}", headers=root)
                assert done.status_code == 200, done.text
                revoked_at = time.time()
                arrivals = await frames_until_closed(ws)
                assert ws.close_code == 1008
            assert not [t for t in arrivals if t > revoked_at + RECHECK + 1.0]


async def test_a_database_outage_does_not_close_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accounts cannot be read for a while: the stream goes on (nothing can be revoked
    meanwhile), still bounded by the token's expiry."""
    from witskit.service.identity import Identity
    from witskit.storage.errors import DatabaseUnavailable

    config = make_config(tmp_path, live_recheck_seconds=RECHECK)
    async with serving(config, pipeline=sim_pipeline(rate=20)) as bound:
        assert bound.admin_credentials is not None
        token, exp = short_token(bound.admin_credentials[0], 3.0)
        ws_url = bound.url.replace("http://", "ws://") + f"{API}/live?token={token}"
        async with connect(ws_url) as ws:
            await asyncio.wait_for(ws.recv(), 10)

            async def down(self: Identity, username: str) -> None:
                raise DatabaseUnavailable("the accounts database is down (test)")

            monkeypatch.setattr(Identity, "user", down)  # the user cache and the database behind it
            arrivals = await frames_until_closed(ws)
            assert ws.close_code == 1008  # at the expiry, not before
        assert max(arrivals) > exp - 1.0, "the stream stopped long before the token expired"
        assert max(arrivals) <= exp + 0.05
