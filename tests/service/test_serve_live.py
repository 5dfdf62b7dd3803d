"""``witskit serve`` streams over its WebSocket the frames another process writes.

A real second writer (a :class:`Store` on the same database, as ``witskit stream --db`` or another
``witskit run`` would be) writes frames while ``serve()`` runs through real uvicorn on 127.0.0.1,
port 0, and a WebSocket client receives them: in order, each once, none of the history from before
it subscribed, each within a couple of poll intervals. The sources listing and the latest values
follow the writer too.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_helpers import depth_of, make_frame
from service_helpers import admin_auth, make_config, serving
from websockets.asyncio.client import connect

from support.waiting import until
from witskit.service.server import Bound
from witskit.storage.store import Store

#: The poll interval of these tests (the default is 0.5 s).
INTERVAL = 0.2
FRAMES = 30


pytestmark = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


@dataclass
class Served:
    bound: Bound
    auth: dict[str, str]

    @property
    def ws(self) -> str:
        return self.bound.url.replace("http://", "ws://") + "/api/v1/live"


@pytest.fixture
async def served(db_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """``witskit serve`` on the database, through uvicorn, with an administrator's token."""
    config = make_config(tmp_path, database_url=db_url, jwt_secret=None, metrics_enabled=False)
    async with serving(config, ingest=False, live_interval=INTERVAL) as bound:
        yield Served(bound, await admin_auth(bound))


async def test_serve_streams_frames_another_process_writes(db_url: str, served: Served) -> None:
    loop = asyncio.get_running_loop()
    writer = await Store.open(db_url, migrate=False, timeout=10)
    try:
        await writer.write([make_frame("rig-s", s, 100.0 + s) for s in range(10)])  # before: not sent
        written_at: dict[float, float] = {}
        received: list[tuple[dict[str, Any], float]] = []
        async with connect(f"{served.ws}?source=rig-s", additional_headers=served.auth) as ws:

            async def write() -> None:
                for i in range(FRAMES):
                    # Pairs of records share a rig timestamp and are committed apart.
                    frame = make_frame("rig-s", 10 + i // 2, 1000.0 + i)
                    await writer.write([frame, make_frame("rig-other", i, 1.0)])
                    written_at[1000.0 + i] = loop.time()
                    await asyncio.sleep(0.03)

            producer = asyncio.create_task(write())
            try:
                async with asyncio.timeout(30):
                    while len(received) < FRAMES:
                        received.append((json.loads(await ws.recv()), loop.time()))
            finally:
                await producer
            with pytest.raises(TimeoutError):  # nothing more: no duplicate, no other source
                await asyncio.wait_for(ws.recv(), INTERVAL * 4)
        depths = [depth_of(record) for record, _ in received]
        assert depths == [1000.0 + i for i in range(FRAMES)]
        assert {record["source"] for record, _ in received} == {"rig-s"}
        times = [record["timestamp"] for record, _ in received]
        assert times == sorted(times)
        assert received[0][0]["points"][2] == {
            "code": "0108",
            "name": "DBTM",
            "value": 1000.0,
            "raw": "1000.00",
            "unit": "F",
        }
        # Each frame arrives within a couple of poll intervals of its commit (a loaded machine may
        # delay a few by a scheduler tick or two: the typical frame is held to the bound).
        delays = [at - written_at[depth_of(record)] for record, at in received]
        assert statistics.median(delays) <= 2 * INTERVAL, delays
        assert max(delays) <= 2 * INTERVAL + 1.0, delays

        # The sources listing and the latest values follow the writer as well.
        async with httpx.AsyncClient(base_url=served.bound.url, timeout=10, headers=served.auth) as http:
            listed = {s["name"]: s for s in (await http.get("/api/v1/sources")).json()}
            assert listed["rig-s"]["frame_count"] == 10 + FRAMES
            await writer.write([make_frame("rig-s", 99, 4242.0)])

            async def newest() -> bool:
                [latest] = (await http.get("/api/v1/latest", params={"source": "rig-s"})).json()
                return any(v["code"] == "0108" and v["value"] == 4242.0 for v in latest["values"])

            await until(newest, timeout=10)
            listed = {s["name"]: s for s in (await http.get("/api/v1/sources")).json()}
            assert listed["rig-s"]["frame_count"] == 11 + FRAMES
    finally:
        await writer.aclose()


async def test_every_source_and_a_source_not_written_yet(db_url: str, served: Served) -> None:
    writer = await Store.open(db_url, migrate=False, timeout=10)
    try:
        await writer.write([make_frame("rig-a", 0, 1.0)])
        async with (
            connect(served.ws, additional_headers=served.auth) as every,
            connect(f"{served.ws}?source=rig-new", additional_headers=served.auth) as one,
        ):
            await writer.write([make_frame("rig-a", 1, 2.0), make_frame("rig-new", 0, 7.0)])
            await writer.write([make_frame("rig-new", 1, 8.0)])
            got = sorted(
                (r["source"], depth_of(r))
                for r in [json.loads(await asyncio.wait_for(every.recv(), 10)) for _ in range(3)]
            )
            assert got == [("rig-a", 2.0), ("rig-new", 7.0), ("rig-new", 8.0)]
            mine = [depth_of(json.loads(await asyncio.wait_for(one.recv(), 10))) for _ in range(2)]
            assert mine == [7.0, 8.0]  # a source that appears later is followed from its first frame
    finally:
        await writer.aclose()
