"""The tailer of ``witskit serve``: frames another process stores reach live subscribers, each once,
in time order, from the moment of the subscription; nothing is queried while nobody listens; a
database that fails is retried. Real databases, a real second writer (a :class:`Store`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from live_helpers import depth_of, make_frame
from sqlalchemy import event

from support.waiting import until
from witskit.pipeline import LiveHub, Subscription
from witskit.protocol import DecodedFrame, WITSDecoder
from witskit.service.tailer import FrameTailer
from witskit.storage.store import Store

INTERVAL = 0.05


@pytest.fixture
async def writer(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url, migrate=True, timeout=10)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def tailer(writer: Store, db_url: str) -> AsyncIterator[FrameTailer]:
    hub = LiveHub()
    tail = FrameTailer.open(db_url, hub, WITSDecoder(), interval=INTERVAL, timeout=10)
    try:
        yield tail
    finally:
        hub.close()
        await tail.aclose()


def statements(tail: FrameTailer) -> list[str]:
    """Every SQL statement the tailer runs, from now on."""
    seen: list[str] = []

    @event.listens_for(tail._engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    return seen


async def receive(sub: Subscription, count: int, timeout: float = 10.0) -> list[DecodedFrame]:
    got: list[DecodedFrame] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            item = await sub.queue.get()
            assert isinstance(item, DecodedFrame)
            got.append(item)
    return got


async def quiet(sub: Subscription, periods: int = 4) -> None:
    """Nothing more arrives for a few poll intervals."""
    await asyncio.sleep(INTERVAL * periods)
    extra = []
    while not sub.queue.empty():
        extra.append(sub.queue.get_nowait())
    assert extra == []


def in_order(frames: list[DecodedFrame]) -> list[tuple[str, float]]:
    """(time, depth) of each frame, sorted (frames of one frame and receive time have no order)."""
    return sorted((f.timestamp.isoformat(), depth_of(f.to_record())) for f in frames)


async def test_frames_from_now_on_each_once_in_time_order(writer: Store, tailer: FrameTailer) -> None:
    await writer.write([make_frame("rig-t", s, 100.0 + s) for s in range(5)])  # history: not sent
    sub = tailer.hub.subscribe("rig-t")
    await tailer.follow(sub)
    assert tailer.following == ("rig-t",)
    same = datetime.now(UTC)
    written = [
        [make_frame("rig-t", 5, 205.0)],
        # Two records of one rig timestamp, committed apart: both are new.
        [make_frame("rig-t", 6, 206.0), make_frame("rig-t", 7, 207.0)],
        [make_frame("rig-t", 7, 207.5)],
        # Same frame time and receive time, in two transactions (the watermark's key set).
        [make_frame("rig-t", 8, 208.0, received=same)],
        [make_frame("rig-t", 8, 208.5, received=same)],
        [make_frame("rig-t", 9, 209.0), make_frame("other", 9, 1.0)],
    ]
    got: list[DecodedFrame] = []
    for batch in written:
        # Each batch is received before the next is written: the tailer's mark is then at the
        # frame time that the next batch repeats.
        await writer.write(batch)
        got += await receive(sub, sum(f.source == "rig-t" for f in batch))
    expected = [f for batch in written for f in batch if f.source == "rig-t"]
    assert in_order(got) == in_order(expected)  # each once
    assert [f.timestamp for f in got] == sorted(f.timestamp for f in got)
    by_depth = {depth_of(f.to_record()): f.to_record() for f in expected}
    for frame in got:  # the same decoder as the pipeline: the same JSON as witskit run sends
        assert frame.to_record() == by_depth[depth_of(frame.to_record())]
    await quiet(sub)
    # A replay of stored frames (the writer's spool after a crash) inserts nothing and sends nothing.
    await writer.write(expected)
    await quiet(sub)


async def test_nothing_is_queried_without_subscribers(writer: Store, tailer: FrameTailer) -> None:
    seen = statements(tailer)
    await writer.write([make_frame("rig-q", 0, 1.0)])
    await asyncio.sleep(INTERVAL * 4)
    assert seen == []  # no subscriber yet: not even a task
    sub = tailer.hub.subscribe("rig-q")
    await tailer.follow(sub)
    frame_queries = sum("FROM frames" in s for s in seen)
    await asyncio.sleep(INTERVAL * 4)
    # While nothing is written, each look is the one small query of the frame counts.
    assert sum("FROM frames" in s for s in seen) == frame_queries
    assert sum("FROM sources" in s for s in seen) >= 3
    await writer.write([make_frame("rig-q", 1, 2.0)])
    [frame] = await receive(sub, 1)
    assert depth_of(frame.to_record()) == 2.0
    sub.close()
    await asyncio.sleep(INTERVAL * 3)  # the next look sees that nobody listens any more
    stopped_at = len(seen)
    await writer.write([make_frame("rig-q", 2, 3.0)])
    await asyncio.sleep(INTERVAL * 4)
    assert len(seen) == stopped_at
    assert tailer.following == ()
    # A new subscriber starts at the newest frame again, not where the last one left off.
    again = tailer.hub.subscribe("rig-q")
    await tailer.follow(again)
    await writer.write([make_frame("rig-q", 3, 4.0)])
    assert [depth_of(f.to_record()) for f in await receive(again, 1)] == [4.0]
    await quiet(again)


async def test_every_source_includes_sources_that_appear_later(writer: Store, tailer: FrameTailer) -> None:
    await writer.write([make_frame("old", s, float(s)) for s in range(3)])
    every = tailer.hub.subscribe(None)
    await tailer.follow(every)
    one = tailer.hub.subscribe("old")
    await tailer.follow(one)
    new_rig = [make_frame("new", s, 50.0 + s) for s in range(3)]
    await writer.write(new_rig[:1])
    await writer.write([make_frame("old", 3, 3.0), *new_rig[1:]])
    got = await receive(every, 4)
    assert sorted((f.source, depth_of(f.to_record())) for f in got) == [
        ("new", 50.0),
        ("new", 51.0),
        ("new", 52.0),
        ("old", 3.0),
    ]
    assert [depth_of(f.to_record()) for f in await receive(one, 1)] == [3.0]
    await quiet(every)
    await quiet(one)
    # Only "old" is wanted once the subscription to every source ends.
    every.close()
    await asyncio.sleep(INTERVAL * 3)
    assert tailer.following == ("old",)
    one.close()


async def test_a_failing_database_is_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"  # no tables yet: every query fails
    hub = LiveHub()
    tail = FrameTailer.open(url, hub, WITSDecoder(), interval=INTERVAL, timeout=5)
    try:
        sub = hub.subscribe("rig-late")
        with caplog.at_level(logging.WARNING, logger="witskit.service.tailer"):
            await tail.follow(sub)  # does not raise: the subscriber waits for the database
            await until(lambda: tail.failures >= 3)
        warnings = [r.getMessage() for r in caplog.records if r.name == "witskit.service.tailer"]
        assert any("cannot read the database yet" in m for m in warnings)
        assert sum("reading the database failed" in m for m in warnings) == 1  # not once per retry
        store = await Store.open(url, migrate=True, timeout=5)
        try:
            await until(lambda: tail.failures == 0, timeout=30)
            await store.write([make_frame("rig-late", s, float(s)) for s in range(3)])
            got = await receive(sub, 3)
            assert [depth_of(f.to_record()) for f in got] == [0.0, 1.0, 2.0]
        finally:
            await store.aclose()
    finally:
        hub.close()
        await tail.aclose()
