"""Reading the store: result types, filters, and the rows-to-DataFrame step.

:meth:`Store.query <witskit.storage.store.Store.query>` streams :class:`PointRow` values in time
order through a server-side cursor, ``batch_size`` rows at a time. The synchronous conveniences
over a URL, :func:`~witskit.storage.sync.query_sync` and :func:`~witskit.storage.sync.to_dataframe`,
open a :class:`~witskit.storage.store.Store` and so live in :mod:`witskit.storage.sync`, above it.

Codes may be given as 4-digit codes or as mnemonics, mixed: ``codes=["0108", "ROPA", "DEPTBITM"]``.
A mnemonic stands for every item that has it (short or long form, any record), resolved through
the process-wide dictionary (:meth:`witskit.symbols.SymbolTable.by_mnemonic`).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Select, func, select

from witskit.errors import UsageError
from witskit.protocol.decoder import Value
from witskit.storage._base import RawPoint
from witskit.storage.schema import from_micros, point_keys, points
from witskit.symbols import SymbolTable, default_table

#: ``pandas.DataFrame`` (pandas is optional and untyped here, so the alias is ``Any``).
DataFrame = Any

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "PointRow",
    "PointScan",
    "RawPoint",
    "SourceInfo",
    "TimeBound",
    "resolve_codes",
]

#: Rows fetched per round trip: large enough to amortise it, small enough to keep memory flat.
DEFAULT_BATCH_SIZE: Final = 10_000

#: A time bound: a datetime (naive is taken as UTC) or an ISO 8601 string.
TimeBound = datetime | str | None


@dataclass(frozen=True, slots=True)
class PointRow:
    """One stored data point.

    ``value`` is typed as the decoder typed it: ``str`` for text (A) items, ``int`` for integer
    (S, L) items, ``float`` otherwise, ``None`` for a null reading. ``frame_key`` and ``idx`` locate
    the raw frame and the line in it that the value came from.
    """

    source: str
    time: datetime
    code: str
    value: Value
    frame_key: int
    idx: int

    @property
    def name(self) -> str:
        """The item's short mnemonic (``U1234`` for a code the dictionary does not know)."""
        sym = default_table().get(self.code)
        return sym.name if sym is not None else f"U{self.code}"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A source in the store: its name, time span and counts.

    The counts and times are maintained by every write in the same transaction, so they are exact
    and cost nothing to read (no scan of ``points``).
    """

    name: str
    created_at: datetime
    first_time: datetime | None
    last_time: datetime | None
    frame_count: int
    point_count: int


def resolve_codes(
    items: str | Iterable[str],
    symbols: SymbolTable | None = None,
    *,
    present: Collection[str] | None = None,
    on_ambiguous: Callable[[str], None] | None = None,
) -> list[str]:
    """4-digit codes for a mix of codes and mnemonics, in order, without repeats.

    A mnemonic can be qualified by its record (``01.DBTM`` is 0108, ``08.DBTM`` is 0810). A bare
    mnemonic that several records use (``DBTM``) stands for all of them, or, given the codes
    ``present`` in a store, for those of them it holds (all when it holds none). When that is
    more than one, ``on_ambiguous`` is told in one sentence naming each code and how to pick one. Raises
    :class:`~witskit.errors.UsageError` for a name that is neither, with suggestions.
    """
    table = symbols if symbols is not None else default_table()
    wanted = [items] if isinstance(items, str) else list(items)
    out: dict[str, None] = {}
    for item in wanted:
        if not isinstance(item, str):
            raise UsageError(f"codes must be strings, not {type(item).__name__}")
        key = item.strip()
        if len(key) == 4 and key.isascii() and key.isdigit():
            out[key] = None
            continue
        record: int | None = None
        name = key
        head, dot, tail = key.partition(".")
        if dot and head.isascii() and head.isdigit() and tail:
            record, name = int(head), tail
        found = table.by_mnemonic(name, record)
        if not found:
            near = [s.name for s in table.search(name)[:5]] if name else []
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            where = f" in record {record}" if record is not None else ""
            raise UsageError(f"{item!r} is neither a 4-digit code nor a known mnemonic{where}{hint}")
        if present is not None and record is None and len(found) > 1:
            found = [s for s in found if s.code in present] or found
        if len(found) > 1 and on_ambiguous is not None:
            which = ", ".join(f"{s.code} (record {int(s.code[:2])}: {s.description})" for s in found)
            picks = " or ".join(f"{s.code}" for s in found)
            qualified = " or ".join(f"{s.code[:2]}.{name.upper()}" for s in found)
            on_ambiguous(
                f"{key!r} matches {len(found)} channels: {which}; all are included. "
                f"Pick one by code ({picks}) or by record ({qualified})"
            )
        for sym in found:
            out[sym.code] = None
    return list(out)


def parse_time(bound: TimeBound, name: str) -> datetime | None:
    """A query bound as an aware UTC datetime."""
    if bound is None:
        return None
    if isinstance(bound, str):
        try:
            bound = datetime.fromisoformat(bound.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"{name}={bound!r} is not an ISO 8601 time") from None
    if not isinstance(bound, datetime):
        raise UsageError(f"{name} must be a datetime or an ISO string, not {type(bound).__name__}")
    return bound.replace(tzinfo=UTC) if bound.tzinfo is None else bound.astimezone(UTC)


def sources_filter(source: str | Iterable[str] | None) -> list[str] | None:
    """The source names asked for (None: all)."""
    if source is None:
        return None
    names = [source] if isinstance(source, str) else list(source)
    for n in names:
        if not isinstance(n, str):
            raise UsageError(f"source names must be strings, not {type(n).__name__}")
    return names


def distinct_codes(source_id: int, dialect: str = "") -> Select[tuple[str]]:
    """The codes stored for a source, by skipping through the points key (one probe per code).

    A recursive CTE that asks for the next code after the last one found: ~30 index probes for a
    typical source instead of a scan of its millions of points. On PostgreSQL through the view
    ``point_keys`` (the keys of rows and of hourly blocks, revision 0009).
    """
    p = point_keys if dialect == "postgresql" else points
    codes = (
        select(func.min(p.c.code).label("code"))
        .where(p.c.source_id == source_id)
        .cte("codes", recursive=True)
    )
    step = (
        select(p.c.code)
        .where(p.c.source_id == source_id, p.c.code > codes.c.code)
        .order_by(p.c.code)
        .limit(1)
        .scalar_subquery()
    )
    codes = codes.union_all(select(step.label("code")).where(codes.c.code.is_not(None)))
    return select(codes.c.code).where(codes.c.code.is_not(None))


class PointScan:
    """A running scan of stored points: batches of :data:`RawPoint` tuples in time order.

    ``names`` maps the source ids in the rows to source names. Iterate with ``async for batch in
    scan``; :meth:`aclose` (or ``contextlib.aclosing``) releases the connection early. Made by
    :meth:`Store.scan <witskit.storage.store.Store.scan>`: the fast path for exports, which
    format tuples directly instead of building a :class:`PointRow` and a datetime per row.
    """

    __slots__ = ("_batches", "names")

    def __init__(self, batches: AsyncGenerator[list[RawPoint], None], names: dict[int, str]) -> None:
        self._batches = batches
        self.names = names

    def __aiter__(self) -> AsyncGenerator[list[RawPoint], None]:
        return self._batches

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        await self._batches.aclose()


class RowMaker:
    """Turns raw points into :class:`PointRow`, restoring ints for integer items."""

    __slots__ = ("_ints", "_names")

    def __init__(self, names: dict[int, str]) -> None:
        self._names = names
        self._ints = integer_codes()

    def __call__(self, rows: Sequence[RawPoint]) -> list[PointRow]:
        """One batch of ``(source_id, time_us, code, value_num, value_text, frame_key, idx)``."""
        names = self._names
        ints = self._ints
        out: list[PointRow] = []
        append = out.append
        last_us: int | None = None
        time = from_micros(0)
        for sid, us, code, num, txt, key, idx in rows:
            if us != last_us:  # a frame's points share one time: one datetime per frame
                last_us = us
                time = from_micros(us)
            value: Value
            if txt is not None:
                value = txt
            elif num is None:
                value = None
            elif code in ints and float(num).is_integer():
                value = int(num)
            else:
                value = float(num)
            append(PointRow(names.get(sid, f"#{sid}"), time, code, value, key, idx))
        return out


def stored_value(code: str, num: float | None, txt: str | None, ints: frozenset[str]) -> Value:
    """A stored point's value as the decoder typed it (``ints``: :func:`integer_codes`)."""
    if txt is not None:
        return txt
    if num is None:
        return None
    if code in ints and float(num).is_integer():
        return int(num)
    return float(num)


def integer_codes(table: SymbolTable | None = None) -> frozenset[str]:
    """Codes of integer items (S, L): their stored doubles read back as ints."""
    return frozenset(code for code, sym in (table or default_table()).items() if sym.data_type.is_integer)


# pandas -----------------------------------------------------------------------------------------
async def frame_from_batches(batches: AsyncIterator[list[PointRow]], *, wide: bool) -> DataFrame:
    """A DataFrame from query batches (see :func:`to_dataframe` for the columns)."""
    pd = import_pandas()
    cols: dict[str, list[Any]] = {"time": [], "source": [], "code": [], "value": [], "text": []}
    async for batch in batches:
        for r in batch:
            cols["time"].append(r.time)
            cols["source"].append(r.source)
            cols["code"].append(r.code)
            v = r.value
            cols["value"].append(None if v is None or type(v) is str else float(v))
            cols["text"].append(v if type(v) is str else None)
    df = pd.DataFrame(
        {
            "time": pd.to_datetime(cols["time"], utc=True),
            "source": pd.Series(cols["source"], dtype="object"),
            "code": pd.Series(cols["code"], dtype="object"),
            "value": pd.Series(cols["value"], dtype="float64"),
            "text": pd.Series(cols["text"], dtype="object"),
        }
    )
    if not wide:
        return df
    return df.pivot_table(index=["source", "time"], columns="code", values="value", aggfunc="last")


def import_pandas() -> Any:
    try:
        # import_module: pandas is optional, and mypy must not need its stubs to check this file.
        return importlib.import_module("pandas")
    except ImportError:
        raise UsageError("to_dataframe needs pandas: pip install 'witskit[pandas]'") from None
