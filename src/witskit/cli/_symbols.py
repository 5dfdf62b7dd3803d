"""``witskit symbols``: look things up in the WITS dictionary."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

from witskit.errors import UsageError
from witskit.symbols import (
    WITS_SYMBOLS,
    WITSSymbol,
    get_record_description,
    get_record_types,
    get_symbols_by_record_type,
    search_symbols,
)

__all__ = ["ListFormat", "find_symbols", "print_records", "print_symbols", "symbol_record"]


class ListFormat(StrEnum):
    """How ``symbols`` prints."""

    table = "table"
    json = "json"


def symbol_record(sym: WITSSymbol) -> dict[str, Any]:
    """A symbol as JSON, with the same names as the dictionary's CSV columns."""
    return {
        "code": sym.code,
        "record": sym.record_type,
        "item": sym.item_number,
        "mnemonic": sym.name,
        "long_mnemonic": sym.long_name,
        "description": sym.description,
        "type": sym.data_type.value,
        "length": sym.length,
        "metric_unit": sym.metric_units,
        "fps_unit": sym.fps_units,
    }


def find_symbols(search: str | None, record: int | None) -> list[WITSSymbol]:
    """The symbols matching ``search`` (all of them without one), within ``record`` if given."""
    if record is not None and record not in get_record_types():
        known = sorted(get_record_types())
        raise UsageError(f"record {record} is not in the dictionary (records {known[0]}-{known[-1]})")
    if search is not None:
        return search_symbols(search, record)
    if record is not None:
        return get_symbols_by_record_type(record)
    return sorted(WITS_SYMBOLS.values(), key=lambda s: s.code)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_symbols(symbols: list[WITSSymbol], fmt: ListFormat, title: str) -> None:
    """Print symbols as a rich table or a JSON array on stdout."""
    if fmt is ListFormat.json:
        _print_json([symbol_record(s) for s in symbols])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("Code", "Mnemonic", "Long", "Description", "Type", "Metric", "FPS"):
        table.add_column(name, no_wrap=name != "Description")
    for s in symbols:
        table.add_row(
            s.code, s.name, s.long_name, s.description, s.data_type.value, s.metric_units, s.fps_units
        )
    Console(markup=False, highlight=False, emoji=False).print(table)


def print_records(fmt: ListFormat) -> None:
    """Print the record types (number, name, item count, when sent)."""
    rows = []
    for number, name in get_record_types().items():
        description = get_record_description(number)
        when = description[len(name) + 2 :] if description.startswith(f"{name}: ") else ""
        rows.append(
            {
                "record": number,
                "name": name,
                "items": len(get_symbols_by_record_type(number)),
                "when_sent": when,
            }
        )
    if fmt is ListFormat.json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="WITS record types", title_justify="left")
    table.add_column("Record", justify="right", no_wrap=True)
    table.add_column("Name")
    table.add_column("Items", justify="right", no_wrap=True)
    table.add_column("When sent")
    for row in rows:
        table.add_row(str(row["record"]), str(row["name"]), str(row["items"]), str(row["when_sent"]))
    Console(markup=False, highlight=False, emoji=False).print(table)
