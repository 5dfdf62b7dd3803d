"""Stored points -> one log table: an index (time or depth) and a column per channel.

Every writer of this package (LAS 2.0, WITSML 1.4.1.1 and 2.0) writes a :class:`LogTable`, so the
rules below hold for each format alike.

Time index (:func:`time_table`): one row per distinct frame time, in time order; a column holds
the channel's reading at that time (the last one when several frames share the time) and None
where the channel had no reading then. Records arrive in separate frames, so rows are sparse.
With a step (seconds) the index is regular instead, as LAS readers want it: it starts at the first
reading's whole second, and the row at ``t`` holds each channel's last reading in ``(t - step, t]``.

Depth index (:func:`depth_table`): the readings are resampled on a regular depth step while the bit
is on bottom, the only time a reading belongs to the hole depth it is logged against:

* the bit depth and the hole depth are the latest readings of their items (``0108`` DBTM and
  ``0110`` DMEA by default) at or before each frame's time;
* the bit is *on bottom* when both are known and ``hole - bit <= tolerance`` (0.5 depth units by
  default: the WITS feeds round depths to 0.1 and a connection lifts the bit by metres);
* an on-bottom reading taken with the bit at depth ``d`` goes to the row ``ceil(d / step) * step``,
  so the row at depth ``D`` holds what was measured while the bit drilled ``(D - step, D]``;
* a row keeps the *last* such reading of each channel (the latest drilling of that interval);
* the rows run from the shallowest to the deepest row drilled, every step present (LAS needs a
  constant step), with None where nothing was read on bottom.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol

from witskit.errors import UsageError
from witskit.symbols import SymbolTable, WITSSymbol, default_table

__all__ = [
    "BIT_DEPTH",
    "HOLE_DEPTH",
    "MAX_VALUES",
    "ON_BOTTOM_TOLERANCE",
    "Channel",
    "IndexKind",
    "LogTable",
    "Point",
    "channels_for",
    "clean_text",
    "depth_table",
    "time_table",
]

#: The items a depth index is built from: record 1's bit depth (DBTM) and hole depth (DMEA).
BIT_DEPTH: Final = "0108"
HOLE_DEPTH: Final = "0110"
#: How far above hole depth the bit may be and still count as on bottom, in depth units: feeds
#: round depths to 0.1, while a connection or a reaming pass lifts the bit by metres.
ON_BOTTOM_TOLERANCE: Final = 0.5
#: The most values (rows x channels) one log holds. A log is built in memory (LAS and WITSML
#: headers give its extent before its data), at ~32 bytes a value in Python lists: 10 million is
#: ~320 MB, a day of 1 Hz data of 100 channels (8.6 million). A request for more is refused
#: before it is built, so one export (or one HTTP request) cannot exhaust the host.
MAX_VALUES: Final = 10_000_000

Number = float | None


class Point(Protocol):
    """A stored reading, as :class:`witskit.storage.PointRow` has it."""

    @property
    def time(self) -> datetime: ...
    @property
    def code(self) -> str: ...
    @property
    def value(self) -> str | int | float | None: ...


class IndexKind(StrEnum):
    """What a log is indexed by."""

    time = "time"
    depth = "depth"


@dataclass(frozen=True, slots=True)
class Channel:
    """One column: its WITS code, a mnemonic unique in the log, description and WITS unit."""

    code: str
    mnemonic: str
    description: str
    unit: str


@dataclass(frozen=True, slots=True)
class LogTable:
    """A log: ``index`` (datetimes or depths, increasing) and ``columns[i][row]`` per channel.

    ``index_unit`` is the WITS unit of a depth index (``M`` or ``F``) and ``SEC`` for time; ``step``
    the depth step, or the time step in seconds (None for a time log with a row per frame time:
    frames do not come at a constant rate); ``well`` the well name the feed sent in its WID item.
    """

    source: str
    kind: IndexKind
    index: Sequence[datetime] | Sequence[float]
    index_unit: str
    step: float | None
    channels: list[Channel]
    columns: list[list[Number]]
    well: str | None = None
    #: The time of the first reading in the log (for a depth log, the first on-bottom one).
    first_time: datetime | None = None

    @property
    def rows(self) -> int:
        """How many rows (index values) the log has."""
        return len(self.index)


def channels_for(codes: Iterable[str], *, metric: bool, symbols: SymbolTable | None = None) -> list[Channel]:
    """Numeric channels for 4-digit ``codes``, mnemonics made unique by record (``DBTM_08``).

    Raises :class:`~witskit.errors.UsageError` for a text (type A) item: logs hold numbers.
    """
    table = symbols if symbols is not None else default_table()
    found: list[WITSSymbol | str] = [table.get(code) or code for code in codes]
    names = [s.name if isinstance(s, WITSSymbol) else f"U{s}" for s in found]
    out = []
    for sym, name in zip(found, names, strict=True):
        if isinstance(sym, str):
            out.append(Channel(sym, name, f"WITS item {sym}", "----"))
            continue
        if not sym.data_type.is_numeric:
            raise UsageError(f"{sym.name} ({sym.code}, {sym.description}) is text; a log holds numbers only")
        unique = f"{name}_{sym.record_type:02d}" if names.count(name) > 1 else name
        out.append(Channel(sym.code, unique, sym.description, sym.unit(metric)))
    return out


def _number(value: str | int | float | None) -> Number:
    if value is None or isinstance(value, str):
        return None
    return float(value)


async def time_table(
    batches: AsyncIterable[Sequence[Point]],
    source: str,
    channels: list[Channel],
    *,
    step: float | None = None,
    well_code: str = "0101",
    max_values: int = MAX_VALUES,
) -> LogTable:
    """The readings of ``channels`` on a time index (see the module docstring).

    Without ``step`` a row per frame time; with it (seconds) a regular index from the first
    reading's whole second, the row at ``t`` holding each channel's last reading in ``(t - step, t]``.
    """
    if step is not None and (not math.isfinite(step) or step <= 0):
        raise UsageError(f"the time step must be a positive number of seconds, not {step}")
    col = {ch.code: i for i, ch in enumerate(channels)}
    keys: list[datetime | int] = []
    columns: list[list[Number]] = [[] for _ in channels]
    well: str | None = None
    origin: datetime | None = None
    first_time: datetime | None = None
    last_key: datetime | int | None = None
    async for batch in batches:
        for p in batch:
            if p.code == well_code:
                well = _well(p.value, well)
            i = col.get(p.code)
            if i is None:
                continue
            if origin is None:
                origin, first_time = p.time.replace(microsecond=0), p.time
            key: datetime | int = p.time
            if step is not None:
                key = math.ceil(round((p.time - origin).total_seconds() / step, 9))
            if key != last_key:
                last_key = key
                keys.append(key)
                _bound(len(keys), channels, max_values)
                for c in columns:
                    c.append(None)
            value = _number(p.value)
            if value is not None or columns[i][-1] is None:
                columns[i][-1] = value
    if step is None or origin is None:
        index = [k for k in keys if isinstance(k, datetime)]
        first = index[0] if index else None
        return LogTable(source, IndexKind.time, index, "SEC", None, channels, columns, well, first)
    ks = [k for k in keys if isinstance(k, int)]
    _bound(ks[-1] - ks[0] + 1, channels, max_values)
    position = {k: n for n, k in enumerate(ks)}
    full = range(ks[0], ks[-1] + 1)
    regular = [[c[position[k]] if k in position else None for k in full] for c in columns]
    index = [origin + timedelta(seconds=k * step) for k in full]
    return LogTable(source, IndexKind.time, index, "SEC", step, channels, regular, well, first_time)


def _bound(rows: int, channels: list[Channel], max_values: int) -> None:
    if rows * max(len(channels), 1) > max_values:
        raise UsageError(
            f"the log would hold more than {max_values:,} values ({len(channels)} channels): "
            "ask for a shorter range, fewer codes or a larger step"
        )


#: What a header value may not hold: control characters (a newline would end a LAS header line,
#: and XML 1.0 cannot carry most of them at all), lone surrogates and the two non-characters.
_UNFIT = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str, limit: int = 64) -> str:
    """``text`` fit for a LAS or XML header: unfit characters as spaces, spaces collapsed, at most
    ``limit`` characters (64: WITSML 1.4.1.1's uid and name strings)."""
    return " ".join(_UNFIT.sub(" ", text).split())[:limit]


def _well(value: str | int | float | None, current: str | None) -> str | None:
    text = clean_text(str(value)) if value is not None else ""
    return text or current


async def depth_table(
    batches: AsyncIterable[Sequence[Point]],
    source: str,
    channels: list[Channel],
    *,
    step: float,
    depth_unit: str,
    bit_code: str = BIT_DEPTH,
    hole_code: str = HOLE_DEPTH,
    tolerance: float = ON_BOTTOM_TOLERANCE,
    well_code: str = "0101",
    max_values: int = MAX_VALUES,
) -> LogTable:
    """The readings of ``channels`` resampled on depth while on bottom (see the module docstring).

    Raises :class:`~witskit.errors.UsageError` when the bit or hole depth never came, or the bit
    was never on bottom.
    """
    if not math.isfinite(step) or step <= 0:
        raise UsageError(f"the depth step must be a positive number, not {step}")
    col = {ch.code: i for i, ch in enumerate(channels)}
    bit: float | None = None
    hole: float | None = None
    seen_bit = seen_hole = False
    rows: dict[int, list[Number]] = {}
    span = [math.inf, -math.inf]  # the lowest and highest row drilled: the log's extent
    first_time: datetime | None = None
    well: str | None = None
    group: list[Point] = []
    group_time: datetime | None = None

    def flush() -> None:
        nonlocal bit, hole, seen_bit, seen_hole, first_time
        for p in group:  # depths first: a frame's readings are logged against its own depths
            if p.code == bit_code and (v := _number(p.value)) is not None:
                bit, seen_bit = v, True
            elif p.code == hole_code and (v := _number(p.value)) is not None:
                hole, seen_hole = v, True
        if bit is None or hole is None or hole - bit > tolerance:
            return
        k = math.ceil(round(bit / step, 9))
        if k not in rows:
            span[0], span[1] = min(span[0], k), max(span[1], k)
            _bound(int(span[1] - span[0]) + 1, channels, max_values)
        for p in group:
            i = col.get(p.code)
            if i is None or (v := _number(p.value)) is None:
                continue
            rows.setdefault(k, [None] * len(channels))[i] = v
            if first_time is None:
                first_time = p.time

    async for batch in batches:
        for p in batch:
            if p.code == well_code:
                well = _well(p.value, well)
            if p.time != group_time:
                flush()
                group, group_time = [], p.time
            group.append(p)
    flush()
    for seen, code in ((seen_bit, bit_code), (seen_hole, hole_code)):
        if not seen:
            sym = default_table().get(code)
            what = f"{sym.name} ({code}, {sym.description})" if sym else code
            raise UsageError(f"no {what} in {source} in this range: a depth index is built from it")
    if not rows:
        raise UsageError(
            f"the bit was never on bottom in {source} in this range (bit depth within {tolerance} "
            "of hole depth): there is nothing to log against depth"
        )
    first, last = min(rows), max(rows)
    index = [round(k * step, 6) for k in range(first, last + 1)]
    empty: list[Number] = [None] * len(channels)
    columns = [[rows.get(k, empty)[i] for k in range(first, last + 1)] for i in range(len(channels))]
    return LogTable(source, IndexKind.depth, index, depth_unit, step, channels, columns, well, first_time)
