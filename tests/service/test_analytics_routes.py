"""The analytics routes and the live rig states: ``/data/rig-state``, ``/data/kpi``, ``/data/quality``,
the states classified as ``witskit run`` ingests, stored, and shown by ``/sources``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Running, make_config, running_service

from support.waiting import until
from witskit.analytics import classify, compute_kpis
from witskit.config import PipelineConfig, SourceConfig, load_pipeline
from witskit.errors import ConfigError
from witskit.pipeline.build import plan_problems
from witskit.service.alarms import RigStates

START = "2026-01-01T06:00:00Z"
END = "2026-01-01T07:00:00Z"


def runs(frames: list[Any]) -> list[str]:
    """The states of a classified range, one per run (what the intervals must say, in order)."""
    out: list[str] = []
    for row in classify(frames):
        if not out or out[-1] != row.state.value:
            out.append(row.state.value)
    return out


async def test_rig_state_of_history_is_classified_from_the_stored_points(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    frames = sim_frames("rig-7", 600)
    await svc.service.store.write(frames)
    got = await svc.client.get(
        "/api/v1/data/rig-state",
        params={"source": "rig-7", "start": START, "end": END},
        headers=svc.auth("viewer"),
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["computed"] == len(body["intervals"])
    assert body["stored"] == 0
    assert [i["state"] for i in body["intervals"]] == runs(frames)
    assert "rotary_drilling" in body["states"]
    assert "in_slips" in body["states"]
    first, last = body["intervals"][0], body["intervals"][-1]
    assert first["start"].startswith("2026-01-01T06:00:00")
    assert last["end"].startswith("2026-01-01T06:09:59")
    for a, b in zip(body["intervals"], body["intervals"][1:], strict=False):
        assert a["end"] == b["start"]  # 1 Hz without holes: each state ends where the next begins
    assert body["truncated"] is False
    assert body["next_start"] is None

    page = await svc.client.get(
        "/api/v1/data/rig-state",
        params={"source": "rig-7", "start": START, "end": END, "limit": 2},
        headers=svc.auth("viewer"),
    )
    short = page.json()
    assert len(short["intervals"]) == 2
    assert short["truncated"] is True
    assert short["next_start"] == body["intervals"][2]["start"]


async def test_kpis_of_a_stored_range_are_those_of_the_classified_frames(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    frames = sim_frames("rig-7", 900)
    await svc.service.store.write(frames)
    got = await svc.client.get(
        "/api/v1/data/kpi",
        params={"source": "rig-7", "start": START, "end": END, "section": ["surface:0-20000"]},
        headers=svc.auth("viewer"),
    )
    assert got.status_code == 200, got.text
    body = got.json()
    record1 = [f for f in frames if f.codes[0].startswith("01")]
    assert body["frames"] == len(record1)
    from witskit.analytics import Section

    expected = compute_kpis(classify(frames), sections=[Section("surface", 0, 20000)]).to_dict()
    assert body["kpis"] == expected
    assert body["kpis"]["total"]["on_bottom_hours"]["rotary"] > 0


async def test_quality_finds_a_gap_in_the_stored_frames(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    frames = sim_frames("rig-7", 300)
    cut = datetime(2026, 1, 1, 6, 2, tzinfo=UTC)
    kept = [f for f in frames if not cut <= f.timestamp < cut + timedelta(seconds=40)]
    await svc.service.store.write(kept)
    got = await svc.client.get(
        "/api/v1/data/quality",
        params={"source": "rig-7", "start": START, "end": END},
        headers=svc.auth("viewer"),
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["frames"] == len(kept)
    gaps = [i for i in body["issues"] if i["kind"] == "gap"]
    assert gaps, body["issues"]
    assert gaps[0]["start"].startswith("2026-01-01T06:01:59")
    assert body["counts"]["gap"] == len(gaps)
    assert body["truncated"] is False


@pytest.mark.parametrize(
    ("route", "params", "status", "says"),
    [
        ("rig-state", {"source": "no-such-rig"}, 404, "no source 'no-such-rig'"),
        ("rig-state", {"source": "rig-7", "start": "yesterday"}, 422, "not an ISO 8601 time"),
        ("rig-state", {"source": "rig-7", "start": END, "end": START}, 422, "must be before end"),
        ("kpi", {"source": "rig-7", "start": "2026-01-01", "end": "2026-01-20"}, 422, "at most 7 days"),
        ("quality", {"source": "rig-7", "limit": "0"}, 422, "greater than or equal to 1"),
        ("quality", {"source": "rig-7", "limit": "1000000"}, 422, "less than or equal to 50000"),
        ("kpi", {"source": "rig-7", "section": "deep"}, 422, "expected NAME:TOP-BOTTOM"),
        ("kpi", {"source": "rig-7", "section": "deep:900-100"}, 422, "must be above bottom"),
        ("kpi", {"source": ""}, 422, "at least 1 character"),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    svc: Running,
    sim_frames: Callable[..., list[Any]],
    route: str,
    params: dict[str, str],
    status: int,
    says: str,
) -> None:
    await svc.service.store.write(sim_frames("rig-7", 5))
    got = await svc.client.get(f"/api/v1/data/{route}", params=params, headers=svc.auth("viewer"))
    assert got.status_code == status, got.text
    assert says in got.text


async def test_analyses_beyond_the_limit_wait_their_turn_then_429(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    from witskit.service.analytics import MAX_RUNNING

    await svc.service.store.write(sim_frames("rig-7", 30))
    analytics = svc.service.analytics
    analytics.wait_for_turn = 0.2
    params = {"source": "rig-7", "start": START, "end": END}
    async with contextlib_stack(analytics, MAX_RUNNING):
        busy = await svc.client.get("/api/v1/data/kpi", params=params, headers=svc.auth("viewer"))
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "5"
    assert "analyses are running" in busy.json()["detail"]
    # Within the wait, a request is served as soon as a turn frees.
    analytics.wait_for_turn = 30
    async with contextlib_stack(analytics, MAX_RUNNING):
        waiting = asyncio.create_task(
            svc.client.get("/api/v1/data/kpi", params=params, headers=svc.auth("viewer"))
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
    assert (await waiting).status_code == 200


def contextlib_stack(analytics: Any, n: int) -> Any:
    import contextlib

    stack = contextlib.AsyncExitStack()

    class Held:
        async def __aenter__(self) -> None:
            for _ in range(n):
                await stack.enter_async_context(analytics.running())

        async def __aexit__(self, *exc: object) -> None:
            await stack.aclose()

    return Held()


async def test_live_states_are_classified_stored_and_shown_per_rig(tmp_path: Path) -> None:
    plan = PipelineConfig(
        sources=[
            SourceConfig(url="sim://rig-1?rate=5&records=1", name="rig-1", rig_state={"block_weight": 40}),
            SourceConfig(url="sim://rig-2?rate=5&records=1&seed=3", name="rig-2"),
        ]
    )
    async with running_service(make_config(tmp_path), ingest=True, pipeline=plan) as running:
        analytics = running.service.analytics
        assert analytics.settings_for("rig-1").block_weight == 40
        assert analytics.settings_for("rig-2").block_weight is None
        # the alarm rules' rig states are classified with the same per-source settings
        stage = running.service.alarms.stage
        assert stage is not None
        assert isinstance(stage.state_of, RigStates)
        assert stage.state_of.classifier("rig-1").settings.block_weight == 40
        assert stage.state_of.classifier("rig-2").settings.block_weight is None

        async def both_classified() -> bool:
            sources = (await running.client.get("/api/v1/sources", headers=running.auth("viewer"))).json()
            return len(sources) == 2 and all(s["rig_state"] not in (None, "unknown") for s in sources)

        await until(both_classified, timeout=30)
        sources = (await running.client.get("/api/v1/sources", headers=running.auth("viewer"))).json()
        rig = sources[0]
        await analytics.flush()  # what the writer does every few seconds
        assert rig["rig_state_since"] <= rig["rig_state_seen"]
        got = await running.client.get(
            "/api/v1/data/rig-state",
            params={
                "source": "rig-1",
                "start": rig["first_time"],
                "end": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            },
            headers=running.auth("viewer"),
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["stored"] >= 1
        stored = [i["state"] for i in body["intervals"][body["computed"] :]]
        assert rig["rig_state"] in stored
        rows = await analytics.tables.stored_rig_states(
            "rig-2", datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1), 100
        )
        assert rows
        assert all(a.end <= b.start for a, b in itertools.pairwise(rows))


def test_a_bad_rig_state_setting_is_refused_when_the_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "sources:\n"
        "  - url: sim://rig-1\n"
        "    rig_state: {blok_weight: 40}\n"
        "  - url: sim://rig-2\n"
        "    rig_state: {slips_margin: -3}\n"
        "  - url: sim://rig-3\n"
        "    rig_state: {metric: true}\n"
        "  - url: sim://rig-4\n"
        "    rig_state: 12\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, plan_problems)
    text = str(caught.value)
    assert "sources.0.rig_state.blok_weight: unknown rig state setting" in text
    assert "sources.1.rig_state: rig state setting slips_margin must be positive" in text
    assert "sources.2.rig_state.metric: the rig state is classified in the decoder's units" in text
    assert "sources.3.rig_state" in text
    good = tmp_path / "good.yaml"
    good.write_text(
        "decoder: {metric: true}\n"
        "sources:\n  - url: sim://rig-1\n    rig_state: {block_weight: 180, confirm: 3}\n",
        encoding="utf-8",
    )
    plan = load_pipeline(good, plan_problems)
    assert plan.sources[0].rig_state == {"block_weight": 180, "confirm": 3}
