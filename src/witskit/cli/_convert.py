"""``witskit convert`` without pint's start-up: the generated table of the dashboard first.

pint takes about half a second to import and build its registry, longer than the rest of the
command. The dashboard already ships every conversion between a dictionary unit and its
counterpart in the other system (``service/static/units.json``, generated from pint by
``python -m witskit.service.dashboard units`` and checked in CI). Those pairs, the ones people
convert, are answered from it; any other pair goes to :func:`witskit.units.convert` (pint). A test
checks that the table agrees with pint.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

__all__ = ["TABLE", "table_convert"]

#: The generated table (the package's data file; read without importing the service).
TABLE = Path(__file__).resolve().parents[1] / "service" / "static" / "units.json"


@cache
def _factors() -> dict[str, tuple[float, float]]:
    try:
        data = json.loads(TABLE.read_text(encoding="utf-8"))
        return {pair: (float(scale), float(offset)) for pair, (scale, offset) in data["factors"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no table (a trimmed install): pint answers everything


def table_convert(value: float, from_unit: str, to_unit: str) -> float | None:
    """``value`` converted with the generated table, or None when the pair is not in it."""
    from witskit.units import canonical_unit

    src, dst = canonical_unit(from_unit), canonical_unit(to_unit)
    if src is None or dst is None:
        return None  # unknown: let witskit.units say why
    if src == dst:
        return value
    factor = _factors().get(f"{src}>{dst}")
    if factor is None:
        return None
    scale, offset = factor
    return value * scale + offset
