"""The whole service through a real uvicorn on 127.0.0.1, port 0: what ``witskit run`` does.

Login, refresh, data, the live WebSocket, 401 and 403 over real sockets, the unauthenticated
metrics port, then a clean stop that drains the pipeline into the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_helpers import free_port
from service_helpers import admin_auth, make_config, serving, sim_pipeline
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.waiting import until
from witskit.config import WitsConfig
from witskit.storage.store import Store


def run_config(tmp_path: Path) -> WitsConfig:
    """``witskit run``'s settings: a generated signing key and administrator, a metrics port."""
    return make_config(tmp_path, jwt_secret=None, metrics_port=free_port())


async def test_end_to_end_through_uvicorn(tmp_path: Path) -> None:
    config = run_config(tmp_path)
    async with serving(config, pipeline=sim_pipeline(rate=20)) as bound:
        assert bound.port > 0
        ws_url = bound.url.replace("http://", "ws://") + "/api/v1/live"
        # Login with the generated administrator, then make a viewer and a user with no role.
        root = await admin_auth(bound)
        async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
            for name, roles in (("watcher", ["viewer"]), ("nobody", [])):
                made = await http.post(
                    "/api/v1/users",
                    json={"username": name, "password": "p" * 16, "roles": roles},
                    headers=root,
                )
                assert made.status_code == 201
            viewer = (
                await http.post("/api/v1/auth/token", data={"username": "watcher", "password": "p" * 16})
            ).json()
            nobody = (
                await http.post("/api/v1/auth/token", data={"username": "nobody", "password": "p" * 16})
            ).json()
            refreshed = await http.post(
                "/api/v1/auth/refresh", json={"refresh_token": viewer["refresh_token"]}
            )
            assert refreshed.status_code == 200
            watch = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}

            # 401 and 403 over the wire.
            assert (await http.get("/api/v1/sources")).status_code == 401
            assert (await http.get("/api/v1/users", headers=watch)).status_code == 403
            assert (await http.get("/metrics")).status_code == 401

            # Data ingested by the pipeline running next to the API.
            async def have_rows() -> Any:
                page = (
                    await http.get("/api/v1/data", params={"source": "rig-1", "codes": "DBTM"}, headers=watch)
                ).json()
                return page["count"] >= 3 and page

            page = await until(have_rows)
            assert page["rows"][0]["source"] == "rig-1"
            assert (
                await http.get("/api/v1/latest", params={"source": "rig-1"}, headers=watch)
            ).status_code == 200

            # The metrics port needs no token (an internal port for Prometheus).
            assert bound.metrics_url is not None
            scraped = await http.get(bound.metrics_url)
            assert 'wits_frames_processed_total{source="rig-1",status="success"}' in scraped.text
            assert (await http.get(bound.metrics_url.replace("/metrics", "/readyz"))).status_code == 200

        # The live WebSocket: header or ?token= credentials, refused before the handshake otherwise.
        async with connect(f"{ws_url}?source=rig-1", additional_headers=watch) as ws:
            record = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert record["source"] == "rig-1"
            assert any(p["code"] == "0108" for p in record["points"])
        async with connect(f"{ws_url}?token={viewer['access_token']}") as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["source"] == "rig-1"
        for headers, status in (({}, 401), ({"Authorization": "Bearer nonsense"}, 401)):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == status
        with pytest.raises(InvalidStatus) as forbidden:
            async with connect(
                ws_url, additional_headers={"Authorization": f"Bearer {nobody['access_token']}"}
            ):
                pass
        assert forbidden.value.response.status_code == 403

        # A subscriber that stays connected is ended cleanly by the stop.
        lingering = await connect(f"{ws_url}?source=rig-1", additional_headers=watch)
        await asyncio.wait_for(lingering.recv(), 10)
    # Stopped with status 0 (checked by serving()).
    with contextlib.suppress(Exception):
        await lingering.close()
    # Drained: everything received is in the store.
    store = await Store.open(config.database_url_value, migrate=False)
    try:
        [info] = await store.sources()
        assert info.name == "rig-1"
        assert info.frame_count >= 3
    finally:
        await store.aclose()


async def test_frame_errors_reach_live_subscribers(tmp_path: Path) -> None:
    """A rig that sends garbage between frames: the WebSocket carries frame_error events too."""
    from witskit.sim.server import Faults, RigServer

    rig = RigServer(seed=3, rate=20, records=(1,), faults=Faults(garbage_rate=0.5))
    port = await rig.serve_tcp("127.0.0.1", 0)
    try:
        async with serving(run_config(tmp_path), pipeline=sim_pipeline(rate=5)) as bound:
            root = await admin_auth(bound)
            async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
                added = await http.post(
                    "/api/v1/connections",
                    json={"url": f"tcp://127.0.0.1:{port}", "name": "rig-g"},
                    headers=root,
                )
                assert added.status_code in (200, 201), added.text
            ws_url = bound.url.replace("http://", "ws://") + "/api/v1/live?source=rig-g"
            kinds: set[str] = set()
            async with connect(ws_url, additional_headers=root) as ws:
                while kinds != {"frame", "frame_error"}:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    assert message["source"] == "rig-g"
                    kinds.add(message.get("type", "frame"))
                    if message.get("type") == "frame_error":
                        assert message["kind"] == "garbage"
                        assert message["message"]
    finally:
        await rig.aclose()
