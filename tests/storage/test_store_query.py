"""Reading the store on every backend: filters, streaming in batches, latest values, sync access."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from witskit.errors import UsageError
from witskit.storage import PointRow, Store, frame_key, query_sync, to_dataframe
from witskit.storage.query import resolve_codes

T0 = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


async def all_rows(store: Store, **filters: Any) -> list[PointRow]:
    return [r async for r in store.query(**filters)]


@pytest.fixture
async def filled(store: Store, source_name: str, sim_frames: Any) -> tuple[Store, str, list[Any]]:
    frames = sim_frames(source_name, 120)
    await store.write(frames)
    return store, source_name, frames


async def test_query_by_codes_and_mnemonics_mixed(filled: tuple[Store, str, list[Any]]) -> None:
    store, source, _ = filled
    by_code = await all_rows(store, source=source, codes=["0108", "0113"])
    mixed = await all_rows(store, source=source, codes=["DBTM", "0113"])

    assert {r.code for r in by_code} == {"0108", "0113"}
    # DBTM is the bit depth of several records (0108, 0810 for the MWD record 8, ...): the mnemonic
    # stands for all of them.
    assert {r.code for r in mixed} == {"0108", "0810", "0113"}
    assert [r for r in mixed if r.code != "0810"] == by_code
    assert {r.name for r in mixed} == {"DBTM", "ROPA"}


async def test_query_by_time_range_is_start_inclusive_end_exclusive(
    filled: tuple[Store, str, list[Any]],
) -> None:
    store, source, frames = filled
    start, end = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)

    rows = await all_rows(store, source=source, start=start, end=end)

    assert rows
    assert min(r.time for r in rows) == start
    assert max(r.time for r in rows) == end - timedelta(seconds=1)
    want = sum(len(f) for f in frames if start <= f.timestamp < end)
    assert len(rows) == want
    # ISO strings and naive datetimes (taken as UTC) mean the same bounds.
    assert (
        await all_rows(store, source=source, start="2026-01-01T06:00:10Z", end="2026-01-01T06:00:20") == rows
    )
    naive = await all_rows(
        store, source=source, start=start.replace(tzinfo=None), end=end.replace(tzinfo=None)
    )
    assert naive == rows


async def test_rows_come_in_time_order_then_in_the_order_received(
    filled: tuple[Store, str, list[Any]],
) -> None:
    store, source, frames = filled
    rows = await all_rows(store, source=source, codes=["DBTM", "ROPA", "0101"])
    received = {frame_key(f): f.received_at for f in frames}
    keys = [(r.time, received[r.frame_key], r.idx) for r in rows]
    assert keys == sorted(keys)
    # Records 1, 2 and 8 of one second share its time: they come back as the rig sent them.
    wids = ["0801", "0201", "0101"]
    got = [(r.time, r.code) for r in await all_rows(store, source=source, codes=wids)]
    sent = [(f.timestamp, code) for f in frames for code in f.codes if code in wids]
    assert got == sent
    assert len(sent) > len({t for t, _ in sent})  # some seconds do hold several records


async def test_query_streams_in_batches(filled: tuple[Store, str, list[Any]]) -> None:
    store, source, frames = filled
    sizes = [len(b) async for b in store.query_batches(source=source, batch_size=250)]

    assert sum(sizes) == sum(len(f) for f in frames)
    assert max(sizes) == 250
    assert len(sizes) >= sum(sizes) // 250


async def test_stopping_early_releases_the_connection(db_url: str, source_name: str, sim_frames: Any) -> None:
    store = await Store.open(db_url, pool_size=1, timeout=5)
    try:
        await store.write(sim_frames(source_name, 200))
        async with contextlib.aclosing(store.query(source=source_name, batch_size=100)) as rows:
            async for _ in rows:
                break
        # With a pool of one, this would wait for the pool timeout if the cursor still held it.
        await store.ping()
        assert len(await all_rows(store, source=source_name, codes=["0108"])) > 0
    finally:
        await store.aclose()


async def test_unknown_sources_and_codes(filled: tuple[Store, str, list[Any]]) -> None:
    store, source, _ = filled
    assert await all_rows(store, source="no such rig") == []
    assert await all_rows(store, source=source, codes=["0999"]) == []
    with pytest.raises(UsageError, match="neither a 4-digit code nor a known mnemonic"):
        await all_rows(store, source=source, codes=["DBTMX"])


def test_mnemonics_resolve_through_the_dictionary() -> None:
    assert resolve_codes("0108") == ["0108"]
    dbtm = ["0108", "0410", "0508", "0608", "0810", "0910"]
    assert resolve_codes(["DBTM", "0108", "deptbitm"]) == dbtm
    assert resolve_codes(["0113", "ROPA"]) == ["0113", "0210"]
    with pytest.raises(UsageError, match="did you mean"):
        resolve_codes(["ROP"])


async def test_latest_is_the_newest_value_of_every_code(filled: tuple[Store, str, list[Any]]) -> None:
    store, source, frames = filled
    want: dict[str, tuple[datetime, Any]] = {}
    for f in sorted(frames, key=lambda f: f.timestamp):
        for code, value in f.items():
            want[code] = (f.timestamp, value)

    latest = await store.latest(source)

    assert latest.keys() == want.keys()
    assert {c: t for c, (t, _) in latest.items()} == {c: t for c, (t, _) in want.items()}
    assert latest["0108"] == want["0108"]
    assert await store.latest("no such rig") == {}


async def test_sources_and_size_on_disk(filled: tuple[Store, str, list[Any]]) -> None:
    store, source, frames = filled
    [info] = [s for s in await store.sources() if s.name == source]
    assert info.point_count == sum(len(f) for f in frames)
    assert info.created_at.tzinfo is not None
    size = await store.size_on_disk()
    assert isinstance(size, int)
    assert size > 0


def test_query_sync_streams_from_a_url(db_url: str, source_name: str, sim_frames: Any) -> None:
    import asyncio

    frames = sim_frames(source_name, 30)

    async def fill() -> None:
        async with await Store.open(db_url) as store:
            await store.write(frames)

    asyncio.run(fill())
    rows = list(query_sync(db_url, source=source_name, codes=["0108"], batch_size=7))
    assert [r.value for r in rows] == [f.get_value("0108").parsed_value for f in frames if "0108" in f.codes]
    # Stopping early closes the store (the leak check of the next test would see it otherwise).
    it = query_sync(db_url, source=source_name)
    next(it)
    it.close()  # type: ignore[attr-defined]


async def test_query_sync_refuses_to_run_inside_an_event_loop(db_url: str) -> None:
    with pytest.raises(UsageError, match="event loop"):
        query_sync(db_url)


def test_query_sync_does_not_create_a_missing_sqlite_file(tmp_path: Any) -> None:
    from witskit.storage import DatabaseNotFound

    with pytest.raises(DatabaseNotFound, match="no SQLite database"):
        list(query_sync(f"sqlite:///{tmp_path / 'missing.db'}"))
    assert not (tmp_path / "missing.db").exists()


def test_to_dataframe(db_url: str, source_name: str, sim_frames: Any) -> None:
    pd = pytest.importorskip("pandas")
    import asyncio

    frames = sim_frames(source_name, 20, records=(1,))

    async def fill() -> None:
        async with await Store.open(db_url) as store:
            await store.write(frames)

    asyncio.run(fill())
    df = to_dataframe(db_url, source=source_name, codes=["0108", "0101"])
    assert list(df.columns) == ["time", "source", "code", "value", "text"]
    assert len(df) == 40
    assert str(df["time"].dt.tz) == "UTC"
    assert df.loc[df["code"] == "0101", "text"].unique().tolist() == ["WITSKIT-SIM-1"]
    wide = to_dataframe(db_url, source=source_name, codes=["0108", "0113"], wide=True)
    assert list(wide.columns) == ["0108", "0113"]
    assert len(wide) == 20
    assert isinstance(wide, pd.DataFrame)


def test_to_dataframe_without_pandas_says_what_to_install(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(UsageError, match=r"pip install 'witskit\[pandas\]'"):
        to_dataframe(db_url)
