"""``GET /api/v1/data/series``: downsampled data over HTTP, its validation and its permission."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from service_helpers import Running

URL = "/api/v1/data/series"
T0 = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)  # the simulator's first frame


async def test_buckets_of_a_range(svc: Running, sim_frames: Callable[..., list[Any]]) -> None:
    await svc.service.store.write(sim_frames("rig-7", 120))
    params = {
        "source": "rig-7",
        "codes": "DBTM,0113",
        "start": "2026-01-01T06:00:00Z",
        "end": "2026-01-01T06:02:00",  # naive: UTC
        "points": 12,
    }
    response = await svc.client.get(URL, params=params, headers=svc.auth("viewer"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "rig-7"
    assert body["start"] == "2026-01-01T06:00:00Z"
    assert body["end"] == "2026-01-01T06:02:00Z"
    assert (body["points"], body["bucket_us"]) == (12, 10_000_000)
    by_code = {s["code"]: s for s in body["series"]}
    # A mnemonic stands for every item that has it (DBTM: 0108 and the other records' bit depths).
    assert {"0108", "0810", "0113"} <= set(by_code)
    depth = by_code["0108"]
    assert depth["name"] == "DBTM"
    # Bucket starts in microseconds since the epoch, ten seconds apart; ten 1 Hz readings each.
    start_us = int(T0.timestamp()) * 1_000_000
    assert depth["time"] == [start_us + k * 10_000_000 for k in range(12)]
    assert depth["count"] == [10] * 12
    assert depth["nulls"] == [0] * 12
    for k in range(12):
        assert depth["min"][k] <= depth["first"][k] <= depth["max"][k]
        assert depth["min"][k] <= depth["avg"][k] <= depth["max"][k]
        assert depth["min"][k] <= depth["last"][k] <= depth["max"][k]
    # The same numbers as the store computes.
    stored = await svc.service.store.series("rig-7", ["0108"], T0, T0 + timedelta(minutes=2), 12)
    assert stored is not None
    assert depth["max"] == stored.codes["0108"].max
    assert by_code["0810"]["time"] == []  # record 8 was not sent


async def test_defaults_cover_everything_stored(svc: Running, sim_frames: Callable[..., list[Any]]) -> None:
    await svc.service.store.write(sim_frames("rig-7", 30))
    response = await svc.client.get(
        URL, params={"source": "rig-7", "codes": "0108"}, headers=svc.auth("viewer")
    )
    body = response.json()
    assert body["start"] == "2026-01-01T06:00:00Z"
    assert body["end"] == "2026-01-01T06:00:29.000001Z"
    assert body["points"] == 600  # the default: 29 s in buckets of 48,334 µs
    [depth] = body["series"]
    assert sum(depth["count"]) == 30
    assert len(depth["time"]) == 30  # one reading per bucket: the buckets that hold none are left out

    everything = await svc.client.get(
        URL, params={"source": "rig-7", "points": 1}, headers=svc.auth("viewer")
    )
    codes = {s["code"]: s for s in everything.json()["series"]}
    assert codes["0101"]["time"] == []  # text (the well name) is skipped
    assert codes["0108"]["count"] == [30]


async def test_an_empty_range_and_an_unknown_source(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    await svc.service.store.write(sim_frames("rig-7", 10))
    params = {"source": "rig-7", "codes": "0108", "start": "2026-02-01", "end": "2026-03-01"}
    body = (await svc.client.get(URL, params=params, headers=svc.auth("viewer"))).json()
    assert body["series"] == [
        {
            "code": "0108",
            "name": "DBTM",
            "time": [],
            "count": [],
            "nulls": [],
            "min": [],
            "max": [],
            "avg": [],
            "first": [],
            "last": [],
        }
    ]
    missing = await svc.client.get(URL, params={"source": "rig-nope"}, headers=svc.auth("viewer"))
    assert missing.status_code == 404
    assert "rig-nope" in missing.json()["detail"]
    nul = await svc.client.get(URL, params={"source": "rig\x00"}, headers=svc.auth("viewer"))
    assert nul.status_code == 404


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({}, "source"),
        ({"source": "rig-7", "points": 0}, "points"),
        ({"source": "rig-7", "points": 5001}, "points"),
        ({"source": "rig-7", "points": "many"}, "points"),
        ({"source": "rig-7", "start": "2026-01-02", "end": "2026-01-01"}, "end"),
        ({"source": "rig-7", "start": "2026-01-01", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"source": "rig-7", "start": "yesterday"}, "start"),
        ({"source": "rig-7", "end": "0001-01-01T00:00:00+05:00"}, "end"),
        ({"source": "rig-7", "codes": "0108,NOT-A-MNEMONIC"}, "NOT-A-MNEMONIC"),
        ({"source": "rig-7", "codes": ",".join(f"{n:04d}" for n in range(101))}, "codes"),
    ],
)
async def test_bad_requests_name_the_parameter(
    svc: Running, sim_frames: Callable[..., list[Any]], params: dict[str, Any], names: str
) -> None:
    await svc.service.store.write(sim_frames("rig-7", 3))
    response = await svc.client.get(URL, params=params, headers=svc.auth("viewer"))
    assert response.status_code == 422, response.text
    assert names in str(response.json()["detail"])


async def test_it_needs_data_read(svc: Running) -> None:
    assert (await svc.client.get(URL, params={"source": "rig-7"})).status_code == 401
    refused = await svc.client.get(URL, params={"source": "rig-7"}, headers=svc.auth("nobody"))
    assert refused.status_code == 403
    assert "data:read" in refused.json()["detail"]


def test_the_schema_documents_it() -> None:
    from service_helpers import static_app

    operation = static_app().openapi()["paths"][URL]["get"]
    assert operation["x-permission"] == "data:read"
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["source"]["required"] is True
    assert params["points"]["schema"]["maximum"] == 5000
    assert "microseconds" in operation["description"]
