"""The whole service through a real uvicorn on 127.0.0.1, port 0: what ``witskit run`` does.

Login, refresh, data, the live WebSocket, 401 and 403 over real sockets, the unauthenticated
metrics port, then a clean stop that drains the pipeline into the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import make_config, sim_pipeline
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from witskit.monitoring.metrics import WitsMetrics
from witskit.service.runtime import Bound, serve
from witskit.storage.store import Store


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Any, timeout: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return result


async def start_service(
    tmp_path: Path, *, rate: float
) -> tuple[Any, Bound, asyncio.Event, asyncio.Task[int]]:
    """``witskit run``'s serve() with one simulated rig on a free port; returns once it listens."""
    config = make_config(tmp_path, jwt_secret=None, metrics_port=free_port())
    ready = asyncio.Event()
    stop = asyncio.Event()
    box: dict[str, Bound] = {}

    def on_ready(bound: Bound) -> None:
        box["bound"] = bound
        ready.set()

    task = asyncio.create_task(
        serve(
            config,
            pipeline=sim_pipeline(rate=rate),
            host="127.0.0.1",
            port=0,
            metrics=WitsMetrics(),
            on_ready=on_ready,
            stop=stop,
            handle_signals=False,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 30)
    except BaseException:
        stop.set()
        await asyncio.wait_for(task, 30)
        raise
    return config, box["bound"], stop, task


async def test_end_to_end_through_uvicorn(tmp_path: Path) -> None:
    config, bound, stop, task = await start_service(tmp_path, rate=20)
    try:
        assert bound.port > 0
        assert bound.admin_credentials is not None
        admin, admin_password = bound.admin_credentials
        ws_url = bound.url.replace("http://", "ws://") + "/api/v1/live"
        async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
            # Login with the generated administrator, then make a viewer and a user with no role.
            tokens = (
                await http.post("/api/v1/auth/token", data={"username": admin, "password": admin_password})
            ).json()
            root = {"Authorization": f"Bearer {tokens['access_token']}"}
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
    finally:
        stop.set()
        status = await asyncio.wait_for(task, 30)
    assert status == 0
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
    from witskit.transport.rigserver import Faults, RigServer

    rig = RigServer(seed=3, rate=20, records=(1,), faults=Faults(garbage_rate=0.5))
    port = await rig.serve_tcp("127.0.0.1", 0)
    _, bound, stop, task = await start_service(tmp_path, rate=5)
    try:
        assert bound.admin_credentials is not None
        admin, password = bound.admin_credentials
        async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
            token = (
                await http.post("/api/v1/auth/token", data={"username": admin, "password": password})
            ).json()
            root = {"Authorization": f"Bearer {token['access_token']}"}
            added = await http.post(
                "/api/v1/connections", json={"url": f"tcp://127.0.0.1:{port}", "name": "rig-g"}, headers=root
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
        stop.set()
        await asyncio.wait_for(task, 30)
        await rig.aclose()
