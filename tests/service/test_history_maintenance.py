"""The service's history schedule: WITS_MAINTENANCE_INTERVAL runs the archive and retention, and
WITS_ARCHIVE_URL makes /data and /data/series read the archive (one history over both tiers).

A real service on SQLite in a temporary directory, a real Parquet archive on disk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service_helpers import make_config, running_service

from support.waiting import until
from witskit.storage import Store

START = datetime(2026, 1, 5, 23, 59, 50, tzinfo=UTC)


def old_frames() -> list[Any]:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(7, records=(1,), start=START).frames(20))
    return [f for f in iter_decode(data, source="rig-7") if isinstance(f, DecodedFrame)]


async def test_the_schedule_archives_then_removes_and_the_routes_read_both_tiers(tmp_path: Path) -> None:
    plain = make_config(tmp_path)
    store = await Store.open(plain.database_url_value)
    try:
        assert await store.write(old_frames()) == 600
    finally:
        await store.aclose()
    query = {"source": "rig-7", "codes": "0108,ROPA"}
    series_query = {**query, "start": "2026-01-05T23:59:50Z", "end": "2026-01-06T00:00:10Z", "points": 4}
    async with running_service(plain, ingest=False) as svc:  # no schedule: nothing moves
        before = (await svc.client.get("/api/v1/data", params=query, headers=svc.auth("viewer"))).json()
        series = await svc.client.get("/api/v1/data/series", params=series_query, headers=svc.auth("viewer"))
        series_before = series.json()
        old_tokens = dict(svc.tokens)
    assert before["count"] == 40

    archive = tmp_path / "archive"
    config = make_config(tmp_path, archive_url=str(archive), retention_days=30, maintenance_interval=0.2)
    async with running_service(config, ingest=False, users=False) as svc:
        svc.tokens.update(old_tokens)

        async def emptied() -> bool:
            infos = {s.name: s for s in await svc.service.store.sources()}
            return "rig-7" in infos and infos["rig-7"].point_count == 0

        await until(emptied, timeout=30)
        assert sorted(p.name for p in archive.rglob("*.parquet")) != []
        after = (await svc.client.get("/api/v1/data", params=query, headers=svc.auth("viewer"))).json()
        assert after == before
        series = await svc.client.get("/api/v1/data/series", params=series_query, headers=svc.auth("viewer"))
        assert series.json() == series_before
