"""Decoding: raw :class:`WITSFrame` -> :class:`DecodedFrame` with typed values.

Values are typed by their item: A -> ``str``, F -> ``float``, S and L -> ``int``. Every coded line
is kept as a point, whatever its value: real feeds send decimals in integer items (Pason ``0128``
``1.06``, decimal RPM) and text in numeric ones (a date-time in ``RR04``). A value that does not
fit its item's type is kept as the number it is when it parses (a ``float`` for an integer item),
otherwise as its text; the mismatch still leaves a message in ``DecodedFrame.errors`` naming the
line (and raises :class:`~witskit.errors.DecodeError`, a ``ValueError``, in strict mode). So do a
non-finite number (kept as text), an empty numeric value (kept as a null), an unknown code (kept,
with its number when the value parses) and a line without a 4-digit code (not a point) unless it is
a known vendor header line (:data:`~witskit.protocol.limits.DEFAULT_HEADER_LINES`,
:func:`register_header_line`), which is kept in ``DecodedFrame.headers`` without an error. Null
sentinels (-9999, -999.25, -8888 by default) decode to ``None``; the raw text is kept.

Text (A items, and values kept as text) is decoded as UTF-8; a value that is not valid UTF-8 is
read as Windows-1252, the code page of the Windows tools that write non-UTF-8 WITS files, and the
five bytes Windows-1252 leaves undefined as their Latin-1 characters (see :func:`text_value`).

The frame time comes from the record's DATE (``RR05``, YYMMDD) and TIME (``RR06``, HHMMSS) items
when both are present and valid, read in a configurable time zone (UTC by default); otherwise it is
the receive time. Every timestamp is timezone-aware UTC.

The fast path decodes a frame with one dictionary lookup and one conversion per line and builds
per-point objects (:class:`DecodedData`) only when asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from operator import call as _call
from operator import itemgetter
from typing import Any, NamedTuple

from witskit.errors import DecodeError, FrameError, UsageError
from witskit.protocol.limits import (
    DEFAULT_HEADER_LINES,
    DEFAULT_NULL_VALUES,
)
from witskit.protocol.parser import FrameParser, WITSFrame
from witskit.symbols import SymbolTable, WITSDataType, WITSSymbol, default_table

__all__ = [
    "DecodedData",
    "DecodedFrame",
    "Value",
    "WITSDecoder",
    "decode_file",
    "decode_frame",
    "known_header_lines",
    "register_header_line",
    "split_multiple_frames",
    "text_value",
    "unknown_symbol",
]

#: A decoded value: text for A items, float for F, int for S and L, None for a null.
Value = str | float | int | None


def text_value(raw: bytes) -> str:
    """The text of a value: UTF-8, or Windows-1252 when the bytes are not valid UTF-8.

    The five bytes Windows-1252 does not define (0x81, 0x8D, 0x8F, 0x90, 0x9D) read as their
    Latin-1 characters, so any bytes give text and nothing raises.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return "".join(raw[i : i + 1].decode("cp1252", "ignore") or chr(raw[i]) for i in range(len(raw)))


# Vendor header lines: lines without a 4-digit code that some feeds send inside every frame.
_header_lines: list[str] = list(DEFAULT_HEADER_LINES)


def _compile_headers(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise UsageError(f"a header line pattern must be a string, not {type(pattern).__name__}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(
                f"header line pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from None
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def register_header_line(pattern: str) -> None:
    """Recognise lines matching ``pattern`` (a regular expression, whole line, any case) as a
    vendor header line in every decoder created afterwards.

    A header line carries no 4-digit code; it is kept in ``DecodedFrame.headers`` (and stays in the
    raw frame) instead of being reported as an error in every frame. Raises
    :class:`~witskit.errors.UsageError` for a pattern that is not a valid regular expression.
    """
    _compile_headers([pattern])
    if pattern not in _header_lines:
        _header_lines.append(pattern)


def known_header_lines() -> tuple[str, ...]:
    """The header line patterns new decoders recognise (defaults plus :func:`register_header_line`)."""
    return tuple(_header_lines)


def unknown_symbol(code: str) -> WITSSymbol:
    """The stand-in symbol for a code the dictionary does not define (vendor records, spares)."""
    rec, item = (int(code[:2]), int(code[2:])) if code.isdigit() else (0, 0)
    return WITSSymbol(
        code=code,
        name=f"U{code}",
        long_name=f"U{code}",
        description=f"Unknown item {code} (not in the dictionary)",
        data_type=WITSDataType.FLOAT,
        length=0,
        metric_units="----",
        fps_units="----",
        record_type=rec,
        item_number=item,
    )


class DecodedData(NamedTuple):
    """One decoded data point, with its dictionary entry (witskit 0.1 compatible)."""

    symbol: WITSSymbol
    raw_value: str
    parsed_value: Value
    unit: str
    timestamp: datetime
    source: str | None = None

    @property
    def symbol_code(self) -> str:
        """The 4-digit code."""
        return self.symbol.code

    @property
    def symbol_name(self) -> str:
        """The short mnemonic."""
        return self.symbol.name

    @property
    def symbol_description(self) -> str:
        """The dictionary's description."""
        return self.symbol.description

    @property
    def is_null(self) -> bool:
        """True when the value was a null sentinel (or empty)."""
        return self.parsed_value is None


class DecodedFrame:
    """A decoded frame: parallel lists of codes and values, plus errors.

    ``codes[i]`` and ``values[i]`` are one point; ``data_points`` builds :class:`DecodedData`
    objects from them on first use. ``timestamp`` is the frame time (UTC). ``headers`` holds the
    vendor header lines of the frame (such as Pason's ``EDR PASON``), in order.
    """

    __slots__ = (
        "__dict__",
        "_line_index",
        "_metric",
        "_symbols",
        "codes",
        "errors",
        "frame",
        "headers",
        "timestamp",
        "values",
    )

    def __init__(
        self,
        frame: WITSFrame,
        codes: Sequence[str],
        values: list[Value],
        errors: list[str],
        timestamp: datetime,
        *,
        metric: bool = False,
        symbols: SymbolTable | None = None,
        line_index: list[int] | None = None,
        headers: tuple[str, ...] = (),
    ) -> None:
        self.frame = frame
        self.headers = headers
        self.codes = codes
        self.values = values
        self.errors = errors
        self.timestamp = timestamp
        self._metric = metric
        self._symbols = symbols
        self._line_index = line_index

    def __repr__(self) -> str:
        return (
            f"<DecodedFrame source={self.source!r} time={self.timestamp.isoformat()} "
            f"points={len(self.codes)} errors={len(self.errors)}>"
        )

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def source(self) -> str | None:
        """Where the frame came from."""
        return self.frame.source

    @property
    def received_at(self) -> datetime:
        """When the frame was received (UTC)."""
        return self.frame.timestamp

    @property
    def symbols(self) -> SymbolTable:
        """The dictionary the frame was decoded with."""
        return self._symbols if self._symbols is not None else default_table()

    def symbol(self, code: str) -> WITSSymbol:
        """The dictionary entry of a code in this frame (a stand-in for unknown codes)."""
        return self.symbols.get(code) or unknown_symbol(code)

    def unit(self, code: str) -> str:
        """The unit label of a code, in the frame's unit system."""
        return self.symbol(code).unit(self._metric)

    def raw_value(self, index: int) -> str:
        """The value text of point ``index`` exactly as received (stripped)."""
        line_no = self._line_index[index] if self._line_index is not None else index
        return text_value(self.frame.lines[line_no][4:].strip())

    def items(self) -> Iterator[tuple[str, Value]]:
        """(code, value) pairs in frame order."""
        return zip(self.codes, self.values, strict=True)

    @cached_property
    def data_points(self) -> list[DecodedData]:
        """One :class:`DecodedData` per point (built on first use)."""
        ts = self.timestamp
        src = self.source
        metric = self._metric
        out: list[DecodedData] = []
        for i, (code, value) in enumerate(zip(self.codes, self.values, strict=True)):
            sym = self.symbol(code)
            out.append(DecodedData(sym, self.raw_value(i), value, sym.unit(metric), ts, src))
        return out

    def get_value(self, code_or_mnemonic: str) -> DecodedData | None:
        """The first point with this code (``"0108"``) or mnemonic (``"DBTM"``), or ``None``."""
        key = code_or_mnemonic.strip()
        if key in self.codes:
            return self.data_points[self.codes.index(key)]
        upper = key.upper()
        for point in self.data_points:
            if point.symbol.name.upper() == upper or point.symbol.long_name.upper() == upper:
                return point
        return None

    def get_values_by_name(self, mnemonic: str) -> list[DecodedData]:
        """Every point whose short mnemonic is ``mnemonic``."""
        return [p for p in self.data_points if p.symbol_name == mnemonic]

    def to_dict(self) -> dict[str, Any]:
        """The witskit 0.1 dictionary: timestamp, source, data by code, errors."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "source": self.source,
            "data": {
                p.symbol_code: {
                    "name": p.symbol_name,
                    "description": p.symbol_description,
                    "value": p.parsed_value,
                    "raw_value": p.raw_value,
                    "unit": p.unit,
                }
                for p in self.data_points
            },
            "errors": list(self.errors),
        }

    def to_record(self) -> dict[str, Any]:
        """The JSON Lines record: source, timestamp, every point in order, errors (and ``headers``
        when the frame has vendor header lines)."""
        metric = self._metric
        points = []
        for i, (code, value) in enumerate(zip(self.codes, self.values, strict=True)):
            sym = self.symbol(code)
            points.append(
                {
                    "code": code,
                    "name": sym.name,
                    "value": value,
                    "raw": self.raw_value(i),
                    "unit": sym.unit(metric),
                }
            )
        record: dict[str, Any] = {
            "source": self.source,
            "timestamp": self.timestamp.isoformat(),
            "points": points,
            "errors": list(self.errors),
        }
        if self.headers:
            record["headers"] = list(self.headers)
        return record


def _text(raw: bytes) -> str:
    raw = raw.strip()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return text_value(raw)


def _nothing(values: list[Value]) -> tuple[Value, ...]:
    return ()


_HEAD = itemgetter(slice(0, 4))
_TAIL = itemgetter(slice(4, None))
#: Layouts remembered per decoder; a feed with more distinct layouts than this is not repeating and
#: is decoded on the careful path instead of growing the cache.
_MAX_PLANS = 256


class _Plan(NamedTuple):
    """How to decode one frame layout: its codes, a converter per line, the numeric positions.

    ``headers`` are the lines that are vendor header lines (usually none); ``points`` the lines
    that are points, when some are headers.
    """

    codes: tuple[str, ...]
    convs: tuple[Callable[[bytes], Value], ...]
    pick_numeric: Callable[[list[Value]], Sequence[Value]] | None
    date_time: tuple[int, int]
    headers: tuple[int, ...] = ()
    points: tuple[int, ...] = ()


_NO_PLAN = _Plan((), (), None, (-1, -1))


def _header_conv(head: bytes, matcher: re.Pattern[str]) -> Callable[[bytes], Value]:
    """A converter for a header line's position: its text, or ValueError (careful path) if the line
    there is not a header line after all (the plan's key holds only its first 4 bytes)."""

    def conv(tail: bytes) -> Value:
        text = text_value((head + tail).strip())
        if matcher.fullmatch(text) is None:
            raise ValueError(text)
        return text

    return conv


def _date_time_positions(codes: Sequence[str]) -> tuple[int, int]:
    """Where the DATE (RR05) and TIME (RR06) items of the frame's record are, or (-1, -1).

    The first record that has both wins; a Pason ``1984PASON/EDR`` line before the record (record
    19, item 84) is skipped over that way.
    """
    for i, code in enumerate(codes):
        if code[2:] == "05":
            try:
                return i, codes.index(code[:2] + "06")
            except ValueError:
                continue
    return -1, -1


def _resolve_tz(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if tz.upper() in ("UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"unknown time zone {tz!r} (use an IANA name such as 'America/Chicago')") from exc


class WITSDecoder:
    """Decodes frames against a dictionary.

    ``use_metric_units`` says which unit system the *rig* sends in (it labels the values; it does
    not convert them: use :mod:`witskit.units` for that). ``strict_mode`` raises
    :class:`~witskit.errors.DecodeError` (a ``ValueError``) at the first problem instead of
    recording it. ``null_values`` are the sentinels that mean "no reading"; ``timezone`` is the zone
    of the rig's DATE/TIME items. ``header_lines`` are the regular expressions of the vendor header
    lines to recognise (default: :func:`known_header_lines`).
    """

    def __init__(
        self,
        use_metric_units: bool = False,
        strict_mode: bool = False,
        *,
        symbols: SymbolTable | None = None,
        null_values: Iterable[float] = DEFAULT_NULL_VALUES,
        timezone: str | tzinfo = "UTC",
        use_frame_time: bool = True,
        header_lines: Iterable[str] | None = None,
    ) -> None:
        self.use_metric_units = use_metric_units
        self.strict_mode = strict_mode
        self._symbols = symbols
        self.null_values: frozenset[float] = frozenset(float(v) for v in null_values)
        self.tz = _resolve_tz(timezone)
        self.use_frame_time = use_frame_time
        #: The vendor header line patterns this decoder recognises (see :func:`register_header_line`).
        self.header_lines: tuple[str, ...] = tuple(
            known_header_lines() if header_lines is None else header_lines
        )
        self._headers = _compile_headers(self.header_lines)
        self._plans: dict[bytes, _Plan] = {}
        self._day_cache: dict[int, datetime | None] = {}

    @property
    def symbols(self) -> SymbolTable:
        """The dictionary in use (the process-wide one unless given)."""
        return self._symbols if self._symbols is not None else default_table()

    # Entry points -------------------------------------------------------------------------------
    def decode_frame(self, raw_frame: str | bytes | WITSFrame, source: str | None = None) -> DecodedFrame:
        """Decode one frame given as text, bytes or a :class:`WITSFrame` (witskit 0.1 API).

        Text that is not exactly one well-formed frame gives a DecodedFrame whose ``errors`` say
        why (strict mode raises instead).
        """
        if isinstance(raw_frame, WITSFrame):
            return self.decode(raw_frame)
        data = raw_frame.encode("latin-1", "replace") if isinstance(raw_frame, str) else bytes(raw_frame)
        parser = FrameParser(source=source)
        events = parser.feed(data) + parser.close()
        frames = [e for e in events if isinstance(e, WITSFrame)]
        problems = [e.message for e in events if isinstance(e, FrameError)]
        if self.strict_mode:
            for e in events:
                if isinstance(e, FrameError):
                    raise e
            if len(frames) != 1:
                raise DecodeError(f"expected one frame, found {len(frames)}")
        if not frames:
            empty = WITSFrame._trusted(data, (), source, datetime.now(UTC), 0, 1, 0)
            return DecodedFrame(
                empty,
                (),
                [],
                [f"Frame decoding failed: {p}" for p in problems]
                or ["Frame decoding failed: no frame found"],
                empty.timestamp,
                metric=self.use_metric_units,
                symbols=self._symbols,
            )
        decoded = self.decode(frames[0])
        if len(frames) > 1:
            problems.append(f"text holds {len(frames)} frames; only the first was decoded (use decode_file)")
        decoded.errors[:0] = problems
        return decoded

    def decode_multiple_frames(
        self, frame_data: Iterable[str | bytes | WITSFrame], source: str | None = None
    ) -> list[DecodedFrame]:
        """Decode several frames (witskit 0.1 API)."""
        return [self.decode_frame(f, source) for f in frame_data]

    def decode_many(self, events: Iterable[WITSFrame | FrameError]) -> Iterator[DecodedFrame | FrameError]:
        """Decode a parser's event stream, passing FrameErrors through in order."""
        decode = self.decode
        for event in events:
            yield decode(event) if isinstance(event, WITSFrame) else event

    def decode(self, frame: WITSFrame) -> DecodedFrame:
        """Decode a parsed frame (the hot path).

        A rig repeats the same few frame layouts (the same codes in the same order), so the plan for
        a layout (codes, one converter per line, where DATE and TIME are) is built once and each
        frame is converted with C-level ``map`` calls. Anything unusual (an unknown code, a value
        that does not convert, a non-finite number) sends the frame down the careful path, which
        reports each problem with its line.
        """
        lines = frame.lines
        key = b"".join(map(_HEAD, lines))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key, lines)
        if plan is _NO_PLAN:
            return self._decode_careful(frame)
        try:
            values: list[Value] = list(map(_call, plan.convs, map(_TAIL, lines)))
        except ValueError:
            return self._decode_careful(frame)
        headers: tuple[str, ...] = ()
        line_index: list[int] | None = None
        if plan.headers:
            headers = tuple(values[j] for j in plan.headers)  # type: ignore[misc]
            values = [values[j] for j in plan.points]
            line_index = list(plan.points)
        numbers = plan.pick_numeric(values) if plan.pick_numeric is not None else values
        total = sum(numbers)  # type: ignore[arg-type]
        if total - total:  # an inf or a nan somewhere (or a finite overflow): check line by line
            return self._decode_careful(frame)
        nulls = self.null_values
        if not nulls.isdisjoint(numbers):
            values = [None if v in nulls else v for v in values]  # text never equals a number
        errors: list[str] = []
        return DecodedFrame(
            frame,
            plan.codes,
            values,
            errors,
            self._frame_time(frame, plan.codes, values, errors, plan.date_time),
            metric=self.use_metric_units,
            symbols=self._symbols,
            line_index=line_index,
            headers=headers,
        )

    def _plan(self, key: bytes, lines: Sequence[bytes]) -> _Plan:
        symbols = self.symbols
        if len(key) != 4 * len(lines) or len(self._plans) > _MAX_PLANS:
            # A short line is in the frame (or layouts are not repeating): no plan, careful path.
            return _NO_PLAN
        codes: list[str] = []
        convs: list[Callable[[bytes], Value]] = []
        numeric: list[int] = []
        header_at: list[int] = []
        point_at: list[int] = []
        for i in range(len(lines)):
            head = key[4 * i : 4 * i + 4]
            if not head.isdigit():
                matcher = self._headers
                if matcher is None or matcher.fullmatch(text_value(lines[i].strip())) is None:
                    self._plans[key] = _NO_PLAN
                    return _NO_PLAN
                convs.append(_header_conv(head, matcher))
                header_at.append(i)
                continue
            code = head.decode("ascii")
            sym = symbols.get(code)
            if sym is None:
                self._plans[key] = _NO_PLAN
                return _NO_PLAN
            if sym.data_type is WITSDataType.ASCII:
                convs.append(_text)
            else:
                convs.append(int if sym.data_type.is_integer else float)
                numeric.append(len(codes))
            codes.append(code)
            point_at.append(i)
        if len(numeric) == len(codes):
            pick: Callable[[list[Value]], Sequence[Value]] | None = None
        elif not numeric:
            pick = _nothing
        elif len(numeric) == 1:
            only = numeric[0]
            pick = lambda values: (values[only],)  # noqa: E731
        else:
            pick = itemgetter(*numeric)
        plan = _Plan(
            tuple(codes),
            tuple(convs),
            pick,
            _date_time_positions(codes),
            tuple(header_at),
            tuple(point_at) if header_at else (),
        )
        self._plans[key] = plan
        return plan

    # The careful path: every problem gets a message naming its line -----------------------------
    def _decode_careful(self, frame: WITSFrame) -> DecodedFrame:
        symbols = self.symbols
        nulls = self.null_values
        codes: list[str] = []
        values: list[Value] = []
        errors: list[str] = []
        line_index: list[int] = []
        headers: list[str] = []
        matcher = self._headers

        def keep(i: int, code: str, value: Value) -> None:
            codes.append(code)
            values.append(value)
            line_index.append(i)

        def problem(i: int, text: str) -> None:
            msg = f"line {i + 1} of frame at line {frame.line} (byte {frame.offset}): {text}"
            if self.strict_mode:
                raise DecodeError(msg)
            errors.append(msg)

        for i, raw_line in enumerate(frame.lines):
            line = raw_line.strip()
            head = line[:4]
            if len(head) < 4 or not head.isdigit():
                text = text_value(line)
                if matcher is not None and matcher.fullmatch(text) is not None:
                    headers.append(text)  # a known vendor header line: kept, not an error
                    continue
                problem(i, f"{text[:40]!r} does not start with a 4-digit code")
                continue
            code = head.decode("ascii")
            raw = line[4:].strip()
            sym = symbols.get(code)
            if sym is None:
                problem(i, f"unknown code {code} (value {text_value(raw)[:40]!r}); kept with its raw value")
                value: Value
                try:
                    number = float(raw)
                    value = None if number in nulls else number if number - number == 0 else text_value(raw)
                except ValueError:
                    value = text_value(raw)
                keep(i, code, value)
                continue
            if sym.data_type is WITSDataType.ASCII:
                keep(i, code, text_value(raw))
                continue
            label = f"{code} {sym.name} ({sym.data_type.value})"
            if not raw:
                problem(i, f"empty value for numeric item {label}; kept as a null")
                keep(i, code, None)
                continue
            try:
                number = float(raw)
            except ValueError:
                text = text_value(raw)
                problem(i, f"{text[:40]!r} is not a number, for numeric item {label}; kept as text")
                keep(i, code, text)
                continue
            if number in nulls:
                keep(i, code, None)
                continue
            if number - number != 0:
                text = text_value(raw)
                problem(i, f"non-finite value {text[:40]!r} for {label}; kept as text")
                keep(i, code, text)
                continue
            if sym.data_type.is_integer:
                if not number.is_integer():
                    problem(
                        i,
                        f"non-integral value {text_value(raw)[:40]!r} for integer item {label}; "
                        "kept as a decimal number",
                    )
                    keep(i, code, number)
                    continue
                keep(i, code, int(number))
            else:
                keep(i, code, number)
        ts = self._frame_time(frame, codes, values, errors)
        return DecodedFrame(
            frame,
            tuple(codes),
            values,
            errors,
            ts,
            metric=self.use_metric_units,
            symbols=self._symbols,
            line_index=line_index if len(line_index) != len(frame.lines) else None,
            headers=tuple(headers),
        )

    # Frame time -------------------------------------------------------------------------------
    def _frame_time(
        self,
        frame: WITSFrame,
        codes: Sequence[str],
        values: Sequence[Value],
        errors: list[str],
        where: tuple[int, int] | None = None,
    ) -> datetime:
        """The frame time from DATE/TIME (``where`` = their positions, when a plan knows them)."""
        if not self.use_frame_time or not codes:
            return frame.timestamp
        if where is None:
            where = _date_time_positions(codes)
        di, ti = where
        if di < 0:
            return frame.timestamp
        d = values[di]
        t = values[ti]
        if type(d) is not int or type(t) is not int or d <= 0 or t < 0:
            return frame.timestamp
        cache = self._day_cache
        if d in cache:
            day = cache[d]
        else:
            if len(cache) > 4096:  # a long import spans years; keep the cache bounded
                cache.clear()
            day = cache[d] = self._day_start(d)
        hh, rest = divmod(t, 10000)
        mm, ss = divmod(rest, 100)
        if day is None or hh > 23 or mm > 59 or ss > 60:
            msg = (
                f"invalid DATE {d} / TIME {t} in record {codes[di][:2]} (frame at line {frame.line}); "
                "used the receive time"
            )
            if self.strict_mode:
                raise DecodeError(msg)
            errors.append(msg)
            return frame.timestamp
        if self.tz is UTC:
            return day + timedelta(0, hh * 3600 + mm * 60 + ss)
        local = day.replace(hour=hh, minute=mm, second=min(ss, 59))
        return local.astimezone(UTC)

    def _day_start(self, d: int) -> datetime | None:
        """Midnight of a YYMMDD (or YYYYMMDD) date: UTC, or naive-local with tzinfo for other zones."""
        if d >= 19000101:
            year, rest = divmod(d, 10000)
        else:
            yy, rest = divmod(d, 10000)
            year = 2000 + yy if yy < 70 else 1900 + yy  # the usual two-digit-year pivot
        month, dom = divmod(rest, 100)
        try:
            return datetime(year, month, dom, tzinfo=self.tz)
        except (ValueError, OverflowError):  # month 13, or a DATE too large for a C int
            return None


# Module-level helpers (witskit 0.1 API) ---------------------------------------------------------
def decode_frame(
    raw_frame: str | bytes,
    use_metric_units: bool = False,
    strict_mode: bool = False,
    source: str | None = None,
) -> DecodedFrame:
    """Decode one frame of text; see :meth:`WITSDecoder.decode_frame`."""
    return WITSDecoder(use_metric_units=use_metric_units, strict_mode=strict_mode).decode_frame(
        raw_frame, source
    )


def split_multiple_frames(data: str) -> list[str]:
    """Split text holding several frames into one string per frame (malformed parts are skipped)."""
    parser = FrameParser()
    events = parser.feed(data.encode("latin-1", "replace")) + parser.close()
    return [e.raw_data for e in events if isinstance(e, WITSFrame)]


def decode_file(
    file_data: str | bytes,
    use_metric_units: bool = False,
    strict_mode: bool = False,
    source: str | None = None,
) -> list[DecodedFrame]:
    """Decode every frame in a string (witskit 0.1 API; for large files use :func:`iter_decode`).

    Malformed stretches between frames are skipped here (strict mode raises at the first one);
    :func:`~witskit.protocol.iter_decode` reports them as events. Raises :class:`ValueError` when
    no frame is found.
    """
    data = file_data.encode("latin-1", "replace") if isinstance(file_data, str) else file_data
    decoder = WITSDecoder(use_metric_units=use_metric_units, strict_mode=strict_mode)
    parser = FrameParser(source=source)
    out: list[DecodedFrame] = []
    for event in parser.feed(data) + parser.close():
        if isinstance(event, FrameError):
            if strict_mode:
                raise event
            continue
        out.append(decoder.decode(event))
    if not out:
        raise DecodeError("no valid WITS frames found in data")
    return out
