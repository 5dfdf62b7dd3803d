"""The WITS Level 0 data dictionary: records 1-25, 1031 items, plus user overlays.

The tables ship as package data (``data/symbols.csv`` and ``data/records.csv``; ``data/PROVENANCE.md``
says where every fact comes from). They are read on first use, not at import, so ``import witskit``
stays fast.

A :class:`SymbolTable` maps a 4-digit code ``RRII`` (record, item) to a :class:`WITSSymbol`.
``WITS_SYMBOLS`` is the process-wide default table. Rigs send codes the spec does not define (vendor
records such as 63, spares renamed on site); :func:`load_overlay` adds or overrides codes from a CSV
with the same columns as ``symbols.csv``.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from witskit.errors import SymbolError

__all__ = [
    "WITS_SYMBOLS",
    "SymbolTable",
    "WITSDataType",
    "WITSSymbol",
    "get_record_description",
    "get_record_types",
    "get_symbol_by_code",
    "get_symbols_by_record_type",
    "load_overlay",
    "search_symbols",
]

#: The columns a symbols CSV (the shipped one or an overlay) must have.
CSV_COLUMNS = (
    "code",
    "record",
    "item",
    "mnemonic",
    "long_mnemonic",
    "description",
    "type",
    "length",
    "metric_unit",
    "fps_unit",
)

UNITLESS = "----"


class WITSDataType(StrEnum):
    """The four WITS item types."""

    ASCII = "A"
    FLOAT = "F"
    SHORT = "S"
    LONG = "L"

    @property
    def is_numeric(self) -> bool:
        """True for F, S and L items."""
        return self is not WITSDataType.ASCII

    @property
    def is_integer(self) -> bool:
        """True for S and L items."""
        return self is WITSDataType.SHORT or self is WITSDataType.LONG


class WITSSymbol(NamedTuple):
    """One item of the WITS dictionary.

    ``name`` is the short mnemonic (``DBTM``), ``long_name`` the long mnemonic (``DEPTBITM``).
    Units are the dictionary's strings (``M``, ``F/HR``, ``KDN``...); ``----`` means unitless.
    """

    code: str
    name: str
    long_name: str
    description: str
    data_type: WITSDataType
    length: int
    metric_units: str
    fps_units: str
    record_type: int
    item_number: int

    def unit(self, metric: bool) -> str:
        """The unit label of this item in the metric or the FPS system."""
        return self.metric_units if metric else self.fps_units

    @property
    def is_header(self) -> bool:
        """Items 01-07 of every record are the same header (WID ... ACTC)."""
        return self.item_number <= 7


def _parse_code(code: str, *, where: str) -> tuple[int, int]:
    if len(code) != 4 or not code.isdigit():
        raise SymbolError(f"{where}: code {code!r} is not 4 digits RRII")
    return int(code[:2]), int(code[2:])


class SymbolTable(Mapping[str, WITSSymbol]):
    """An immutable-looking mapping code -> :class:`WITSSymbol`, with record names.

    Tables are cheap to derive: :meth:`with_overlay` returns a new table and leaves this one alone.
    """

    def __init__(self, symbols: Iterable[WITSSymbol], records: Mapping[int, tuple[str, str]]) -> None:
        self._by_code: dict[str, WITSSymbol] = {s.code: s for s in symbols}
        self._records: dict[int, tuple[str, str]] = dict(records)
        self._by_record: dict[int, list[WITSSymbol]] | None = None
        self._search_index: list[tuple[WITSSymbol, frozenset[str], str]] | None = None

    # Mapping protocol -------------------------------------------------------------------------
    def __getitem__(self, code: str) -> WITSSymbol:
        return self._by_code[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_code)

    def __len__(self) -> int:
        return len(self._by_code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __repr__(self) -> str:
        return f"<SymbolTable {len(self._by_code)} codes, {len(self._records)} records>"

    # Loading ----------------------------------------------------------------------------------
    @classmethod
    def from_csv(cls, symbols_csv: str, records_csv: str = "", *, origin: str = "symbols.csv") -> SymbolTable:
        """Build a table from the text of a symbols CSV (and optionally a records CSV)."""
        return cls(_read_symbols(symbols_csv, origin), _read_records(records_csv, origin))

    def with_overlay(self, overlay_csv: str, *, origin: str = "overlay") -> SymbolTable:
        """A new table: this one plus the codes of ``overlay_csv`` (same columns), which win."""
        merged = dict(self._by_code)
        for sym in _read_symbols(overlay_csv, origin):
            merged[sym.code] = sym
        records = dict(self._records)
        for sym in merged.values():
            records.setdefault(sym.record_type, (f"Record {sym.record_type}", ""))
        return SymbolTable(merged.values(), records)

    # Queries ----------------------------------------------------------------------------------
    def get(self, code: str, default: WITSSymbol | None = None) -> WITSSymbol | None:  # type: ignore[override]
        """The symbol for ``code``, or ``default``."""
        return self._by_code.get(code, default)

    def by_record(self, record: int) -> list[WITSSymbol]:
        """The items of one record, in item order (empty for an unknown record)."""
        if self._by_record is None:
            grouped: dict[int, list[WITSSymbol]] = {}
            for sym in self._by_code.values():
                grouped.setdefault(sym.record_type, []).append(sym)
            for items in grouped.values():
                items.sort(key=lambda s: s.item_number)
            self._by_record = grouped
        return list(self._by_record.get(record, ()))

    def record_types(self) -> dict[int, str]:
        """Record number -> record name, for every record in the table."""
        return {rec: name for rec, (name, _) in sorted(self._records.items())}

    def record_description(self, record: int) -> str:
        """The name of a record, and when it is sent if the spec says (``""`` if unknown)."""
        name, trigger = self._records.get(record, ("", ""))
        return f"{name}: {trigger}" if name and trigger else name

    def by_mnemonic(self, mnemonic: str, record: int | None = None) -> list[WITSSymbol]:
        """Every item with this short or long mnemonic (case-insensitive), lowest code first."""
        wanted = mnemonic.upper()
        return [
            s
            for s in self._by_code.values()
            if (s.name.upper() == wanted or s.long_name.upper() == wanted)
            and (record is None or s.record_type == record)
        ]

    def search(self, text: str, record: int | None = None) -> list[WITSSymbol]:
        """Items whose code, mnemonics or description match every word of ``text``.

        Matching is case-insensitive and forgiving of the spec's abbreviations: a query word matches
        a word of the item when either is a prefix of the other (``resistivity`` finds ``Resis``,
        ``dep`` finds ``Depth``), or through a short list of abbreviations that are not prefixes
        (``average`` finds ``avg``). Exact code and mnemonic matches come first.
        """
        words = _words(text)
        if not words:
            return []
        if len(words) > 1:
            # "hook load" should find "Hookload": also try each pair of neighbouring words joined.
            joined = [a + b for a, b in pairwise(words)]
        else:
            joined = []
        if self._search_index is None:
            self._search_index = [
                (s, frozenset(_words(f"{s.name} {s.long_name} {s.description}")), s.name.lower())
                for s in sorted(self._by_code.values(), key=lambda s: s.code)
            ]
        query = text.strip().lower()
        scored: list[tuple[int, str, WITSSymbol]] = []
        for sym, tokens, mnemonic in self._search_index:
            if record is not None and sym.record_type != record:
                continue
            if query in (sym.code, mnemonic, sym.long_name.lower()):
                scored.append((0, sym.code, sym))
            elif all(any(_word_matches(w, t) for t in tokens) for w in words) or any(
                all(any(_word_matches(w, t) for t in tokens) for w in _replace_pair(words, i, j))
                for i, j in enumerate(joined)
            ):
                rank = 1 if any(mnemonic.startswith(w) for w in words) else 2
                scored.append((rank, sym.code, sym))
        scored.sort(key=lambda item: (item[0], item[1]))
        return [sym for _, _, sym in scored]


# Abbreviations used by the spec that are not prefixes of the word they stand for (both ways).
_ABBREVIATIONS: dict[str, frozenset[str]] = {
    "average": frozenset({"avg"}),
    "maximum": frozenset({"max", "mx"}),
    "minimum": frozenset({"min", "mn"}),
    "torque": frozenset({"tq", "torq"}),
    "hookload": frozenset({"hkl", "hkld"}),
    "weight": frozenset({"wt", "wob"}),
    "measured": frozenset({"meas", "md"}),
    "vertical": frozenset({"vert", "tvd"}),
    "instantaneous": frozenset({"inst"}),
    "cumulative": frozenset({"cum"}),
    "annulus": frozenset({"ann"}),
    "annular": frozenset({"ann"}),
    "temperature": frozenset({"temp"}),
    "pressure": frozenset({"press", "prs"}),
    "standpipe": frozenset({"spp"}),
    "connection": frozenset({"conn", "connections"}),
    "number": frozenset({"no", "num"}),
    "identifier": frozenset({"id"}),
    "sequence": frozenset({"seq"}),
    "gamma": frozenset({"gr"}),
    "penetration": frozenset({"rop"}),
    "volume": frozenset({"vol"}),
    "surface": frozenset({"surf"}),
    "downhole": frozenset({"dh"}),
    "direction": frozenset({"dir"}),
    "formation": frozenset({"fm", "fmn"}),
    "hydraulics": frozenset({"hyd"}),
}
_ABBREV_PAIRS: frozenset[tuple[str, str]] = frozenset(
    pair for word, abbrs in _ABBREVIATIONS.items() for a in abbrs for pair in ((word, a), (a, word))
)
_WORD_RE = re.compile(r"[a-z0-9]+")


def _replace_pair(words: list[str], i: int, joined: str) -> list[str]:
    return [*words[:i], joined, *words[i + 2 :]]


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _word_matches(query: str, token: str) -> bool:
    if token.startswith(query):
        return True
    # The item's word is an abbreviation of the query's word ("resis" for "resistivity"); require
    # three letters so that "a" or "in" do not match everything.
    if len(token) >= 3 and query.startswith(token):
        return True
    return (query, token) in _ABBREV_PAIRS


_TYPES = {t.value: t for t in WITSDataType}


def _read_symbols(text: str, origin: str) -> list[WITSSymbol]:
    import csv

    rows = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(rows, [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise SymbolError(
            f"{origin}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}"
        )
    pick = [header.index(c) for c in CSV_COLUMNS]
    width = max(pick) + 1
    out: list[WITSSymbol] = []
    for line_no, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"{origin}, line {line_no}"
        if len(row) < width:
            raise SymbolError(f"{where}: {len(row)} columns, expected {len(header)}")
        code, record, item, name, long_name, description, kind, length, metric, fps = (
            row[i].strip() for i in pick
        )
        code = code.zfill(4)
        rec, itm = _parse_code(code, where=where)
        data_type = _TYPES.get(kind.upper())
        if data_type is None:
            raise SymbolError(f"{where}: type {kind!r} is not one of A, F, S, L")
        try:
            declared = (int(record), int(item))
            size = int(length or 0)
        except ValueError:
            raise SymbolError(f"{where}: record, item and length must be whole numbers") from None
        if declared != (rec, itm):
            raise SymbolError(f"{where}: code {code} disagrees with record {declared[0]} item {declared[1]}")
        if not name:
            raise SymbolError(f"{where}: mnemonic is empty")
        out.append(
            WITSSymbol(
                code,
                name,
                long_name or name,
                description,
                data_type,
                size,
                metric or UNITLESS,
                fps or UNITLESS,
                rec,
                itm,
            )
        )
    return out


def _read_records(text: str, origin: str) -> dict[int, tuple[str, str]]:
    if not text:
        return {}
    import csv

    records: dict[int, tuple[str, str]] = {}
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        try:
            records[int(row["record"])] = (
                (row.get("name") or "").strip(),
                (row.get("trigger") or "").strip(),
            )
        except (KeyError, ValueError):
            raise SymbolError(f"{origin}, line {reader.line_num}: bad record row {row!r}") from None
    return records


def _load_default() -> SymbolTable:
    # Plain file access: importlib.resources costs more import time than the whole parser.
    data = Path(__file__).with_name("data")
    symbols_csv = (data / "symbols.csv").read_text(encoding="utf-8")
    records_csv = (data / "records.csv").read_text(encoding="utf-8")
    return SymbolTable.from_csv(symbols_csv, records_csv, origin="witskit/symbols/data/symbols.csv")


class _DefaultTable(Mapping[str, WITSSymbol]):
    """The process-wide table, read from package data on first use and replaceable by overlays."""

    def __init__(self) -> None:
        self._table: SymbolTable | None = None
        self._lock = threading.Lock()

    @property
    def table(self) -> SymbolTable:
        table = self._table
        if table is None:
            with self._lock:
                if self._table is None:
                    self._table = _load_default()
                table = self._table
        return table

    def replace(self, table: SymbolTable) -> None:
        self._table = table

    def __getitem__(self, code: str) -> WITSSymbol:
        return self.table[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, code: object) -> bool:
        return code in self.table

    def __repr__(self) -> str:
        return repr(self.table)


#: The default dictionary, code -> :class:`WITSSymbol`. Read from package data on first access.
WITS_SYMBOLS: Mapping[str, WITSSymbol] = _DefaultTable()


def default_table() -> SymbolTable:
    """The process-wide :class:`SymbolTable` (with any overlays loaded by :func:`load_overlay`)."""
    assert isinstance(WITS_SYMBOLS, _DefaultTable)
    return WITS_SYMBOLS.table


def load_overlay(path: str | Path) -> SymbolTable:
    """Add or override codes in the process-wide dictionary from a CSV with the shipped columns.

    Returns the new table. Raises :class:`~witskit.errors.SymbolError` naming the file and line of
    the first bad row; on error the dictionary is unchanged.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SymbolError(f"cannot read overlay {p}: {exc.strerror or exc}") from exc
    table = default_table().with_overlay(text, origin=str(p))
    assert isinstance(WITS_SYMBOLS, _DefaultTable)
    WITS_SYMBOLS.replace(table)
    return table


def reset_symbols() -> None:
    """Forget overlays: the process-wide dictionary goes back to the shipped tables."""
    assert isinstance(WITS_SYMBOLS, _DefaultTable)
    WITS_SYMBOLS.replace(_load_default())


def get_symbol_by_code(code: str) -> WITSSymbol | None:
    """The item with this 4-digit code, or ``None``."""
    return default_table().get(code)


def get_symbols_by_record_type(record: int) -> list[WITSSymbol]:
    """Every item of one record, in item order."""
    return default_table().by_record(int(record))


def get_record_types() -> dict[int, str]:
    """Record number -> record name."""
    return default_table().record_types()


def get_record_description(record: int) -> str:
    """The record's name and, where the spec gives it, when it is sent."""
    return default_table().record_description(int(record))


def search_symbols(text: str, record: int | None = None) -> list[WITSSymbol]:
    """Search the dictionary; see :meth:`SymbolTable.search`."""
    return default_table().search(text, record)
