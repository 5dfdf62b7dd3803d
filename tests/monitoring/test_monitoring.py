"""Metrics carry the plan's names; health checks combine as the plan says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from witskit.monitoring.health import (
    HealthCheck,
    HealthMonitor,
    HealthStatus,
    database_health_check,
    health_monitor,
    memory_health_check,
)
from witskit.monitoring.metrics import WitsMetrics, track_processing_time
from witskit.storage import Store

PLAN_NAMES = (
    "wits_connections_total",
    "wits_frames_processed_total",
    "wits_frame_processing_seconds",
    "wits_active_connections",
    "wits_errors_total",
    "wits_data_quality_score",
    "wits_system_info",
    "wits_spool_records",
    "wits_replay_lag_seconds",
)


def test_metric_names_are_the_plans() -> None:
    m = WitsMetrics()
    m.record_connection_attempt("tcp", True)
    m.record_frame_processed("rig-7", False)
    m.record_error("parsing", "medium")
    m.active_connections.labels(transport_type="tcp").set(2)
    m.data_quality_score.labels(source="rig-7").set(0.98)
    text = m.render().decode()
    for name in PLAN_NAMES:
        assert name in text, name
    assert 'wits_connections_total{status="success",transport_type="tcp"} 1.0' in text
    assert 'wits_frames_processed_total{source="rig-7",status="failure"} 1.0' in text


def test_track_processing_time_observes_sync_and_async() -> None:
    m = WitsMetrics()

    @track_processing_time("decode", on=m)
    def work() -> int:
        return 1

    @track_processing_time("store", on=m)
    async def awork() -> int:
        return 2

    assert work() == 1
    assert asyncio.run(awork()) == 2
    text = m.render().decode()
    assert 'wits_frame_processing_seconds_count{operation="decode"} 1.0' in text
    assert 'wits_frame_processing_seconds_count{operation="store"} 1.0' in text


def test_health_monitor_combines_checks() -> None:
    monitor = HealthMonitor(timeout=0.2)

    async def db() -> HealthCheck:
        return HealthCheck("database", HealthStatus.HEALTHY, "ok")

    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    def broken() -> bool:
        raise RuntimeError("spool directory gone")

    monitor.register_check("database", db)
    monitor.register_check("sources", lambda: True)
    overall = asyncio.run(monitor.get_overall_health())
    assert overall.status is HealthStatus.HEALTHY
    monitor.register_check("spool", lambda: HealthCheck("spool", HealthStatus.DEGRADED, "80% full"))
    assert asyncio.run(monitor.get_overall_health()).status is HealthStatus.DEGRADED
    monitor.register_check("slow", slow)
    monitor.register_check("broken", broken)
    results = {c.name: c for c in asyncio.run(monitor.run_all_checks())}
    assert results["slow"].status is HealthStatus.UNHEALTHY
    assert "timed out" in (results["slow"].message or "")
    assert results["broken"].message == "Check failed: spool directory gone"
    overall = asyncio.run(monitor.get_overall_health())
    assert overall.status is HealthStatus.UNHEALTHY
    assert overall.details["individual_checks"]["database"] == "healthy"


@pytest.mark.parametrize("limits", [(0.0, 0.0), (100.0, 100.0)])
def test_memory_check(limits: tuple[float, float]) -> None:
    check = memory_health_check(*limits)
    assert check.name == "memory"
    assert check.status in (HealthStatus.UNHEALTHY, HealthStatus.HEALTHY)
    assert check.timestamp.tzinfo is not None


async def test_database_check_is_healthy_when_the_ping_returns(tmp_path: Path) -> None:
    async with await Store.open(f"sqlite:///{tmp_path / 'wits.db'}") as store:
        check = await database_health_check(store.ping)
    assert (check.name, check.status, check.message) == ("database", HealthStatus.HEALTHY, "reachable")

    async def refused() -> None:
        raise ConnectionRefusedError("connect to 127.0.0.1:5432 refused")

    down = await database_health_check(refused)
    assert down.status is HealthStatus.UNHEALTHY
    assert down.message == "database unreachable: connect to 127.0.0.1:5432 refused"
    assert down.reason == "not reachable"  # what an unauthenticated /readyz may show


def test_the_plans_global_monitor_checks_memory() -> None:
    assert set(health_monitor.checks) >= {"memory"}
    (memory,) = [c for c in asyncio.run(health_monitor.run_all_checks()) if c.name == "memory"]
    assert memory.status in set(HealthStatus)


def test_relay_and_mqtt_counters_become_gauges_per_sink() -> None:
    from witskit.monitoring.metrics import WitsMetrics
    from witskit.pipeline import open_sink

    relay = open_sink("wits-serve://127.0.0.1:0?name=mwd")
    relay.stats.frames_dropped = 7  # type: ignore[attr-defined]
    relay.stats.consumers = 2  # type: ignore[attr-defined]
    m = WitsMetrics()
    m.observe_sink(relay.name, relay.counters())  # type: ignore[attr-defined]
    m.observe_sink("mqtt://broker/rigs", {"messages_published": 42, "unrelated": 1})
    text = m.render().decode()
    assert 'wits_relay_frames_dropped{sink="mwd"} 7.0' in text
    assert 'wits_relay_consumers{sink="mwd"} 2.0' in text
    assert 'wits_mqtt_messages_published{sink="mqtt://broker/rigs"} 42.0' in text
