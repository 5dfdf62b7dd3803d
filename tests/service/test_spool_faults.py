"""A spool that cannot write, or is full, is loud: /readyz not ready with the reason, metrics, logs.

The fault is real: the spool's next segment name is taken by a directory, so ``os.open`` fails
(EEXIST) exactly where a full disk fails (ENOSPC), with no root and no mock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from service_helpers import make_config, sim_pipeline

from support.auth import fast_hashing
from support.waiting import until
from witskit.monitoring.metrics import WitsMetrics


async def test_a_spool_that_cannot_write_makes_readyz_not_ready_and_recovers(tmp_path: Path) -> None:
    from witskit.service.runtime import Service

    service = await Service.open(
        make_config(tmp_path), ingest=True, pipeline=sim_pipeline(rate=50), metrics=WitsMetrics()
    )
    fast_hashing(service)
    assert service.spool is not None
    assert service.spool.last_seq == 0
    blocker = service.spool.directory / f"{1:016d}.wal"  # where the first segment goes
    blocker.mkdir()
    task = asyncio.create_task(service.run_pipeline())
    transport = httpx.ASGITransport(app=service.app, client=("192.0.2.10", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://witskit.test") as client:

            async def not_ready() -> Any:
                ready = await client.get("/readyz")
                return ready if ready.status_code == 503 else None

            ready = await until(not_ready)
            checks = {c["name"]: c for c in ready.json()["checks"]}
            # The public answer says why, without paths or rig names (those need analytics:view).
            assert checks["spool"]["status"] == "unhealthy"
            assert "cannot write" in checks["spool"]["reason"]
            assert checks["sources"]["status"] == "degraded"
            assert "paused" in checks["sources"]["reason"]
            assert "rig-1" not in ready.text
            assert "message" not in checks["spool"]
            detail = await service.health.get_overall_health()
            messages = {c["name"]: c["message"] for c in detail.details["checks"]}
            assert "rig-1" in messages["sources"]
            assert "cannot write" in messages["spool"]
            text = service.render_metrics().decode()
            assert "wits_spool_writable 0.0" in text
            assert "wits_sources_paused 1.0" in text
            assert "wits_spool_write_failures 0.0" not in text

            blocker.rmdir()  # space comes back

            async def ready_again() -> Any:
                return (await client.get("/readyz")).status_code == 200

            await until(ready_again)
            await until(lambda: service.spool is not None and service.spool.acked_seq > 0)
            text = service.render_metrics().decode()
            assert "wits_spool_writable 1.0" in text
            assert "wits_sources_paused 0.0" in text
    finally:
        service.stop()
        await task
        await service.aclose()
