"""Decoder: typed values, errors that name their line, nulls, frame time, the witskit 0.1 API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import witskit
from witskit.errors import DecodeError, FrameError, UsageError
from witskit.protocol import (
    DecodedData,
    FrameParser,
    WITSDecoder,
    WITSFrame,
    decode_file,
    decode_frame,
    iter_decode,
    iter_frames,
    known_header_lines,
    register_header_line,
    split_multiple_frames,
    text_value,
    validate_wits_frame,
)


def frame_of(*lines: str, eol: str = "\r\n") -> bytes:
    return ("&&" + eol + eol.join(lines) + eol + "!!" + eol).encode("latin-1")


def parse_one(data: bytes) -> WITSFrame:
    p = FrameParser(source="rig-7")
    (frame,) = p.feed(data) + p.close()
    assert isinstance(frame, WITSFrame)
    return frame


def test_values_are_typed_by_item_type() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("0101WELL 7", "0108 3650.40", "0120120", "0104 42")))
    assert df.codes == (
        "0101",
        "0108",
        "0120",
        "0104",
    )
    assert df.values == ["WELL 7", 3650.4, 120, 42]
    assert isinstance(df.values[2], int)
    assert df.errors == []


def test_ascii_items_accept_any_text() -> None:
    # The seed's validator rejected these; the spec says A items are text.
    df = decode_frame("&&\n0101Well #7/Pad-B (ST01)\n!!")
    assert df.values == ["Well #7/Pad-B (ST01)"]
    assert df.errors == []


def test_non_numeric_value_for_numeric_item_is_kept_as_text_with_an_error() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("01081.5", "0113abc", "01142.5")))
    assert df.codes == ("0108", "0113", "0114")
    assert df.values == [1.5, "abc", 2.5]
    (err,) = df.errors
    assert "line 2" in err
    assert "'abc' is not a number" in err
    assert "0113 ROPA" in err
    assert "kept as text" in err


def test_non_integral_value_for_integer_item_is_kept_as_a_float_with_an_error() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("0120120.5", "01231.0")))
    assert df.codes == ("0120", "0123")
    assert df.values == [120.5, 1]  # an integral float for an integer item is accepted as an int
    assert type(df.values[0]) is float
    assert type(df.values[1]) is int
    (err,) = df.errors
    assert "non-integral value '120.5' for integer item 0120 RPMA" in err


def test_non_finite_values_are_kept_as_text_with_errors() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("0108nan", "0110inf", "01121.0")))
    assert df.values == ["nan", "inf", 1.0]
    assert len(df.errors) == 2
    assert all("non-finite" in e for e in df.errors)


def test_empty_numeric_value_is_kept_as_a_null_with_an_error() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("0108", "01121.0")))
    assert df.codes == ("0108", "0112")
    assert df.values == [None, 1.0]
    assert "empty value for numeric item 0108" in df.errors[0]


# Real captures: every coded line is a point, the mismatch is still reported with its line.
REAL_CAPTURE_LINES = (
    "0105260315",
    "0106093015",
    "01081234.5",
    "012095.3",  # decimal RPM (S item)
    "01281.06",  # Pason MFOP (L item)
    "013730.22",  # Pason STKC (L item)
    "01240.5",
    "012512.75",
    "01383.3",
)


def test_real_capture_values_that_do_not_fit_their_type_are_all_kept() -> None:
    df = WITSDecoder().decode(parse_one(frame_of(*REAL_CAPTURE_LINES, "0104260315 093015")))
    got = dict(df.items())
    assert got["0120"] == 95.3
    assert got["0128"] == 1.06
    assert got["0137"] == 30.22
    assert got["0124"] == 0.5
    assert got["0125"] == 12.75
    assert got["0138"] == 3.3
    assert got["0104"] == "260315 093015"  # a date-time text in SQID
    assert len(df.codes) == len(REAL_CAPTURE_LINES) + 1
    assert df.timestamp == datetime(2026, 3, 15, 9, 30, 15, tzinfo=UTC)
    assert len(df.errors) == 7
    assert any(e.startswith("line 4 ") and "0120" in e for e in df.errors)
    assert any(e.startswith("line 10 ") and "0104" in e and "kept as text" in e for e in df.errors)
    rec = df.to_record()
    assert [p["value"] for p in rec["points"]][3:6] == [95.3, 1.06, 30.22]
    assert rec["points"][9]["raw"] == "260315 093015"


def test_real_capture_mismatch_still_raises_in_strict_mode() -> None:
    with pytest.raises(DecodeError, match=r"non-integral value '1\.06' for integer item 0128"):
        WITSDecoder(strict_mode=True).decode(parse_one(frame_of("01081.5", "01281.06")))
    with pytest.raises(DecodeError, match="kept as text"):
        WITSDecoder(strict_mode=True).decode(parse_one(frame_of("0104260315 093015")))


def test_repeated_layout_with_a_mismatch_keeps_its_points_every_time() -> None:
    # The fast path caches a plan per layout: a later frame of the same layout must not lose them.
    dec = WITSDecoder()
    ok = dec.decode(parse_one(frame_of("01081.5", "0120120")))
    bad = dec.decode(parse_one(frame_of("01081.5", "012095.3")))
    assert ok.values == [1.5, 120]
    assert bad.values == [1.5, 95.3]
    assert bad.errors


# Vendor header lines ------------------------------------------------------------------------
def test_pason_edr_header_line_is_kept_without_an_error() -> None:
    dec = WITSDecoder()
    for _ in range(3):  # the first frame builds the layout's plan, the next ones use it
        df = dec.decode(parse_one(frame_of("EDR PASON", "0105260315", "0106093015", "01081.5")))
        assert df.errors == []
        assert df.headers == ("EDR PASON",)
        assert df.codes == ("0105", "0106", "0108")
        assert df.values[2] == 1.5
        assert df.raw_value(2) == "1.5"
        assert df.timestamp == datetime(2026, 3, 15, 9, 30, 15, tzinfo=UTC)
        assert df.to_record()["headers"] == ["EDR PASON"]
    assert b"EDR PASON" in df.frame.raw


def test_a_line_that_only_starts_like_a_header_is_still_an_error() -> None:
    dec = WITSDecoder()
    dec.decode(parse_one(frame_of("EDR PASON", "01081.5")))  # plan for the head 'EDR '
    df = dec.decode(parse_one(frame_of("EDR XYZ", "01081.5")))
    assert df.headers == ()
    assert df.codes == ("0108",)
    assert "'EDR XYZ' does not start with a 4-digit code" in df.errors[0]


def test_header_lines_can_be_added() -> None:
    frame = parse_one(frame_of("TOTCO RIG 12", "01081.5"))
    assert WITSDecoder().decode(frame).errors
    df = WITSDecoder(header_lines=(r"TOTCO RIG \d+",)).decode(frame)
    assert df.errors == []
    assert df.headers == ("TOTCO RIG 12",)
    with pytest.raises(UsageError, match="not a valid regular expression"):
        WITSDecoder(header_lines=("(",))


def test_register_header_line_reaches_new_decoders() -> None:
    frame = parse_one(frame_of("ACME MUDLOG V2", "01081.5"))
    before = known_header_lines()
    try:
        register_header_line(r"ACME MUDLOG V\d")
        assert WITSDecoder().decode(frame).headers == ("ACME MUDLOG V2",)
    finally:
        witskit.protocol.decoder._header_lines[:] = before
    assert WITSDecoder().decode(frame).errors


# Text encoding --------------------------------------------------------------------------------
def test_text_items_are_utf8() -> None:
    df = WITSDecoder().decode(parse_one("&&\r\n0101héllo wörld\r\n0108x°\r\n!!\r\n".encode()))
    assert df.values[0] == "héllo wörld"
    assert df.values[1] == "x°"  # kept as text for a numeric item
    assert df.data_points[0].raw_value == "héllo wörld"
    assert df.to_record()["points"][0]["raw"] == "héllo wörld"


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"h\xe9llo", "héllo"), (b"\x93quoted\x94 \x80", "\u201cquoted\u201d \u20ac"), (b"a\x81b", "a\x81b")],
    ids=["latin1", "cp1252", "undefined-in-cp1252"],
)
def test_text_that_is_not_utf8_falls_back_to_cp1252(raw: bytes, text: str) -> None:
    assert text_value(raw) == text
    df = WITSDecoder().decode(parse_one(b"&&\r\n0101" + raw + b"\r\n!!\r\n"))
    assert df.values == [text]
    assert df.errors == []


def test_unknown_code_is_kept_with_an_error() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("6301 12.5", "6302 PUMP A", "0108 1")))
    assert df.codes == (
        "6301",
        "6302",
        "0108",
    )
    assert df.values == [12.5, "PUMP A", 1.0]
    assert len(df.errors) == 2
    assert "unknown code 6301" in df.errors[0]
    point = df.get_value("6301")
    assert point is not None
    assert point.raw_value == "12.5"
    assert point.symbol.description.startswith("Unknown item 6301")


def test_line_without_code_is_an_error() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("01081", "xx12", "12")))
    assert df.codes == ("0108",)
    assert len(df.errors) == 2
    assert "does not start with a 4-digit code" in df.errors[0]


def test_strict_mode_raises_a_value_error() -> None:
    frame = parse_one(frame_of("01081", "9999 1"))
    with pytest.raises(DecodeError, match="unknown code 9999"):
        WITSDecoder(strict_mode=True).decode(frame)
    with pytest.raises(ValueError):  # witskit 0.1 raised ValueError
        decode_frame(frame.raw_data, strict_mode=True)


@pytest.mark.parametrize("raw", ["-9999", "-999.25", "-8888", "-9999.00"])
def test_null_sentinels_decode_to_none_with_raw_kept(raw: str) -> None:
    df = WITSDecoder().decode(parse_one(frame_of(f"0108{raw}", f"0120{raw}")))
    assert df.values == [None, None]
    assert df.raw_value(0) == raw
    assert df.data_points[0].raw_value == raw
    assert df.data_points[0].is_null


def test_null_sentinels_are_configurable() -> None:
    frame = parse_one(frame_of("0108-9999", "0110-1"))
    df = WITSDecoder(null_values=[-1]).decode(frame)
    assert df.values == [-9999.0, None]


def test_frame_time_from_date_and_time_items() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("0105260315", "010693015", "01081")))
    assert df.timestamp == datetime(2026, 3, 15, 9, 30, 15, tzinfo=UTC)
    assert df.received_at != df.timestamp


def test_frame_time_in_a_configured_zone_is_returned_as_utc() -> None:
    frame = parse_one(frame_of("0105260115", "0106120000"))
    df = WITSDecoder(timezone="America/Chicago").decode(frame)
    assert df.timestamp == datetime(2026, 1, 15, 18, 0, 0, tzinfo=UTC)
    assert df.timestamp.tzinfo is UTC or df.timestamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_frame_time_uses_the_frames_own_record() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("0801X", "0805251231", "0806235959")))
    assert df.timestamp == datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_pason_header_line_is_text_and_does_not_hide_the_frame_time() -> None:
    df = WITSDecoder().decode(parse_one(frame_of("1984PASON/EDR", "0105260315", "0106093015", "01081.5")))
    assert df.values[0] == "PASON/EDR"
    assert df.timestamp == datetime(2026, 3, 15, 9, 30, 15, tzinfo=UTC)
    assert df.errors == []


def test_invalid_date_falls_back_to_receive_time_with_an_error() -> None:
    frame = parse_one(frame_of("0105261345", "0106120000"))
    df = WITSDecoder().decode(frame)
    assert df.timestamp == frame.timestamp
    assert "invalid DATE 261345" in df.errors[0]


@pytest.mark.parametrize("date", ["010521474836480000", "0105999999", "0105000000"])
def test_absurd_dates_never_raise(date: str) -> None:
    frame = parse_one(frame_of(date, "0106120000"))
    df = WITSDecoder().decode(frame)
    assert df.timestamp == frame.timestamp


def test_missing_date_uses_receive_time_in_utc() -> None:
    frame = parse_one(frame_of("01081"))
    df = WITSDecoder().decode(frame)
    assert df.timestamp == frame.timestamp
    assert df.timestamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        WITSDecoder(timezone="Mars/Olympus")


# witskit 0.1 compatibility -------------------------------------------------------------------
SEED_FRAME = "&&\n01083650.40\n011323.38\n!!"


def test_decode_frame_default_is_fps_units() -> None:
    df = decode_frame(SEED_FRAME)
    point = df.get_value("0108")
    assert isinstance(point, DecodedData)
    assert point.parsed_value == 3650.4
    assert point.unit == "F"
    assert point.symbol_name == "DBTM"
    assert point.symbol_code == "0108"
    assert point.symbol_description == "Depth Bit (meas)"
    assert decode_frame(SEED_FRAME, use_metric_units=True).get_value("0108").unit == "M"  # type: ignore[union-attr]


def test_get_value_by_mnemonic_and_missing() -> None:
    df = decode_frame(SEED_FRAME, source="rig-1")
    assert df.get_value("ROPA").parsed_value == 23.38  # type: ignore[union-attr]
    assert df.get_value("0999") is None
    assert df.source == "rig-1"
    assert df.get_values_by_name("DBTM")[0].source == "rig-1"


def test_to_dict_shape() -> None:
    d = decode_frame(SEED_FRAME).to_dict()
    assert set(d) == {"timestamp", "source", "data", "errors"}
    assert d["data"]["0108"] == {
        "name": "DBTM",
        "description": "Depth Bit (meas)",
        "value": 3650.4,
        "raw_value": "3650.40",
        "unit": "F",
    }


def test_decode_frame_on_bad_text_reports_instead_of_raising() -> None:
    df = decode_frame("not a frame")
    assert df.codes == ()
    assert df.errors
    assert df.errors[0].startswith("Frame decoding failed")


def test_witsframe_constructor_validates_like_0_1() -> None:
    frame = WITSFrame(raw_data=SEED_FRAME, source="x")
    assert frame.data_lines == ["01083650.40", "011323.38"]
    assert frame.parse_data_line("01083650.40") == ("0108", "3650.40")
    assert frame.timestamp.tzinfo is not None
    with pytest.raises(ValueError):
        WITSFrame(raw_data="0108 1.0\n!!")
    with pytest.raises(ValueError, match="4-digit code"):
        frame.parse_data_line("ab")


def test_witsframe_is_immutable() -> None:
    frame = WITSFrame(raw_data=SEED_FRAME)
    with pytest.raises(AttributeError):
        frame.source = "other"  # type: ignore[misc]


def test_split_validate_and_decode_file() -> None:
    text = SEED_FRAME + "\njunk\n" + SEED_FRAME.replace("3650.40", "3651.20")
    parts = split_multiple_frames(text)
    assert len(parts) == 2
    assert all(validate_wits_frame(p) for p in parts)
    assert not validate_wits_frame(text)
    assert not validate_wits_frame("&&\n0108 1")
    frames = decode_file(text)
    assert [f.values[0] for f in frames] == [3650.4, 3651.2]
    with pytest.raises(ValueError, match="no valid WITS frames"):
        decode_file("nothing here")
    with pytest.raises(FrameError):
        decode_file(text, strict_mode=True)


def test_decoder_class_0_1_api() -> None:
    dec = witskit.WITSDecoder(use_metric_units=True)
    frames = dec.decode_multiple_frames([SEED_FRAME, SEED_FRAME], source="s")
    assert [f.source for f in frames] == ["s", "s"]
    assert frames[0].data_points[1].unit == "M/HR"


def test_to_record_shape() -> None:
    rec = decode_frame("&&\n01083650.40\n0108-9999\n!!").to_record()
    assert rec["points"] == [
        {"code": "0108", "name": "DBTM", "value": 3650.4, "raw": "3650.40", "unit": "F"},
        {"code": "0108", "name": "DBTM", "value": None, "raw": "-9999", "unit": "F"},
    ]
    assert rec["errors"] == []


# Streaming ----------------------------------------------------------------------------------
def test_iter_decode_file_in_small_chunks_matches_decode_file(tmp_path: Path) -> None:
    frames = [frame_of("0105260101", f"0106{100000 + i}", f"0108{i}.5") for i in range(200)]
    data = b"garbage\r\n".join(frames)
    path = tmp_path / "log.wits"
    path.write_bytes(data)
    events = list(iter_decode(path, chunk_size=7))
    decoded = [e for e in events if not isinstance(e, FrameError)]
    errors = [e for e in events if isinstance(e, FrameError)]
    assert len(decoded) == 200
    assert len(errors) == 199
    assert [d.values for d in decoded] == [d.values for d in decode_file(data)]
    assert decoded[0].source == str(path)


def test_iter_frames_accepts_file_objects_and_chunk_iterables(tmp_path: Path) -> None:
    path = tmp_path / "x.wits"
    path.write_bytes(frame_of("01081") * 3)
    with path.open("rb") as fh:
        assert len(list(iter_frames(fh))) == 3
    assert len(list(iter_frames([frame_of("01081")[:5], frame_of("01081")[5:]]))) == 1
    with pytest.raises(ValueError, match="no such file"):
        list(iter_frames(tmp_path / "missing.wits"))
    with path.open("r") as text_fh, pytest.raises(ValueError, match="binary mode"):
        list(iter_frames(text_fh))  # type: ignore[arg-type]
