"""Store.write on every backend: round trip, idempotent replays, nulls and text, collisions, races."""

from __future__ import annotations

import asyncio
from itertools import zip_longest
from typing import Any

import pytest
from sqlalchemy import text, update

from witskit.errors import UsageError
from witskit.storage import Store, frame_key, schema
from witskit.storage.schema import DEFAULT_SOURCE


def expected_rows(frames: list[Any]) -> list[tuple[Any, ...]]:
    """(time, code, value, frame key, idx) of every decoded point, in the store's query order:
    time, then the order the frames were received, then the line."""
    rows = [
        ((f.timestamp, f.received_at, idx), (f.timestamp, code, value, frame_key(f), idx))
        for f in frames
        for idx, (code, value) in enumerate(f.items())
    ]
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


async def stored_rows(store: Store, source: str) -> list[tuple[Any, ...]]:
    return [(r.time, r.code, r.value, r.frame_key, r.idx) async for r in store.query(source=source)]


async def test_round_trip_keeps_every_value_with_its_type(
    store: Store, source_name: str, sim_frames: Any
) -> None:
    frames = sim_frames(source_name, 600)  # > 500 frames: the key lookups run in several chunks
    points = sum(len(f) for f in frames)

    assert await store.write(frames) == points

    got = await stored_rows(store, source_name)
    assert got == expected_rows(frames)
    types = {type(r[2]) for r in got}
    assert types == {str, int, float}  # WID is text, SKNO/ACTC integers, the rest floats
    [info] = [s for s in await store.sources() if s.name == source_name]
    assert (info.frame_count, info.point_count) == (len(frames), points)
    assert info.first_time == min(f.timestamp for f in frames)
    assert info.last_time == max(f.timestamp for f in frames)


async def test_writing_the_same_frames_again_inserts_nothing(
    store: Store, source_name: str, sim_frames: Any
) -> None:
    frames = sim_frames(source_name, 60)
    first = await store.write(frames)

    assert await store.write(frames) == 0
    assert await store.write(frames[::-1]) == 0
    [info] = [s for s in await store.sources() if s.name == source_name]
    assert (info.frame_count, info.point_count) == (len(frames), first)
    assert len(await stored_rows(store, source_name)) == first


async def test_a_replay_overlapping_new_frames_inserts_only_the_new_ones(
    store: Store, source_name: str, sim_frames: Any
) -> None:
    frames = sim_frames(source_name, 80)
    half = len(frames) // 2
    await store.write(frames[:half])

    # A spool replay after a crash: the tail of what was committed, then what was not.
    inserted = await store.write(frames[half - 10 :])

    assert inserted == sum(len(f) for f in frames[half:])
    assert await stored_rows(store, source_name) == expected_rows(frames)


async def test_a_frame_repeated_inside_one_batch_is_stored_once(
    store: Store, source_name: str, sim_frames: Any
) -> None:
    frames = sim_frames(source_name, 5, records=(1,))
    assert await store.write([frames[0], frames[1], frames[0]]) == len(frames[0]) + len(frames[1])


async def test_nulls_and_text_values_are_kept(store: Store, source_name: str, wits_frames: Any) -> None:
    frames = wits_frames(
        """
        &&
        0101RIG 7 / Well A-1
        01052601010
        0106120000
        0108-9999
        0113-999.25
        01149.5
        0120-8888
        9901abc def
        990242
        !!
        """,
        source_name,
    )
    assert await store.write(frames) == 9

    values = {r.code: r.value async for r in store.query(source=source_name)}
    assert values == {
        "0101": "RIG 7 / Well A-1",
        "0105": 2601010,
        "0106": 120000,
        "0108": None,  # null readings keep their row
        "0113": None,
        "0114": 9.5,
        "0120": None,
        "9901": "abc def",  # unknown code with text: kept as text
        "9902": 42.0,  # unknown code: a number, typed as float like the decoder does
    }


async def test_a_code_with_text_and_numbers_across_frames_keeps_both(
    store: Store, source_name: str, wits_frames: Any
) -> None:
    # 20 frames of one layout (the column-wise path) whose unknown code alternates text / number.
    body = "\n".join(f"&&\n0105260101\n01061200{i:02d}\n9903{'n/a' if i % 2 else i}\n!!" for i in range(20))
    frames = wits_frames(body, source_name)
    await store.write(frames)

    values = [r.value async for r in store.query(source=source_name, codes=["9903"])]
    assert values == [("n/a" if i % 2 else float(i)) for i in range(20)]


async def test_raw_frame_traces_a_value_to_the_bytes_received(
    store: Store, source_name: str, sim_frames: Any
) -> None:
    frames = sim_frames(source_name, 3, records=(1,))
    await store.write(frames)

    row = await anext(aiter(store.query(source=source_name, codes=["0108"])))
    raw = await store.raw_frame(source_name, row.frame_key)

    assert raw == frames[0].frame.raw
    assert raw is not None
    assert raw.startswith(b"&&")
    assert b"\r\n0108" in raw
    assert await store.raw_frame(source_name, row.frame_key + 1) is None


async def test_frames_without_a_source_go_to_the_default_source(store: Store, sim_frames: Any) -> None:
    frames = sim_frames(None, 2, records=(1,))
    await store.write(frames)
    names = {s.name for s in await store.sources()}
    assert DEFAULT_SOURCE in names


async def test_one_write_can_hold_several_sources(store: Store, source_name: str, sim_frames: Any) -> None:
    a = sim_frames(source_name + "-a", 10, seed=1)
    b = sim_frames(source_name + "-b", 10, seed=2)
    mixed = [f for pair in zip_longest(a, b) for f in pair if f is not None]
    assert await store.write(mixed) == sum(len(f) for f in mixed)
    assert len(await stored_rows(store, source_name + "-a")) == sum(len(f) for f in a)
    assert len(await stored_rows(store, source_name + "-b")) == sum(len(f) for f in b)


async def test_a_key_collision_stores_the_other_frame_under_its_probe_key(
    store: Store, source_name: str, sim_frames: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A 64-bit collision cannot be found on demand: make one by moving a stored frame onto the key
    # and the time of a frame not yet written. The new frame must not be taken for a replay of the
    # old one. (A key that collides with a frame of another time is no collision on PostgreSQL,
    # where a frame's key is unique per time: both are stored as they are.)
    first, second = sim_frames(source_name, 2, records=(1,))[:2]
    await store.write([first])
    old, new = frame_key(first), frame_key(second)
    async with store._engine.begin() as conn:
        await conn.execute(
            update(schema.frames)
            .where(schema.frames.c.frame_key == old)
            .values(frame_key=new, frame_time=second.timestamp)
        )
        await conn.execute(
            update(schema.points)
            .where(schema.points.c.frame_key == old)
            .values(frame_key=new, time=second.timestamp)
        )

    assert await store.write([second]) == len(second)
    assert "frame key collision" in caplog.text
    assert await store.write([second]) == 0  # a replay finds it under the same probe key
    assert len(await stored_rows(store, source_name)) == len(first) + len(second)


async def test_concurrent_writers_of_the_same_frames_store_them_once(
    db_url: str, source_name: str, sim_frames: Any
) -> None:
    frames = sim_frames(source_name, 100)
    points = sum(len(f) for f in frames)
    a, b = await Store.open(db_url), await Store.open(db_url)
    try:
        counts = await asyncio.gather(a.write(frames), b.write(frames), a.write(frames[:50]))
        assert sum(counts) == points
        [info] = [s for s in await a.sources() if s.name == source_name]
        assert info.point_count == points
    finally:
        await a.aclose()
        await b.aclose()


async def test_an_empty_write_touches_nothing(store: Store) -> None:
    assert await store.write([]) == 0


async def test_write_rejects_what_is_not_a_decoded_frame(store: Store) -> None:
    with pytest.raises(UsageError, match="DecodedFrame"):
        await store.write([b"&&\r\n!!"])  # type: ignore[list-item]


async def test_the_frame_key_is_stable_and_signed_64_bit(sim_frames: Any) -> None:
    a = sim_frames("rig", 3, records=(1,))
    b = sim_frames("rig", 3, records=(1,))  # the same bytes decoded again: a replay
    keys = [frame_key(f) for f in a]
    assert keys == [frame_key(f) for f in b]
    assert len(set(keys)) == len(keys)
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert frame_key(sim_frames("other rig", 3, records=(1,))[0]) != keys[0]


async def test_a_nul_character_in_a_text_value_does_not_block_the_write(
    store: Store, source_name: str, wits_frames: Any
) -> None:
    frames = wits_frames("&&\n0101RIG\x007\n01083650.40\n!!", source_name)
    assert await store.write(frames) == 2
    value = {r.code: r.value async for r in store.query(source=source_name)}["0101"]
    # PostgreSQL text cannot hold U+0000: it stores U+FFFD; the raw frame keeps the byte.
    assert value == ("RIG\ufffd7" if store.backend == "postgresql" else "RIG\x007")
    raw = await store.raw_frame(source_name, frame_key(frames[0]))
    assert raw is not None
    assert b"RIG\x007" in raw


async def test_a_failed_write_stores_nothing_and_leaves_the_connection_usable(
    db_url: str, source_name: str, sim_frames: Any
) -> None:
    from witskit.storage import StorageError

    first, second, third = sim_frames(source_name, 3, records=(1,))[:3]
    store = await Store.open(db_url, pool_size=1)  # every call reuses the one connection
    try:
        await store.write([first])
        # Tamper: drop the frame row but leave its points, so writing the frame again must fail
        # on the points key (something WitsKit itself never does).
        async with store._engine.begin() as conn:
            await conn.execute(text("DELETE FROM frames WHERE frame_key = :k"), {"k": frame_key(first)})
        with pytest.raises(StorageError) as info:
            await store.write([second, first])
        assert not info.value.transient
        assert await store.raw_frame(source_name, frame_key(second)) is None  # rolled back whole
        assert await store.write([second, third]) == len(second) + len(third)
    finally:
        await store.aclose()


async def test_an_in_memory_sqlite_store(sim_frames: Any) -> None:
    async with await Store.open("sqlite:///:memory:") as store:
        frames = sim_frames("mem", 20)
        assert await store.write(frames) == sum(len(f) for f in frames)
        assert await store.write(frames) == 0
        assert len([r async for r in store.query(source="mem", codes=["0108"])]) == 20
        assert await store.size_on_disk() is None


def test_the_storage_package_imports_without_sqlalchemy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, witskit.storage, witskit.storage.errors\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'\n"
        "from witskit.storage import Store, StorageError, frame_key\n"
        "assert 'sqlalchemy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_storage_exports_are_documented() -> None:
    import witskit.storage as storage

    for name in storage.__all__:
        obj = getattr(storage, name)
        assert obj.__doc__, name


async def test_one_write_of_many_sources_is_one_batch_and_idempotent(
    store: Any, sim_frames: Any, source_name: str
) -> None:
    # A fleet behind one listener: each batch holds frames of many rigs.
    frames = []
    for rig in range(120):  # 600 frames: more than one 500-pair lookup chunk
        frames += sim_frames(f"{source_name}-rig{rig:02d}", 5, seed=rig, records=(1,))
    points = sum(len(f.codes) for f in frames)
    assert await store.write(frames) == points
    assert await store.write(frames) == 0
    mixed = frames[::2] + sim_frames(f"{source_name}-rig999", 3, seed=999, records=(1,))
    assert await store.write(mixed) == sum(len(f.codes) for f in mixed[-3:])
    infos = {i.name: i for i in await store.sources()}
    assert infos[f"{source_name}-rig07"].frame_count == 5
    assert infos[f"{source_name}-rig999"].point_count == sum(len(f.codes) for f in mixed[-3:])
