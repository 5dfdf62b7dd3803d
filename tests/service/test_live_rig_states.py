"""The live rig states (``witskit.service.analytics.LiveAnalytics``) on a real SQLite database: the
intervals kept per rig, their writes, what waits while the database cannot be written, and what a
serving-only process shows as each rig's current state."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Running

from support.waiting import until
from witskit.analytics import RigStateSettings, classify
from witskit.protocol import WITSDecoder
from witskit.service import analytics as live_module
from witskit.service.accounts import AccountStore
from witskit.service.analytics import LiveAnalytics
from witskit.storage.errors import StorageError
from witskit.storage.store import Store

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveAnalytics]:
    url = f"sqlite:///{tmp_path / 'wits.db'}"
    store = await Store.open(url)
    tables = await AccountStore.open(url)
    try:
        yield LiveAnalytics(tables, store, metric=False, decoder=WITSDecoder)
    finally:
        await tables.aclose()
        await store.aclose()


def runs(rows: list[Any]) -> list[str]:
    out: list[str] = []
    for row in rows:
        if not out or out[-1] != row:
            out.append(row)
    return out


async def test_each_rig_has_its_intervals_and_a_hole_in_the_data_splits_them(
    live: LiveAnalytics, sim_frames: Callable[..., list[Any]]
) -> None:
    frames = sim_frames("rig-7", 600)
    record1 = [f for f in frames if f.codes[0].startswith("01")]
    cut = datetime(2026, 1, 1, 6, 5, tzinfo=UTC)
    kept = [f for f in record1 if not cut <= f.timestamp < cut + timedelta(seconds=60)]
    other = sim_frames("rig-8", 30, seed=3)
    for frame in [*kept, *other]:
        live.on_frame(frame)
    live.on_frame(kept[10])  # time going backwards: the intervals stay as they are
    await live.flush()
    stored = await live.tables.stored_rig_states("rig-7", *EVER, 1000)
    # The states in order, as the classifier gives them (a state on both sides of the hole is two).
    assert runs([i.state for i in stored]) == runs([r.state.value for r in classify(kept)])
    # The hole: the interval before it ends at its last frame, the next starts after it.
    before = next(i for i in stored if i.end <= cut and i.end >= cut - timedelta(seconds=1))
    after = next(i for i in stored if i.start >= cut + timedelta(seconds=60))
    assert before.end == cut - timedelta(seconds=1)
    assert after.start == cut + timedelta(seconds=60)
    for a, b in itertools.pairwise(stored):
        assert a.end <= b.start
    assert stored[0].start == kept[0].timestamp
    assert stored[-1].end == kept[-1].timestamp
    assert await live.tables.stored_rig_states("rig-8", *EVER, 1000)
    current = await live.current()
    assert set(current) == {"rig-7", "rig-8"}
    assert current["rig-7"].seen == kept[-1].timestamp
    assert current["rig-7"].state == stored[-1].state


async def test_the_open_interval_is_written_once_then_moved(
    live: LiveAnalytics, sim_frames: Callable[..., list[Any]]
) -> None:
    frames = [f for f in sim_frames("rig-7", 120) if f.codes[0].startswith("01")]
    for frame in frames[:60]:
        live.on_frame(frame)
    await live.flush()
    first = await live.tables.stored_rig_states("rig-7", *EVER, 1000)
    for frame in frames[60:]:
        live.on_frame(frame)
    await live.flush()
    again = await live.tables.stored_rig_states("rig-7", *EVER, 1000)
    assert again[-1].end == frames[-1].timestamp
    assert [i.start for i in again[: len(first)]] == [i.start for i in first]  # no duplicate rows
    await live.flush()  # nothing changed: nothing written
    assert await live.tables.stored_rig_states("rig-7", *EVER, 1000) == again


async def test_states_wait_while_the_database_cannot_be_written(
    tmp_path: Path, sim_frames: Callable[..., list[Any]], caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'late.db'}"
    (tmp_path / "late.db").touch()  # exists, but has no table yet: every write fails
    tables = await AccountStore.open(url)
    store = Store.unopened(url)
    live = LiveAnalytics(tables, store, metric=False, decoder=WITSDecoder)
    try:
        frames = [f for f in sim_frames("rig-7", 600) if f.codes[0].startswith("01")]
        intervals = len(runs([r.state.value for r in classify(frames)]))
        assert intervals > 4
        for frame in frames[:100]:
            live.on_frame(frame)
        with pytest.raises(StorageError):
            await live.flush()
        assert live._dirty  # kept for the next flush
        # Bounded: past MAX_PENDING the oldest go, counted and logged.
        monkeypatch.setattr(live_module, "MAX_PENDING", 3)
        with caplog.at_level(logging.WARNING, logger="witskit.service"):
            for frame in frames[100:]:
                live.on_frame(frame)
        assert live.dropped == intervals - 3
        assert len(live._dirty) == 3
        assert any("intervals wait for the database, the oldest" in r.getMessage() for r in caplog.records)
        async with await Store.open(url):  # the database comes back (migrated)
            pass
        await live.flush()
        stored = await tables.stored_rig_states("rig-7", *EVER, 1000)
        assert len(stored) == 3  # the newest three
        assert stored[-1].end == frames[-1].timestamp
    finally:
        await tables.aclose()
        await store.aclose()


async def test_settings_per_rig_and_the_units_of_the_feed(live: LiveAnalytics) -> None:
    live.configure("rig-7", RigStateSettings(block_weight=45.0))
    assert live.settings_for("rig-7").block_weight == 45.0
    assert live.settings_for("rig-8") == RigStateSettings(metric=False)


async def test_a_serving_process_shows_the_newest_stored_state_of_each_rig(
    svc: Running, sim_frames: Callable[..., list[Any]]
) -> None:
    await svc.service.store.write(sim_frames("rig-7", 10))
    t0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
    rows = [
        {"id": "a" * 32, "source": "rig-7", "start_time": t0, "end_time": t0 + timedelta(minutes=5),
         "state": "rotary_drilling"},
        {"id": "b" * 32, "source": "rig-7", "start_time": t0 + timedelta(minutes=5),
         "end_time": t0 + timedelta(minutes=7), "state": "in_slips"},
    ]  # fmt: skip
    await svc.service.analytics.tables.write_rig_states(rows, [])
    assert svc.service.analytics.live is False
    sources = (await svc.client.get("/api/v1/sources", headers=svc.auth("viewer"))).json()
    assert sources[0]["rig_state"] == "in_slips"
    assert sources[0]["rig_state_since"] == "2026-01-01T06:05:00Z"
    assert sources[0]["rig_state_seen"] == "2026-01-01T06:07:00Z"
    # The stored intervals, clipped to the range asked for.
    got = await svc.client.get(
        "/api/v1/data/rig-state",
        params={"source": "rig-7", "start": "2026-01-01T06:02:00Z", "end": "2026-01-01T06:06:00Z"},
        headers=svc.auth("viewer"),
    )
    body = got.json()
    assert [(i["start"], i["end"], i["state"]) for i in body["intervals"]] == [
        ("2026-01-01T06:02:00Z", "2026-01-01T06:05:00Z", "rotary_drilling"),
        ("2026-01-01T06:05:00Z", "2026-01-01T06:06:00Z", "in_slips"),
    ]
    assert body["stored"] == 2
    assert body["computed"] == 0


async def test_an_analysis_given_up_midway_stops_its_thread_and_frees_the_scan(
    live: LiveAnalytics, sim_frames: Callable[..., list[Any]]
) -> None:
    await live.store.write(sim_frames("rig-7", 1800))
    seen = []

    def slow(rows: Any) -> int:
        for row in rows:
            seen.append(row)
            time.sleep(0.001)
        return len(seen)

    task = asyncio.create_task(live.classify_stored("rig-7", *EVER, slow))
    await until(lambda: len(seen) > 10, timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_at = len(seen)
    assert stopped_at < 1800
    await asyncio.sleep(0.1)
    assert len(seen) == stopped_at  # the thread has ended
    # The connection is back in the pool: the next analysis runs to the end.
    assert await live.classify_stored("rig-7", *EVER, lambda rows: sum(1 for _ in rows)) == 1800
