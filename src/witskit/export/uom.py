"""WITS unit strings -> Energistics unit symbols, for WITSML 1.4.1.1 and 2.0, and LAS units.

WITSML 1.4.1.1 takes its symbols from the unit dictionary it ships (``witsmlUnitDict.xml``, the POSC
catalogue: ``galUS/min``, ``lbm/galUS``, ``inHg(32F)``); WITSML 2.0 from the Energistics Unit of
Measure Dictionary 1.0 (``gal[US]/min``, ``lbm/gal[US]``, ``inHg[32degF]``, ``1000 ft3``). The two
spell a few units differently and each lacks some the other has, so the table has one column per
version. ``tests/export/test_uom.py`` checks every entry against both dictionaries: the symbol is
there, and pint's factor from the WITS unit to SI base units (the expression in
:mod:`witskit.units`) equals the dictionary's own conversion factor. A unit without a symbol is in
:data:`UNMAPPED` with the reason; it is written as the WITS string itself (both versions accept any
unit string in a log), and the test fails if a unit of the dictionary is in neither table.

LAS 2.0 has no unit list: a unit is any text without spaces up to the first space of the line.
LAS files written here use the WITSML 1.4.1.1 symbol (what Petrel, Techlog and the WITSML-to-LAS
converters of the industry read), the WITS string where there is none, and nothing for unitless.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["UNITS", "UNMAPPED", "Symbols", "las_unit", "witsml_unit"]


class Symbols(NamedTuple):
    """The Energistics symbols of one WITS unit: ``v1411`` (POSC dictionary), ``v20`` (UOM 1.0)."""

    v1411: str | None
    v20: str | None


#: WITS unit (as in the dictionary, upper case) -> its symbols. ``None``: the version lacks it.
UNITS: Final[dict[str, Symbols]] = {
    "----": Symbols("Euc", "Euc"),
    "M": Symbols("m", "m"),
    "F": Symbols("ft", "ft"),
    "MM": Symbols("mm", "mm"),
    "IN": Symbols("in", "in"),
    "I/32": Symbols("in/32", "1/32 in"),
    "MM2": Symbols("mm2", "mm2"),
    "SQIN": Symbols("in2", "in2"),
    "M3": Symbols("m3", "m3"),
    "BBL": Symbols("bbl", "bbl"),
    "MCM": Symbols(None, "1000 m3"),
    "MCF": Symbols("1000ft3", "1000 ft3"),
    "L/M": Symbols("L/min", "L/min"),
    "GPM": Symbols("galUS/min", "gal[US]/min"),
    "M3/M": Symbols("m3/min", "m3/min"),
    "BPM": Symbols("bbl/min", "bbl/min"),
    "M3/D": Symbols("m3/d", "m3/d"),
    "BPD": Symbols("bbl/d", "bbl/d"),
    "MCMD": Symbols("1000m3/d", "1000 m3/d"),
    "MCFD": Symbols("1000ft3/d", "1000 ft3/d"),
    "M/HR": Symbols("m/h", "m/h"),
    "F/HR": Symbols("ft/h", "ft/h"),
    "M/S": Symbols("m/s", "m/s"),
    "FPM": Symbols("ft/min", "ft/min"),
    "FPS": Symbols("ft/s", "ft/s"),
    "KPH": Symbols("km/h", "km/h"),
    "MPH": Symbols("mi/h", "mi/h"),
    "KF/H": Symbols("kft/h", "1000 ft/h"),
    "KPA": Symbols("kPa", "kPa"),
    "PSI": Symbols("psi", "psi"),
    "IHG": Symbols("inHg(32F)", "inHg[32degF]"),
    "PA": Symbols("Pa", "Pa"),
    "PHSF": Symbols("lbf/100ft2", "0.01 lbf/ft2"),
    "KDN": Symbols(None, "10 kN"),
    "KLB": Symbols("klbf", "klbf"),
    "LB": Symbols("lbf", "lbf"),
    "KNM": Symbols("kN.m", "kN.m"),
    "KFLB": Symbols("kft.lbf", "1000 lbf.ft"),
    "KG/M": Symbols("kg/m", "kg/m"),
    "LB/F": Symbols("lbm/ft", "lbm/ft"),
    "KGM3": Symbols("kg/m3", "kg/m3"),
    "PPG": Symbols("lbm/galUS", "lbm/gal[US]"),
    "G/CC": Symbols("g/cm3", "g/cm3"),
    "PPB": Symbols("lbm/bbl", "lbm/bbl"),
    "MG/L": Symbols("mg/L", "mg/L"),
    "MEHG": Symbols("meq/100g", ".01 meq/g"),
    "DEGC": Symbols("degC", "degC"),
    "DEGF": Symbols("degF", "degF"),
    "DEG": Symbols("dega", "dega"),
    "DGHM": Symbols(None, None),
    "DGHF": Symbols("dega/100ft", "0.01 dega/ft"),
    "KW": Symbols("kW", "kW"),
    "HP": Symbols("hp", "hp"),
    "KWM2": Symbols("kW/m2", "kW/m2"),
    "HSI": Symbols("hp/in2", "hp/in2"),
    "SEC": Symbols("s", "s"),
    "HR": Symbols("h", "h"),
    "RPM": Symbols("rpm", "rpm"),
    "SPM": Symbols("1/min", "1/min"),
    "CP": Symbols("cP", "cP"),
    "S/L": Symbols("s/L", "s/L"),
    "S/QT": Symbols("s/qtUS", "s/qt[US]"),
    "C/30": Symbols("cm3/30min", "1/30 cm3/min"),
    "MD": Symbols("mD", "mD"),
    "OHMM": Symbols("ohm.m", "ohm.m"),
    "MMHO": Symbols("mS", "mS"),
    "V": Symbols("V", "V"),
    "API": Symbols("gAPI", "gAPI"),
    "%": Symbols("%", "%"),
    "PPM": Symbols("ppm", "ppm"),
    "MLML": Symbols("mL/mL", "mL/mL"),
}

#: WITS units with no symbol in one or both versions, and why. Written as the WITS string there.
UNMAPPED: Final[dict[str, str]] = {
    "KDN": "WITSML 1.4.1.1's dictionary has daN and kN but no 10 kN (kilodecanewton)",
    "MCM": "WITSML 1.4.1.1's dictionary has no 1000 m3 (its M(m3) is another size)",
    "DGHM": "neither dictionary has degrees per 100 m (1.4.1.1 has dega/30m, 2.0 has 1/30 dega/m)",
    "M3ST": "Energistics has no pump-stroke unit (volume per stroke)",
    "B/ST": "Energistics has no pump-stroke unit (volume per stroke)",
    "$": "Energistics has no currency unit",
    "$/M": "Energistics has no currency unit",
    "$/F": "Energistics has no currency unit",
}


def witsml_unit(wits_unit: str, version: str) -> str:
    """The unit symbol for a WITS unit in a WITSML ``version`` ("1.4.1.1" or "2.0").

    SPM (strokes per minute) is written as ``1/min``: Energistics counts strokes as a frequency.
    A unit without a symbol there is returned as it is (see :data:`UNMAPPED`).
    """
    key = wits_unit.strip().upper()
    symbols = UNITS.get(key)
    symbol = None if symbols is None else (symbols.v20 if version.startswith("2") else symbols.v1411)
    return symbol if symbol is not None else key


def las_unit(wits_unit: str) -> str:
    """The LAS unit of a WITS unit: the WITSML 1.4.1.1 symbol, else the WITS string; '' if unitless."""
    key = wits_unit.strip().upper()
    if key in ("", "----"):
        return ""
    symbol = witsml_unit(key, "1.4.1.1")
    return symbol.replace(" ", "")
