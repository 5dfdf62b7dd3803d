"""Stored points as CSV or JSON Lines text: the formatting loop of every export.

Exports (``GET /api/v1/data``, ``witskit query``) spend most of their time here, so the text is
built straight from :data:`~witskit.storage.query.RawPoint` tuples: no :class:`PointRow`, no
datetime and no dict per row. What rows share is formatted once: a frame's points share one
time (formatted once per frame), a source's name is quoted once, and a code's ``code,name`` part is
built once. The text is exactly what the ``csv`` and ``json`` modules write for the same values
(the tests compare them): CSV quotes a field only when it holds a comma, a quote or a line break;
JSON floats are ``repr`` (``NaN`` and ``Infinity`` as ``json.dumps`` writes them).

>>> fmt = PointText({1: "rig-7"})
>>> fmt.csv([(1, 1_767_247_200_000_000, "0108", 3650.5, None, 42, 3)])
'2026-01-01T06:00:00+00:00,rig-7,0108,DBTM,3650.5,,F\\n'
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from witskit.storage._base import RawPoint
from witskit.storage.query import integer_codes
from witskit.storage.schema import from_micros
from witskit.symbols import SymbolTable, default_table

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.protocol.decoder import DecodedFrame

__all__ = ["CSV_COLUMNS", "PointText", "csv_field", "csv_safe", "frame_csv_rows"]

#: The one CSV layout of WitsKit: ``witskit decode``/``stream --format csv``, ``witskit query``,
#: the API's CSV export and the ``csv://`` sink. One row per point: ``value`` holds a number
#: (empty for a null or a text reading), ``text`` the text of a reading that is not a number,
#: ``unit`` the item's unit label. Codes are 4-digit text: read with ``dtype={"code": str}``.
CSV_COLUMNS: Final = ("time", "source", "code", "mnemonic", "value", "text", "unit")

_CSV_SPECIAL: Final = frozenset(',"\r\n')
#: A cell a spreadsheet would run as a formula (OWASP "CSV injection"): ``=HYPERLINK(...)``.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CHARS: Final = frozenset("=+-@")
#: A plain decimal number, which no spreadsheet runs even with a sign (``float()`` reads more:
#: ``-inf``, ``+nan``, ``-1_000``, which a spreadsheet takes for formulas).
_PLAIN_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)
_json_string = json.encoder.encode_basestring_ascii  # as json.dumps: ensure_ascii


def csv_field(text: str) -> str:
    """``text`` as the csv module's minimal quoting writes it."""
    if _CSV_SPECIAL.isdisjoint(text):
        return text
    return '"' + text.replace('"', '""') + '"'


def csv_safe(text: str) -> str:
    """A text cell that no spreadsheet runs as a formula (OWASP "CSV injection").

    A cell starting with ``= + - @``, a tab or a carriage return gets a leading ``'``, unless it
    is a plain number (``-12.5``) or only dashes (the dictionary's ``----`` unit), which no
    spreadsheet runs. So does one whose first character after any white space or invisible
    characters (a spreadsheet may trim them on import) is one of those four or their full-width
    or small forms (``＝``: NFKC folds them). Text columns go through it (source, mnemonic, text,
    unit); numbers never do.
    """
    if not text or (text[0] < "\x7f" and text[0].isalnum()):
        return text  # the usual case, at once
    if text.startswith(_FORMULA_START):
        if not text.strip("-") or _PLAIN_NUMBER.match(text):
            return text
        return "'" + text
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        if unicodedata.normalize("NFKC", ch)[:1] in _FORMULA_CHARS:
            return "'" + text
        break
    return text


def frame_csv_rows(
    frame: DecodedFrame, labels: dict[str, tuple[str, str]] | None = None
) -> list[tuple[object, ...]]:
    """The :data:`CSV_COLUMNS` rows of one decoded frame, text cells made safe (for ``csv.writer``).

    ``labels`` caches each code's (mnemonic, unit) across the frames of one decoder.
    """
    stamp = frame.timestamp.isoformat()
    source = csv_safe(frame.source or "")
    cache = {} if labels is None else labels
    rows: list[tuple[object, ...]] = []
    add = rows.append
    for code, value in zip(frame.codes, frame.values, strict=True):
        label = cache.get(code)
        if label is None:
            label = cache[code] = (csv_safe(frame.symbol(code).name), csv_safe(frame.unit(code)))
        if value is None:
            add((stamp, source, code, label[0], "", "", label[1]))
        elif isinstance(value, str):
            add((stamp, source, code, label[0], "", csv_safe(value), label[1]))
        else:
            add((stamp, source, code, label[0], value, "", label[1]))
    return rows


def _json_float(num: float) -> str:
    return float.__repr__(num) if math.isfinite(num) else json.dumps(num)


class PointText:
    """Formats batches of raw points for one export (one instance per export: it caches).

    ``names`` maps source ids to names (:attr:`PointScan.names`). CSV columns are
    :data:`CSV_COLUMNS` (units of the FPS system, or metric with ``metric=True``), text cells made
    safe by :func:`csv_safe`. JSON Lines keys are ``time, source, code, name, value``, or
    ``source, time, ...`` with ``source_first`` (``witskit query``). An integer item's value is
    written as an int, as the decoder typed it; a null as an empty CSV field or JSON ``null``.
    """

    __slots__ = (
        "_codes_csv",
        "_codes_json",
        "_ints",
        "_metric",
        "_names",
        "_source_first",
        "_sources",
        "_table",
    )

    def __init__(
        self,
        names: dict[int, str],
        *,
        source_first: bool = False,
        table: SymbolTable | None = None,
        metric: bool = False,
    ) -> None:
        self._names = names
        self._source_first = source_first
        self._metric = metric
        self._table = table or default_table()
        self._ints = integer_codes(self._table)
        self._sources: dict[int, tuple[str, str]] = {}
        self._codes_csv: dict[str, tuple[str, str]] = {}
        self._codes_json: dict[str, str] = {}

    def _source(self, sid: int) -> tuple[str, str]:
        """(CSV field, JSON string) of a source's name."""
        out = self._sources.get(sid)
        if out is None:
            name = self._names.get(sid, f"#{sid}")
            out = self._sources[sid] = (csv_field(csv_safe(name)), _json_string(name))
        return out

    def _mnemonic(self, code: str) -> str:
        sym = self._table.get(code)
        return sym.name if sym is not None else f"U{code}"

    def _code_csv(self, code: str) -> tuple[str, str]:
        """The ``code,mnemonic,`` before a value and the ``,unit`` after its text."""
        sym = self._table.get(code)
        unit = sym.unit(self._metric) if sym is not None else ""
        part = self._codes_csv[code] = (
            f"{csv_field(code)},{csv_field(csv_safe(self._mnemonic(code)))},",
            f",{csv_field(csv_safe(unit))}",
        )
        return part

    def _code_json(self, code: str) -> str:
        name = self._mnemonic(code)
        part = self._codes_json[code] = f'"code":{_json_string(code)},"name":{_json_string(name)},"value":'
        return part

    def csv(self, rows: Sequence[RawPoint]) -> str:
        """:data:`CSV_COLUMNS` lines (each ending in a newline) for ``rows``."""
        ints = self._ints
        codes = self._codes_csv
        out: list[str] = []
        append = out.append
        last_us = last_sid = None
        head = ""
        for sid, us, code, num, txt, _key, _idx in rows:
            if us != last_us or sid != last_sid:  # once per frame
                last_us, last_sid = us, sid
                head = f"{from_micros(us).isoformat()},{self._source(sid)[0]},"
            before, after = codes.get(code) or self._code_csv(code)
            if txt is not None:
                append(f"{head}{before},{csv_field(csv_safe(txt))}{after}")
            elif num is None:
                append(f"{head}{before},{after}")
            elif code in ints and num.is_integer():
                append(f"{head}{before}{int.__repr__(int(num))},{after}")
            else:
                append(f"{head}{before}{float.__repr__(num)},{after}")
        append("")
        return "\n".join(out)

    def jsonl(self, rows: Sequence[RawPoint]) -> list[str]:
        """One compact JSON object per row (no newlines): join with ``"\\n"`` or ``","``."""
        ints = self._ints
        codes = self._codes_json
        source_first = self._source_first
        out: list[str] = []
        append = out.append
        last_us = last_sid = None
        head = ""
        for sid, us, code, num, txt, _key, _idx in rows:
            if us != last_us or sid != last_sid:
                last_us, last_sid = us, sid
                stamp = from_micros(us).isoformat()
                src = self._source(sid)[1]
                head = (
                    f'{{"source":{src},"time":"{stamp}",'
                    if source_first
                    else f'{{"time":"{stamp}","source":{src},'
                )
            part = codes.get(code) or self._code_json(code)
            if txt is not None:
                append(head + part + _json_string(txt) + "}")
            elif num is None:
                append(head + part + "null}")
            elif code in ints and num.is_integer():
                append(head + part + int.__repr__(int(num)) + "}")
            else:
                append(head + part + _json_float(num) + "}")
        return out
