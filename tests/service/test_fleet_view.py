"""A fleet in the service: the central view (``/api/v1/fleet``, the fleet fields of ``/sources``)
and a fleet edge's readiness and metrics (its JetStream sink's cluster unreachable)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service_helpers import Running, make_config, running_service

from support.natscluster import free_ports
from support.waiting import until
from witskit.config import PipelineConfig, SinkConfig, SourceConfig
from witskit.storage.fleet_status import RigRow


async def test_the_fleet_view_lists_every_rig_with_its_lag(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    await svc.service.store.write(sim_frames("rig-7", 5))
    fleet = svc.service.context.fleet
    now = datetime.now(UTC)
    await fleet.record(
        [
            RigRow("rig-7", "site-a", "w1", now - timedelta(seconds=3.5), now - timedelta(seconds=3)),
            RigRow("rig-9", "site-b", "w2", now - timedelta(seconds=61), now - timedelta(seconds=60)),
        ]
    )
    got = await svc.client.get("/api/v1/fleet", headers=svc.auth("viewer"))
    assert got.status_code == 200
    body = got.json()
    assert [r["source"] for r in body["rigs"]] == ["rig-7", "rig-9"]
    rig7 = body["rigs"][0]
    assert (rig7["edge"], rig7["worker"], rig7["lag_seconds"]) == ("site-a", "w1", 0.5)
    assert 3 <= rig7["age_seconds"] < 30
    assert body["max_lag_seconds"] == 1.0
    assert body["max_age_seconds"] >= 60
    assert (await svc.client.get("/api/v1/fleet")).status_code == 401
    sources = {
        s["name"]: s for s in (await svc.client.get("/api/v1/sources", headers=svc.auth("viewer"))).json()
    }
    assert (sources["rig-7"]["edge"], sources["rig-7"]["lag_seconds"]) == ("site-a", 0.5)


async def test_an_edge_is_not_ready_while_its_cluster_does_not_acknowledge(tmp_path: Path) -> None:
    (closed,) = free_ports(1)  # no NATS server there
    pipeline = PipelineConfig(
        sources=[SourceConfig(url="sim://rig-1?rate=20&records=1", name="rig-1")],
        sinks=[SinkConfig(url=f"nats://127.0.0.1:{closed}/wits?stream=WITS&edge=site-a&timeout=0.5")],
    )
    config = make_config(tmp_path, broker_grace=1.0)
    async with running_service(config, ingest=True, pipeline=pipeline) as running:

        async def broker_failing() -> dict[str, Any] | None:
            got = await running.client.get("/readyz", headers=running.auth("admin"))
            checks = {c["name"]: c for c in got.json().get("checks", [])}
            broker = checks.get("broker")
            return (
                got.json() if got.status_code == 503 and broker and broker["status"] == "unhealthy" else None
            )

        body = await until(broker_failing, timeout=30, interval=0.5)
        assert "broker" in str(body)
        metrics = (await running.client.get("/metrics", headers=running.auth("admin"))).text
        assert 'wits_edge_broker_up{sink="nats://127.0.0.1:' in metrics
        assert "wits_edge_failed_batches" in metrics
