"""The data routes (sources, latest values, time-range data, symbols), connections, health, metrics."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from service_helpers import Running

from support.waiting import until


async def store(svc: Running, frames: list[Any]) -> None:
    await svc.service.store.write(frames)


async def test_sources_and_latest(svc: Running, sim_frames: Callable[..., list[Any]]) -> None:
    frames = sim_frames("rig-7", 20)
    await store(svc, frames)
    await store(svc, sim_frames("rig-8", 5, seed=3))
    sources = (await svc.client.get("/api/v1/sources", headers=svc.auth("viewer"))).json()
    assert [s["name"] for s in sources] == ["rig-7", "rig-8"]
    assert sources[0]["frame_count"] == len(frames)
    assert sources[0]["connection"] is None  # this process does not ingest

    latest = await svc.client.get("/api/v1/latest", params={"source": "rig-7"}, headers=svc.auth("viewer"))
    assert latest.status_code == 200
    [body] = latest.json()
    values = {v["code"]: v for v in body["values"]}
    last_depth = [f for f in frames if "0108" in f.codes][-1]
    assert values["0108"]["value"] == last_depth.values[last_depth.codes.index("0108")]
    assert values["0108"]["name"] == "DBTM"
    assert values["0108"]["unit"] == "F"
    only = await svc.client.get(
        "/api/v1/latest", params={"source": "rig-7", "codes": "DBTM,0113"}, headers=svc.auth("viewer")
    )
    assert {v["code"] for v in only.json()[0]["values"]} == {"0108", "0113"}
    everything = await svc.client.get("/api/v1/latest", headers=svc.auth("viewer"))
    assert [b["source"] for b in everything.json()] == ["rig-7", "rig-8"]
    missing = await svc.client.get(
        "/api/v1/latest", params={"source": "no-such-rig"}, headers=svc.auth("viewer")
    )
    assert missing.status_code == 404


async def test_data_json_pages_follow_the_cursor(svc: Running, sim_frames: Callable[..., list[Any]]) -> None:
    await store(svc, sim_frames("rig-7", 40))
    params: dict[str, Any] = {"source": "rig-7", "codes": "0108,ROPA", "limit": 7}
    everything = await svc.client.get(
        "/api/v1/data", params={"source": "rig-7", "codes": "0108,ROPA"}, headers=svc.auth("viewer")
    )
    expected = everything.json()["rows"]
    assert everything.json()["next_cursor"] is None
    assert len(expected) > 20
    got: list[dict[str, Any]] = []
    while True:
        page = (await svc.client.get("/api/v1/data", params=params, headers=svc.auth("viewer"))).json()
        got.extend(page["rows"])
        assert page["count"] == len(page["rows"]) <= 7
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert got == expected
    assert {r["name"] for r in got} >= {"DBTM"}
    times = [r["time"] for r in got]
    assert times == sorted(times)


async def test_data_csv_and_jsonl(svc: Running, sim_frames: Callable[..., list[Any]]) -> None:
    await store(svc, sim_frames("rig-7", 10))
    params = {"source": "rig-7", "codes": "0108", "format": "csv"}
    response = await svc.client.get("/api/v1/data", params=params, headers=svc.auth("viewer"))
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["time", "source", "code", "mnemonic", "value", "text", "unit"]
    assert len(rows) == 11
    assert rows[1][1:4] == ["rig-7", "0108", "DBTM"]
    lines = await svc.client.get(
        "/api/v1/data", params={**params, "format": "jsonl"}, headers=svc.auth("viewer")
    )
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert [r["value"] for r in records] == [float(r[4]) for r in rows[1:]]
    # A paginated CSV page carries the next cursor in headers.
    page = await svc.client.get("/api/v1/data", params={**params, "limit": 4}, headers=svc.auth("viewer"))
    assert page.headers["x-row-count"] == "4"
    assert 'rel="next"' in page.headers["link"]
    rest = await svc.client.get(
        "/api/v1/data",
        params={**params, "limit": 100, "cursor": page.headers["x-next-cursor"]},
        headers=svc.auth("viewer"),
    )
    assert len(list(csv.reader(io.StringIO(rest.text)))) == 1 + 6
    assert "x-next-cursor" not in rest.headers


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"codes": "NOSUCHTHING"}, "neither a 4-digit code nor a known mnemonic"),
        ({"start": "yesterday"}, "not an ISO 8601 time"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor is not one this service issued"),
        ({"format": "csv", "limit": 500_000}, "at most 100000"),
    ],
)
async def test_bad_data_requests_are_422(svc: Running, params: dict[str, Any], message: str) -> None:
    response = await svc.client.get("/api/v1/data", params=params, headers=svc.auth("viewer"))
    assert response.status_code == 422
    assert message in response.json()["detail"]


async def test_symbols(svc: Running) -> None:
    one = await svc.client.get("/api/v1/symbols/0108", headers=svc.auth("viewer"))
    assert one.json()["name"] == "DBTM"
    assert one.json()["unit_fps"] == "F"
    by_name = await svc.client.get("/api/v1/symbols/ROPA", headers=svc.auth("viewer"))
    assert by_name.json()["code"] == "0113"
    found = await svc.client.get(
        "/api/v1/symbols", params={"search": "hook load"}, headers=svc.auth("viewer")
    )
    assert found.json()
    record = await svc.client.get("/api/v1/symbols", params={"record": 1}, headers=svc.auth("viewer"))
    assert all(s["record"] == 1 for s in record.json())
    assert (await svc.client.get("/api/v1/symbols/9999", headers=svc.auth("viewer"))).status_code == 404


async def test_ingest_feeds_sources_latest_metrics_and_health(ingesting: Running) -> None:
    svc = ingesting
    auth = svc.auth("operator")

    async def stored() -> Any:
        sources = (await svc.client.get("/api/v1/sources", headers=auth)).json()
        return sources and sources[0]["frame_count"] >= 3

    await until(stored, 10.0, 0.05)
    sources = (await svc.client.get("/api/v1/sources", headers=auth)).json()
    assert sources[0]["name"] == "rig-1"
    assert sources[0]["connection"] == "running"
    latest = (await svc.client.get("/api/v1/latest", params={"source": "rig-1"}, headers=auth)).json()
    assert {v["code"] for v in latest[0]["values"]} >= {"0108", "0113"}
    metrics = await svc.client.get("/metrics", headers=auth)
    assert metrics.status_code == 200
    text = metrics.text
    for name in (
        'wits_frames_processed_total{source="rig-1",status="success"}',
        'wits_active_connections{transport_type="sim"} 1.0',
        'wits_connections_total{status="success",transport_type="sim"} 1.0',
        'wits_data_quality_score{source="rig-1"} 1.0',
        "wits_spool_records",
        "wits_replay_lag_seconds",
        "wits_system_info{",
        'wits_frame_processing_seconds_count{operation="store_write"}',
    ):
        assert name in text, name
    ready = await svc.client.get("/readyz")
    assert ready.status_code == 200
    assert {c["name"]: c["status"] for c in ready.json()["checks"]} == {
        "database": "healthy",
        "spool": "healthy",
        "sources": "healthy",
    }


async def test_connections_are_managed_at_run_time(ingesting: Running) -> None:
    svc = ingesting
    auth = svc.auth("admin")
    listed = (await svc.client.get("/api/v1/connections", headers=auth)).json()
    assert [c["name"] for c in listed] == ["rig-1"]
    added = await svc.client.post(
        "/api/v1/connections", json={"url": "sim://rig-2?rate=20&records=1", "name": "rig-2"}, headers=auth
    )
    assert added.status_code == 201
    assert added.json()["state"] == "running"

    async def rig2_stored() -> Any:
        names = [s["name"] for s in (await svc.client.get("/api/v1/sources", headers=auth)).json()]
        return "rig-2" in names

    await until(rig2_stored, 10.0, 0.05)
    stopped = await svc.client.post("/api/v1/connections/rig-2/stop", headers=auth)
    assert stopped.json()["state"] == "stopped"
    started = await svc.client.post("/api/v1/connections/rig-2/start", headers=auth)
    assert started.json()["running"] is True
    assert (await svc.client.delete("/api/v1/connections/rig-2", headers=auth)).status_code == 204
    assert (await svc.client.get("/api/v1/connections/rig-2", headers=auth)).status_code == 404
    duplicate = await svc.client.post(
        "/api/v1/connections", json={"url": "sim://x", "name": "rig-1"}, headers=auth
    )
    assert duplicate.status_code == 422
    a_file = await svc.client.post("/api/v1/connections", json={"url": "file:///etc/passwd"}, headers=auth)
    assert a_file.status_code == 422
    assert "cannot be added through the API" in a_file.json()["detail"]
    bad = await svc.client.post("/api/v1/connections", json={"url": "tcp://rig:99999"}, headers=auth)
    assert bad.status_code == 422
    await svc.service.audit.flush()
    actions = [e.action for e in await svc.service.accounts.list_audit(actor="admin")]
    assert {"connection.add", "connection.stop", "connection.start", "connection.remove"} <= set(actions)


async def test_a_serving_only_process_has_no_connections(svc: Running) -> None:
    response = await svc.client.get("/api/v1/connections", headers=svc.auth("super"))
    assert response.status_code == 409
    ready = await svc.client.get("/readyz")
    assert [c["name"] for c in ready.json()["checks"]] == ["database"]


async def test_livez_home_and_request_ids(svc: Running) -> None:
    live = await svc.client.get("/livez", headers={"X-Request-ID": "probe-42"})
    assert live.json() == {"status": "alive"}
    assert live.headers["x-request-id"] == "probe-42"
    odd = await svc.client.get("/livez", headers={"X-Request-ID": "bad id with spaces"})
    assert odd.headers["x-request-id"] != "bad id with spaces"
    home = await svc.client.get("/")  # the dashboard
    assert home.status_code == 200
    assert "WitsKit" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    docs = await svc.client.get("/openapi.json")
    assert docs.json()["info"]["title"] == "WitsKit"


async def test_an_unreachable_database_makes_readyz_503(svc: Running) -> None:
    from witskit.storage.errors import DatabaseUnavailable

    async def down() -> None:
        raise DatabaseUnavailable("could not reach postgresql://wits:***@db/wits: timed out")

    svc.service.store.ping = down
    ready = await svc.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"][0]["status"] == "unhealthy"
    assert (await svc.client.get("/livez")).status_code == 200  # liveness does not care
