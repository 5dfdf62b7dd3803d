"""The WITS dictionary: integrity, search, overlays."""

from __future__ import annotations

from pathlib import Path

import pytest

import witskit
from witskit.errors import SymbolError
from witskit.symbols import (
    WITS_SYMBOLS,
    SymbolTable,
    WITSDataType,
    default_table,
    get_record_description,
    get_record_types,
    get_symbol_by_code,
    get_symbols_by_record_type,
    load_overlay,
    reset_symbols,
    search_symbols,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "wits"
DATA = Path(witskit.__file__).parent / "symbols" / "data"


def test_there_are_1031_items_in_25_records() -> None:
    assert len(WITS_SYMBOLS) == 1031
    assert sorted(get_record_types()) == list(range(1, 26))
    assert sum(len(get_symbols_by_record_type(r)) for r in range(1, 26)) == 1031


def test_header_items_are_identical_in_every_record() -> None:
    header = [(s.name, s.data_type, s.length) for s in get_symbols_by_record_type(1)[:7]]
    assert [h[0] for h in header] == ["WID", "SKNO", "RID", "SQID", "DATE", "TIME", "ACTC"]
    for record in range(2, 26):
        items = get_symbols_by_record_type(record)[:7]
        assert [(s.name, s.data_type, s.length) for s in items] == header, record


def test_record_4_item_8_is_dmea_in_hydraulics() -> None:
    sym = WITS_SYMBOLS["0408"]
    assert sym.name == "DMEA"
    assert get_record_types()[sym.record_type] == "Hydraulics"


def test_0501_to_0523_are_trip_time() -> None:
    items = get_symbols_by_record_type(5)
    assert [s.code for s in items] == [f"05{i:02d}" for i in range(1, 24)]
    assert get_record_types()[5] == "Trip - Time"


def test_record_1_is_not_shifted() -> None:
    expected = {
        "0108": "DBTM",
        "0110": "DMEA",
        "0113": "ROPA",
        "0114": "HKLA",
        "0116": "WOBA",
        "0121": "SPPA",
    }
    assert {c: WITS_SYMBOLS[c].name for c in expected} == expected
    assert WITS_SYMBOLS["0141"].name == "SPR1"


def test_types_and_lengths_pair_as_the_spec_says() -> None:
    for sym in WITS_SYMBOLS.values():
        if sym.data_type is WITSDataType.FLOAT:
            assert sym.length == 4
        elif sym.data_type is WITSDataType.SHORT:
            assert sym.length == 2
        elif sym.data_type is WITSDataType.LONG:
            assert sym.length == 4
        else:
            assert sym.length in (1, 2, 8, 16, 32, 64, 128, 256)


def test_symbol_fields() -> None:
    sym = get_symbol_by_code("0108")
    assert sym is not None
    assert (sym.code, sym.name, sym.long_name, sym.description) == (
        "0108",
        "DBTM",
        "DEPTBITM",
        "Depth Bit (meas)",
    )
    assert (sym.data_type, sym.length, sym.metric_units, sym.fps_units) == (WITSDataType.FLOAT, 4, "M", "F")
    assert (sym.record_type, sym.item_number) == (1, 8)
    assert sym.unit(True) == "M"
    assert sym.data_type.value == "F"
    assert get_symbol_by_code("9999") is None


def test_shipped_tables_match_the_verified_dictionary() -> None:
    if not SHARED.exists():
        pytest.skip(f"no shared dictionary at {SHARED}")
    for name in ("symbols.csv", "records.csv"):
        assert (DATA / name).read_bytes() == (SHARED / name).read_bytes(), name


def test_search_finds_resis_items_for_resistivity() -> None:
    codes = {s.code for s in search_symbols("resistivity")}
    assert {"0815", "0816", "0819", "0820", "0837", "0838"} <= codes
    assert all(s.record_type == 8 for s in search_symbols("resistivity", record=8))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ROPA", "0113"),
        ("rate of penetration", "0113"),
        ("average torque", "0118"),
        ("hookload", "0114"),
        ("hook load", "0114"),
        ("bit depth", "0108"),
        ("0121", "0121"),
        ("deptbitm", "0108"),
    ],
)
def test_search_is_forgiving(query: str, expected: str) -> None:
    assert expected in [s.code for s in search_symbols(query)]


def test_exact_mnemonic_ranks_first() -> None:
    assert search_symbols("SPPA")[0].name == "SPPA"
    assert search_symbols("") == []


def test_record_descriptions() -> None:
    assert get_record_description(1) == "General Time-Based: Drilling data gathered at regular time intervals"
    assert get_record_description(19) == "Configuration"
    assert get_record_description(99) == ""


OVERLAY = """code,record,item,mnemonic,long_mnemonic,description,type,length,metric_unit,fps_unit
6301,63,1,GASX,GASX,Vendor gas total,F,4,%,%
0141,1,41,MSE,MSE,Mechanical Specific Energy,F,4,KPA,PSI
"""


def test_overlay_adds_and_overrides_codes(tmp_path: Path) -> None:
    path = tmp_path / "rig.csv"
    path.write_text(OVERLAY)
    try:
        table = load_overlay(path)
        assert table["6301"].name == "GASX"
        assert WITS_SYMBOLS["0141"].name == "MSE"
        assert len(WITS_SYMBOLS) == 1032
        assert witskit.decode_frame("&&\n630112.5\n!!").errors == []
        assert get_record_types()[63] == "Record 63"
    finally:
        reset_symbols()
    assert WITS_SYMBOLS["0141"].name == "SPR1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,record\n0101,1\n", "missing column"),
        (OVERLAY.replace("6301,63,1", "63x1,63,1"), "not 4 digits"),
        (OVERLAY.replace(",F,4,%", ",Q,4,%"), "not one of A, F, S, L"),
        (OVERLAY.replace("6301,63,1", "6301,63,2"), "disagrees"),
    ],
)
def test_bad_overlay_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SymbolError, match=message) as info:
        load_overlay(path)
    assert str(path) in str(info.value)
    assert len(WITS_SYMBOLS) == 1031


def test_missing_overlay_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SymbolError, match="cannot read overlay"):
        load_overlay(tmp_path / "nope.csv")


def test_table_is_a_read_only_mapping() -> None:
    table = default_table()
    assert isinstance(table, SymbolTable)
    assert "0108" in table
    assert table.by_mnemonic("dbtm")[0].code == "0108"
