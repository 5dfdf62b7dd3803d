"""Encoding: (code, value) pairs -> WITS Level 0 frame bytes, and handshake/request packets.

Values are written by their item's type: F as the shortest text that reads back to the same float
(never in exponent notation, which some EDR software cannot read), S and L as integers, A as text.
``None`` is written as the null sentinel. Whatever the encoder writes, the decoder reads back to the
same values; anything that could not survive that trip raises :class:`~witskit.errors.EncodeError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from witskit.errors import EncodeError
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.symbols import SymbolTable, WITSDataType, default_table

__all__ = ["LINE_ENDINGS", "LineEnding", "encode_frame", "format_value", "handshake_packet", "request_packet"]

LineEnding = Literal["crlf", "lf", "cr"]

#: The three line endings real feeds use.
LINE_ENDINGS: dict[str, bytes] = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}


def _line_ending(line_ending: str | bytes) -> bytes:
    if isinstance(line_ending, bytes):
        if line_ending not in LINE_ENDINGS.values():
            raise EncodeError(f"line ending {line_ending!r} is not CRLF, LF or CR")
        return line_ending
    try:
        return LINE_ENDINGS[line_ending.lower()]
    except KeyError:
        if line_ending in ("\r\n", "\n", "\r"):
            return line_ending.encode("ascii")
        raise EncodeError(f"line ending {line_ending!r} is not one of crlf, lf, cr") from None


def _float_text(value: float) -> str:
    text = repr(value)
    if "e" in text or "E" in text:
        # Same digits as repr (so it reads back exactly), written positionally.
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def format_value(code: str, value: object, *, symbols: SymbolTable | None = None, null: str = "-9999") -> str:
    """The text of one value as its item's type requires (``null`` for ``None``)."""
    if len(code) != 4 or not (code.isascii() and code.isdigit()):
        raise EncodeError(f"code {code!r} is not 4 digits RRII")
    if value is None:
        return null
    sym = (symbols or default_table()).get(code)
    kind = sym.data_type if sym is not None else None
    if kind is WITSDataType.ASCII or (kind is None and isinstance(value, str)):
        text = str(value)
        if text != text.strip():
            raise EncodeError(f"{code}: text {text!r} has leading or trailing whitespace, which WITS drops")
        if not text.isascii() or not text.isprintable():
            raise EncodeError(f"{code}: text {text!r} must be printable ASCII")
        if "&&" in text or "!!" in text:
            raise EncodeError(f"{code}: text {text!r} contains '&&' or '!!', which mark frames")
        return text
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(
            f"{code}: {value!r} is not a number (item type {kind.value if kind else 'unknown'})"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise EncodeError(f"{code}: {value!r} is not a finite number")
    if kind is not None and kind.is_integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise EncodeError(f"{code}: {value!r} is not a whole number (item type {kind.value})")
            value = int(value)
        return str(value)
    if isinstance(value, int):
        return str(value)
    return _float_text(value)


def encode_frame(
    items: Iterable[tuple[str, object]],
    *,
    line_ending: str | bytes = "crlf",
    symbols: SymbolTable | None = None,
    null: str = "-9999",
) -> bytes:
    """A complete frame, ``&&`` to ``!!``, with one line per (code, value) pair."""
    eol = _line_ending(line_ending)
    table = symbols or default_table()
    parts = [b"&&"]
    for code, value in items:
        parts.append(
            code.encode("ascii", "replace") + format_value(code, value, symbols=table, null=null).encode()
        )
    if len(parts) == 1:
        raise EncodeError("a frame needs at least one (code, value) pair")
    parts.append(b"!!")
    return eol.join(parts) + eol


def handshake_packet(code: str = "0111", value: str = "-9999", *, line_ending: str | bytes = "crlf") -> bytes:
    """The keep-alive packet Pason-style EDRs expect every 30 s (default ``&&/0111-9999/!!``)."""
    eol = _line_ending(line_ending)
    if code == "0111" and value == "-9999" and eol == b"\r\n":
        return DEFAULT_HANDSHAKE
    if len(code) != 4 or not (code.isascii() and code.isdigit()):
        raise EncodeError(f"handshake code {code!r} is not 4 digits RRII")
    if not value.isascii() or not value.isprintable() or "&&" in value or "!!" in value:
        raise EncodeError(f"handshake value {value!r} must be printable ASCII without '&&' or '!!'")
    return b"&&" + eol + code.encode() + value.encode() + eol + b"!!" + eol


def request_packet(
    records: Iterable[int] = (1,), *, value: str = "-9999", line_ending: str | bytes = "crlf"
) -> bytes:
    """A request for send-and-receive EDRs: one null item 01 of each wanted record.

    The EDR answers a valid packet with its current data; naming the records documents what the
    client wants and is ignored by EDRs that always send everything.
    """
    pairs = [(f"{int(r):02d}01", value) for r in records]
    for code, _ in pairs:
        if len(code) != 4:
            raise EncodeError(f"record number in {code!r} must be 1-99")
    return encode_frame(pairs, line_ending=line_ending)
