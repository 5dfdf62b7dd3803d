"""What real rigs send, through the store on every backend: values that do not fit their item's
type, UTF-8 text, and several frames in one DATE/TIME second (issue 10)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from witskit.protocol import DecodedFrame, iter_decode
from witskit.storage import Store
from witskit.storage.formats import PointText

T0 = datetime(2026, 3, 15, 9, 30, 15, tzinfo=UTC)


def decoded(data: bytes, source: str) -> list[DecodedFrame]:
    """The frames of ``data`` as one read of a parser (receive times increase in stream order)."""
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


def frame(*lines: str) -> bytes:
    return ("&&\r\n" + "\r\n".join(lines) + "\r\n!!\r\n").encode("utf-8")


async def rows_of(store: Store, **filters: Any) -> list[Any]:
    return [r async for r in store.query(**filters)]


async def test_values_that_do_not_fit_their_type_are_stored_and_read_back(
    store: Store, source_name: str
) -> None:
    data = frame(
        "EDR PASON",
        "0105260315",
        "0106093015",
        "0104260315 093015",  # a date-time text in SQID (L)
        "012095.3",  # decimal RPM (S)
        "01281.06",  # Pason MFOP (S)
        "013730.22",  # Pason STKC (L)
        "0120120",  # a well-typed value next to them
        "0113fast",  # text in a numeric item
    )
    (df,) = decoded(data, source_name)
    assert len(df.errors) == 5
    assert await store.write([df]) == 8

    got = [(r.code, r.value) for r in await rows_of(store, source=source_name)]
    assert len(got) == 8
    by_code: dict[str, list[Any]] = {}
    for code, value in got:
        by_code.setdefault(code, []).append(value)
    assert by_code["0104"] == ["260315 093015"]
    assert sorted(by_code["0120"]) == [95.3, 120]
    assert [type(v) for v in sorted(by_code["0120"])] == [float, int]
    assert by_code["0128"] == [1.06]
    assert by_code["0137"] == [30.22]
    assert by_code["0113"] == ["fast"]

    latest = await store.latest(source_name)
    assert latest["0128"] == (T0, 1.06)
    assert latest["0104"] == (T0, "260315 093015")

    # Exports (the API's CSV and JSON Lines, `witskit query`) format them as stored.
    scan = await store.scan(source=source_name, codes=["0104", "0128"])
    text = PointText(scan.names)
    csv_rows = [line async for batch in scan for line in text.csv(batch).splitlines()]
    assert any(",0128," in line and line.endswith(",1.06") for line in csv_rows)
    assert any(",0104," in line and "260315 093015" in line for line in csv_rows)
    raw = await store.raw_frame(source_name, (await rows_of(store, source=source_name))[0].frame_key)
    assert raw is not None
    assert b"EDR PASON" in raw


async def test_utf8_text_is_stored_as_text_not_mojibake(store: Store, source_name: str) -> None:
    (df,) = decoded(frame("0105260315", "0106093015", "0101héllo wörld °C"), source_name)
    (cp1252,) = decoded(b"&&\r\n0105260315\r\n0106093016\r\n0101h\xe9llo \x80\r\n!!\r\n", source_name)
    await store.write([df, cp1252])
    values = [r.value for r in await rows_of(store, source=source_name, codes=["0101"])]
    assert values == ["héllo wörld °C", "héllo €"]


async def test_frames_of_one_second_come_back_in_the_order_they_were_received(
    store: Store, source_name: str
) -> None:
    # 20 frames a second with the same DATE/TIME: the frame key (a hash) must not decide the order.
    data = b"".join(frame("0105260315", "0106093015", f"0108{1000 + i}.5", f"0113{i}.0") for i in range(20))
    frames = decoded(data, source_name)
    assert len({f.timestamp for f in frames}) == 1
    shuffled = frames[:]
    random.Random(4).shuffle(shuffled)
    for start in range(0, 20, 5):  # written in several batches, out of order (a spool replay)
        await store.write(shuffled[start : start + 5])

    rows = await rows_of(store, source=source_name, codes=["0108"])
    assert [r.value for r in rows] == [1000.5 + i for i in range(20)]
    rows = await rows_of(store, source=source_name)
    assert [r.value for r in rows if r.code == "0113"] == [float(i) for i in range(20)]
    assert [r.code for r in rows[:6]] == ["0105", "0106", "0108", "0113", "0105", "0106"]

    scan = await store.scan(source=source_name, codes=["0108"], batch_size=7)
    keys = [row[5] async for batch in scan for row in batch]
    assert keys == [r.frame_key for r in rows if r.code == "0108"]

    latest = await store.latest(source_name)
    assert latest["0108"] == (T0, 1019.5)
    assert latest["0113"] == (T0, 19.0)
