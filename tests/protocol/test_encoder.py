"""Encoder: frames by item type, line endings, handshake packets; decode(encode(x)) == x."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from witskit.errors import EncodeError
from witskit.protocol import (
    FrameParser,
    WITSDecoder,
    WITSFrame,
    encode_frame,
    format_value,
    handshake_packet,
    request_packet,
)
from witskit.protocol.limits import DEFAULT_NULL_VALUES
from witskit.symbols import WITS_SYMBOLS, WITSDataType


def decode_bytes(data: bytes) -> tuple[tuple[str, ...], list[object]]:
    p = FrameParser()
    (frame,) = p.feed(data) + p.close()
    assert isinstance(frame, WITSFrame)
    df = WITSDecoder(use_frame_time=False).decode(frame)
    assert df.errors == []
    return tuple(df.codes), df.values


def test_values_are_formatted_by_type() -> None:
    data = encode_frame(
        [("0101", "RIG 7"), ("0108", 3650.4), ("0120", 120.0), ("0121", None), ("0113", 1e-05)]
    )
    assert data == b"&&\r\n0101RIG 7\r\n01083650.4\r\n0120120\r\n0121-9999\r\n01130.00001\r\n!!\r\n"


@pytest.mark.parametrize(("name", "eol"), [("crlf", b"\r\n"), ("lf", b"\n"), ("cr", b"\r")])
def test_line_endings(name: str, eol: bytes) -> None:
    assert encode_frame([("0108", 1.5)], line_ending=name) == b"&&" + eol + b"01081.5" + eol + b"!!" + eol


def test_handshake_and_request_packets() -> None:
    assert handshake_packet() == b"&&\r\n0111-9999\r\n!!\r\n"
    assert handshake_packet(line_ending="lf") == b"&&\n0111-9999\n!!\n"
    assert request_packet((1, 8)) == b"&&\r\n0101-9999\r\n0801-9999\r\n!!\r\n"


@pytest.mark.parametrize(
    ("code", "value", "message"),
    [
        ("108", 1.0, "not 4 digits"),
        ("0120", 1.5, "not a whole number"),
        ("0108", "abc", "not a number"),
        ("0108", float("inf"), "not a finite number"),
        ("0101", "A&&B", "mark frames"),
        ("0101", " padded", "whitespace"),
        ("0101", "tab\there", "printable ASCII"),
        ("0108", True, "not a number"),
    ],
)
def test_unencodable_values_are_refused(code: str, value: object, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        format_value(code, value)


def test_empty_frame_and_bad_line_ending_are_refused() -> None:
    with pytest.raises(EncodeError, match="at least one"):
        encode_frame([])
    with pytest.raises(EncodeError, match="line ending"):
        encode_frame([("0108", 1.0)], line_ending="crcr")


_KNOWN = sorted(WITS_SYMBOLS)
_NULLS = set(DEFAULT_NULL_VALUES)


@st.composite
def item(draw: st.DrawFn) -> tuple[str, object]:
    code = draw(st.sampled_from(_KNOWN))
    kind = WITS_SYMBOLS[code].data_type
    if kind is WITSDataType.ASCII:
        text = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30))
        value: object = text.strip().replace("&&", "&").replace("!!", "!") or "x"
    elif kind.is_integer:
        value = draw(st.integers(-(2**31), 2**31).filter(lambda v: v not in _NULLS))
    else:
        value = draw(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v not in _NULLS))
    if draw(st.booleans()) and kind is not WITSDataType.ASCII:
        value = None
    return code, value


@given(st.lists(item(), min_size=1, max_size=40), st.sampled_from(["crlf", "lf", "cr"]))
def test_decoding_what_the_encoder_wrote_gives_the_values_back(
    pairs: list[tuple[str, object]], eol: str
) -> None:
    codes, values = decode_bytes(encode_frame(pairs, line_ending=eol))
    assert codes == tuple(c for c, _ in pairs)
    assert values == [v for _, v in pairs]
    assert [type(v) for v in values] == [type(v) for _, v in pairs]
