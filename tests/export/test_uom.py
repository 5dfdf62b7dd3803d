"""Every unit of the WITS dictionary maps to a real Energistics symbol with the same size, or says why not.

The WITSML 1.4.1.1 symbols are checked against the unit dictionary that ships with that version
(``witsmlUnitDict.xml``, as komle-plus carries it): the symbol is there, and pint's factor from the
WITS unit to SI base units (the expression :mod:`witskit.units` converts with) equals the
dictionary's conversion to its base unit. The WITSML 2.0 symbols are checked against the unit
enumerations of the Energistics common 2.1 schema (energyml-common2-1), and where a 2.0 symbol
differs from the 1.4.1.1 one, against the respelling the Energistics UOM dictionary 1.0 made.
"""

from __future__ import annotations

import enum
import importlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from witskit import units
from witskit.export.uom import UNITS, UNMAPPED, las_unit, witsml_unit
from witskit.symbols import default_table

etree = pytest.importorskip("lxml.etree", reason="needs lxml: pip install 'witskit[witsml]'")
komle = pytest.importorskip("komle", reason="the 1.4.1.1 unit dictionary: pip install komle-plus")
commonv2 = pytest.importorskip("energyml.eml.v2_1.commonv2", reason="pip install energyml-witsml2-0")

POSC = "{http://www.posc.org/schemas}"
WITS_UNITS = sorted(
    {s.metric_units for s in default_table().values()} | {s.fps_units for s in default_table().values()}
)

#: 2.0 symbols that respell a 1.4.1.1 one (UOM dictionary 1.0: [US] qualifiers, spaced multipliers).
RESPELLED = {
    "1/32 in": "in/32",
    "1000 ft3": "1000ft3",
    "gal[US]/min": "galUS/min",
    "1000 m3/d": "1000m3/d",
    "1000 ft3/d": "1000ft3/d",
    "1000 ft/h": "kft/h",
    "inHg[32degF]": "inHg(32F)",
    "0.01 lbf/ft2": "lbf/100ft2",
    "1000 lbf.ft": "kft.lbf",
    "lbm/gal[US]": "lbm/galUS",
    ".01 meq/g": "meq/100g",
    "0.01 dega/ft": "dega/100ft",
    "s/qt[US]": "s/qtUS",
    "1/30 cm3/min": "cm3/30min",
}
#: pint names for WitsKit's own dimensions, as Energistics counts them: strokes are counts (SPM is
#: 1/min), angles are angles. Gamma-ray API units and milliequivalents have no SI size to compare.
_AS_SI = {"wits_degree": "degree", "wits_revolution": "revolution", "wits_stroke": "1"}
_NO_SI_SIZE = {"wits_gapi", "wits_meq", "wits_currency"}


@cache
def posc() -> dict[str, tuple[str | None, tuple[float, float, float, float] | None]]:
    """1.4.1.1 symbol -> (base unit, (A, B, C, D) of base = (A + B x) / (C + D x)); None for a base unit."""
    path = Path(komle.__file__).parent / "witsmlUnitDict.xml"
    out: dict[str, tuple[str | None, tuple[float, float, float, float] | None]] = {}
    for unit in etree.parse(str(path)).iter(f"{POSC}UnitOfMeasure"):
        conv = unit.find(f"{POSC}ConversionToBaseUnit")
        if conv is None:
            out[unit.get("annotation")] = (None, None)
            continue
        factor, fraction, formula = (conv.find(POSC + t) for t in ("Factor", "Fraction", "Formula"))
        if factor is not None:
            abcd = (0.0, float(factor.text), 1.0, 0.0)
        elif fraction is not None:
            num, den = (float(fraction.findtext(POSC + t)) for t in ("Numerator", "Denominator"))
            abcd = (0.0, num, den, 0.0)
        else:
            abcd = tuple(float(formula.findtext(POSC + t)) for t in "ABCD")  # type: ignore[assignment]
        out[unit.get("annotation")] = (conv.get("baseUnit"), abcd)
    return out


@cache
def uom_20() -> frozenset[str]:
    """Every symbol of the unit enumerations of Energistics common 2.1 (WITSML 2.0's)."""
    return frozenset(
        m.value
        for name in dir(commonv2)
        if name.endswith("Uom")
        and isinstance(cls := getattr(commonv2, name), type)
        and issubclass(cls, enum.Enum)
        for m in cls
    )


def _pint_si(wits: str) -> tuple[float, float] | None:
    """(offset, scale) of the WITS unit in SI base units by pint; None when it has no SI size."""
    expression = units._UNITS[units.canonical_unit(wits) or wits][0]
    if any(name in expression for name in _NO_SI_SIZE):
        return None
    for ours, theirs in _AS_SI.items():
        expression = expression.replace(ours, theirs)
    ureg = _pint()
    if not any(ch.isdigit() for ch in expression):  # offset units (degC) only convert this way
        zero = ureg.Quantity(0.0, expression or "dimensionless").to_base_units().magnitude
        one = ureg.Quantity(1.0, expression or "dimensionless").to_base_units().magnitude
        return zero, one - zero
    return 0.0, ureg.parse_expression(expression).to_base_units().magnitude


@cache
def _pint() -> Any:
    return importlib.import_module("pint").UnitRegistry()


def test_every_dictionary_unit_is_mapped_or_says_why_not() -> None:
    for wits in WITS_UNITS:
        symbols = UNITS.get(wits)
        if symbols is None or None in symbols:
            assert len(UNMAPPED.get(wits, "")) > 20, f"{wits}: map it in UNITS or give the reason in UNMAPPED"
    assert set(UNMAPPED) <= set(WITS_UNITS)


@pytest.mark.parametrize("wits", [u for u in WITS_UNITS if u in UNITS and UNITS[u].v1411])
def test_1411_symbol_is_in_the_dictionary_with_pints_size(wits: str) -> None:
    symbol = UNITS[wits].v1411
    assert symbol in posc(), f"{wits}: {symbol!r} is not a WITSML 1.4.1.1 unit symbol"
    base, abcd = posc()[symbol]
    ours = _pint_si(wits)
    if ours is None or abcd is None:
        return  # a base unit of its own (Euc, %, gAPI): no factor to compare
    a, b, c, d = abcd
    assert d == 0
    theirs = (a / c, b / c)  # SI = offset + scale * x
    # 1e-5: the dictionary rounds some factors (inHg(32F) is 3386.38 Pa, pint has 3386.389)
    assert theirs[1] == pytest.approx(ours[1], rel=1e-5), f"{wits} -> {symbol} ({base})"
    assert theirs[0] == pytest.approx(ours[0], rel=1e-5, abs=1e-9), f"{wits} -> {symbol} ({base})"


@pytest.mark.parametrize("wits", [u for u in WITS_UNITS if u in UNITS and UNITS[u].v20])
def test_20_symbol_is_an_energistics_uom_and_the_1411_ones_respelling(wits: str) -> None:
    symbols = UNITS[wits]
    assert symbols.v20 in uom_20(), f"{wits}: {symbols.v20!r} is not a WITSML 2.0 unit symbol"
    if symbols.v1411 is not None:  # the same unit in both versions, maybe respelled
        assert RESPELLED.get(symbols.v20, symbols.v20) == symbols.v1411


def test_the_checks_can_fail() -> None:
    assert "kdaN" not in posc()
    assert "galUS/min" not in uom_20()
    with pytest.raises(AssertionError):  # a symbol of the wrong size is caught
        assert posc()["m/h"][1][1] / posc()["m/h"][1][2] == pytest.approx(_pint_si("F/HR")[1])  # type: ignore[index]


def test_writers_fall_back_to_the_wits_string_and_las_has_no_spaces() -> None:
    assert witsml_unit("KDN", "1.4.1.1") == "KDN"
    assert witsml_unit("kdn", "2.0") == "10 kN"
    assert witsml_unit("B/ST", "2.0") == "B/ST"
    assert las_unit("----") == ""
    assert las_unit("MCM") == "MCM"
    assert all(" " not in las_unit(u) for u in WITS_UNITS)
