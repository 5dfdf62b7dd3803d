"""Log tables: the time index, and the depth index resampled while on bottom."""

from __future__ import annotations

import asyncio
import itertools
import math
from datetime import timedelta

import pytest
from export_samples import T0, Reading, batches_of, drilling

from witskit.errors import UsageError
from witskit.export import IndexKind, channels_for, depth_table, time_table

CHANNELS = channels_for(["0108", "0113", "0116"], metric=True)


def test_channels_carry_mnemonic_unit_and_description() -> None:
    rop = CHANNELS[1]
    assert (rop.code, rop.mnemonic, rop.unit) == ("0113", "ROPA", "M/HR")
    assert "Penetration" in rop.description
    assert channels_for(["0113"], metric=False)[0].unit == "F/HR"


def test_a_mnemonic_two_records_share_is_made_unique_by_record() -> None:
    names = [c.mnemonic for c in channels_for(["0108", "0810"], metric=True)]
    assert names == ["DBTM_01", "DBTM_08"]


def test_text_items_are_refused_by_name() -> None:
    with pytest.raises(UsageError, match=r"WID \(0101.*text"):
        channels_for(["0101"], metric=True)


def test_time_index_has_a_row_per_frame_time_and_keeps_nulls() -> None:
    readings = drilling(10)
    table = asyncio.run(time_table(batches_of(readings), "rig-1", CHANNELS))
    assert table.kind is IndexKind.time
    assert list(table.index) == sorted({r.time for r in readings})
    assert table.columns[1][5] is None  # ROPA null at second 5
    assert table.columns[1][4] == 41.0
    assert table.well == "A-1 <Main> & Co"


def test_time_step_takes_the_last_reading_of_each_step() -> None:
    readings = [Reading(T0, "0113", 1.0), Reading(T0.replace(microsecond=900000), "0113", 2.0)]
    readings.append(Reading(T0.replace(second=3, microsecond=0), "0113", 3.0))
    table = asyncio.run(time_table(batches_of(readings), "rig-1", CHANNELS[1:2], step=1.0))
    # origin 10:00:00; 0.25 s and 0.9 s fall in (0, 1], 3.0 s in (2, 3]; steps with nothing stay null
    assert [t.second for t in table.index] == [1, 2, 3]
    assert table.columns[0] == [2.0, None, 3.0]
    assert table.step == 1.0


def test_depth_index_is_regular_and_holds_only_on_bottom_readings() -> None:
    readings = drilling(60)
    table = asyncio.run(depth_table(batches_of(readings), "rig-1", CHANNELS, step=0.5, depth_unit="M"))
    index = [float(d) for d in table.index]
    assert index[0] == 1000.0
    assert all(math.isclose(b - a, 0.5) for a, b in itertools.pairwise(index))
    assert all(round(d / 0.5, 9).is_integer() for d in index)
    # every reading in a row was taken with the bit in (row - step, row]
    bits = table.columns[0]
    for depth, bit in zip(index, bits, strict=True):
        if bit is not None:
            assert depth - 0.5 < bit <= depth
    # the readings taken 5 m off bottom (WOBA is 11.5 + (i % 7) / 10 at second i) never appear
    on_bottom = {round(11.5 + (i % 7) / 10, 2) for i in range(60) if not 20 <= i < 30}
    assert {v for v in table.columns[2] if v is not None} <= on_bottom


def test_depth_row_keeps_the_last_reading_in_its_interval() -> None:
    t = [T0.replace(second=s) for s in range(3)]
    readings = [
        Reading(t[0], "0108", 10.1), Reading(t[0], "0110", 10.1), Reading(t[0], "0113", 1.0),
        Reading(t[1], "0108", 10.3), Reading(t[1], "0110", 10.3), Reading(t[1], "0113", 2.0),
        Reading(t[2], "0108", 10.6), Reading(t[2], "0110", 10.6), Reading(t[2], "0113", 3.0),
    ]  # fmt: skip
    table = asyncio.run(depth_table(batches_of(readings), "rig-1", CHANNELS[1:2], step=0.5, depth_unit="M"))
    assert list(table.index) == [10.5, 11.0]
    assert table.columns[0] == [2.0, 3.0]


@pytest.mark.parametrize(("missing", "named"), [("0108", r"DBTM \(0108"), ("0110", r"DMEA \(0110")])
def test_a_depth_index_without_its_depth_items_names_them(missing: str, named: str) -> None:
    readings = [r for r in drilling(5) if r.code != missing]
    with pytest.raises(UsageError, match=named):
        asyncio.run(depth_table(batches_of(readings), "rig-1", CHANNELS, step=0.5, depth_unit="M"))


def test_never_on_bottom_is_an_error() -> None:
    readings = [r for r in drilling(30) if not (r.code == "0108" or r.code == "0110")]
    readings += [Reading(T0, "0108", 900.0), Reading(T0, "0110", 1000.0)]
    with pytest.raises(UsageError, match="never on bottom"):
        asyncio.run(
            depth_table(
                batches_of(sorted(readings, key=lambda r: r.time)),
                "rig-1",
                CHANNELS,
                step=1.0,
                depth_unit="M",
            )
        )


@pytest.mark.parametrize("step", [0.0, -1.0, math.nan, math.inf])
def test_a_step_that_is_no_positive_number_is_refused(step: float) -> None:
    with pytest.raises(UsageError, match="step"):
        asyncio.run(depth_table(batches_of(drilling(3)), "rig-1", CHANNELS, step=step, depth_unit="M"))
    with pytest.raises(UsageError, match="step"):
        asyncio.run(time_table(batches_of(drilling(3)), "rig-1", CHANNELS, step=step))


def test_a_log_larger_than_the_bound_is_refused_before_it_is_built() -> None:
    readings = drilling(60)
    with pytest.raises(UsageError, match="more than 100 values"):
        asyncio.run(time_table(batches_of(readings), "rig-1", CHANNELS, max_values=100))
    sparse = [Reading(T0, "0113", 1.0), Reading(T0 + timedelta(hours=1), "0113", 2.0)]
    with pytest.raises(UsageError, match="more than 100 values"):  # the regular grid of a sparse range
        asyncio.run(time_table(batches_of(sparse), "rig-1", CHANNELS, step=1.0, max_values=100))
    with pytest.raises(UsageError, match="more than 30 values"):
        asyncio.run(
            depth_table(batches_of(readings), "rig-1", CHANNELS, step=0.5, depth_unit="M", max_values=30)
        )
    table = asyncio.run(depth_table(batches_of(readings), "rig-1", CHANNELS, step=0.5, depth_unit="M"))
    assert table.rows * len(CHANNELS) > 30
