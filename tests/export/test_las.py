"""LAS 2.0 files: lasio reads back the same numbers, lascheck finds no error, nulls are NULL."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from export_samples import T0, batches_of, drilling

from witskit.errors import UsageError
from witskit.export import LAS_NULL, LogTable, channels_for, depth_table, time_table, write_las

lasio = pytest.importorskip("lasio", reason="LAS export needs lasio: pip install 'witskit[las]'")
lascheck = pytest.importorskip("lascheck", reason="the LAS checker: pip install lascheck (in witskit[dev])")

CHANNELS = channels_for(["0108", "0113", "0116"], metric=False)


def _tables() -> dict[str, LogTable]:
    readings = drilling(60)
    return {
        "depth": asyncio.run(depth_table(batches_of(readings), "rig-1", CHANNELS, step=0.5, depth_unit="F")),
        "time": asyncio.run(time_table(batches_of(readings), "rig-1", CHANNELS, step=1.0)),
    }


TABLES = _tables()


def _write(tmp_path: Path, table: LogTable, **kwargs: str) -> Path:
    path = tmp_path / "out.las"
    path.write_text(write_las(table, **kwargs), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_lasio_reads_back_the_same_numbers(tmp_path: Path, kind: str) -> None:
    table = TABLES[kind]
    las = lasio.read(_write(tmp_path, table))
    assert las.version["VERS"].value == 2.0
    assert las.version["WRAP"].value == "NO"
    assert [c.mnemonic for c in las.curves][1:] == ["DBTM", "ROPA", "WOBA"]
    for channel, column in zip(table.channels, table.columns, strict=True):
        read = las[channel.mnemonic]
        assert len(read) == table.rows
        for want, got in zip(column, read, strict=True):
            assert (want is None and math.isnan(got)) or got == pytest.approx(want, abs=5e-5)
    if kind == "depth":
        assert list(las.index) == pytest.approx([float(d) for d in table.index])
        assert las.well["STEP"].value == 0.5
        assert las.curves[0].unit == "F"
        assert las.well["DATE"].value == table.first_time.isoformat()  # type: ignore[union-attr]
        assert table.first_time == T0  # the first reading was on bottom
    else:
        start = table.index[0]
        assert las.well["DATE"].value == start.isoformat()  # type: ignore[union-attr]
        want = [(t - start).total_seconds() for t in table.index]  # type: ignore[operator]
        assert list(las.index) == pytest.approx(want)
        assert las.curves[0].mnemonic == "TIME"
        assert las.curves[0].unit == "s"
    assert las.well["STRT"].value == pytest.approx(las.index[0])
    assert las.well["STOP"].value == pytest.approx(las.index[-1])


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_lascheck_finds_no_error(tmp_path: Path, kind: str) -> None:
    checked = lascheck.read(str(_write(tmp_path, TABLES[kind])))
    assert checked.check_conformity(), checked.get_non_conformities()
    assert checked.get_non_conformities() == []


def test_lascheck_can_fail() -> None:
    text = write_las(TABLES["depth"]).replace("DEPT.F", "DEPT.KM")
    checked = lascheck.read(text)
    assert not checked.check_conformity()


def test_nulls_are_the_null_value_of_the_well_section(tmp_path: Path) -> None:
    path = _write(tmp_path, TABLES["time"])
    las = lasio.read(path)
    assert las.well["NULL"].value == LAS_NULL
    rop = TABLES["time"].columns[1]
    assert None in rop
    data = path.read_text(encoding="utf-8").split("~ASCII", 1)[1].splitlines()[1:]
    row = data[rop.index(None)].split()
    assert float(row[2]) == LAS_NULL


def test_header_names_well_units_and_descriptions(tmp_path: Path) -> None:
    las = lasio.read(_write(tmp_path, TABLES["depth"]))
    assert las.well["WELL"].value == "A-1 <Main> & Co"  # from the WID item
    rop = las.curves["ROPA"]
    assert rop.unit == "ft/h"
    assert rop.descr == "Rate of Penetration (avg) (WITS 0113)"
    assert las.curves["WOBA"].unit == "klbf"
    las = lasio.read(_write(tmp_path, TABLES["depth"], well="Given"))
    assert las.well["WELL"].value == "Given"


def test_an_empty_table_is_an_error() -> None:
    empty = LogTable("rig-1", TABLES["time"].kind, [], "SEC", None, CHANNELS, [[], [], []])
    with pytest.raises(UsageError, match="no data for rig-1"):
        write_las(empty)


def test_a_hostile_well_name_stays_on_its_header_line(tmp_path: Path) -> None:
    path = _write(tmp_path, TABLES["depth"], well="A-1\r\n~A 1 2 3\x00: x")
    las = lasio.read(path)
    assert las.well["WELL"].value.startswith("A-1 ~A 1 2 3")
    assert lascheck.read(str(path)).check_conformity()
