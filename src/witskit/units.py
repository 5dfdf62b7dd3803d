"""Unit conversion for the units of the WITS dictionary (``M``, ``F/HR``, ``KDN``, ``PPG``...).

Every unit string the dictionary uses is mapped to a `pint <https://pint.readthedocs.io>`_
expression, and conversion factors are computed by pint (a maintained units library), never typed
by hand. pint is imported on the first conversion, not when this module is imported, so
``import witskit`` stays fast. Factors are cached per ``(from, to)`` pair.

Unit strings are case-insensitive and a few common spellings are accepted (``FT``, ``FEET``,
``METERS``, ``LPM``, ``KLBS``, ``DEG/100FT``...). Objects with a ``.value`` string (such as the unit
enum members of witskit 0.1) are accepted wherever a unit is.

>>> convert(1000.0, "M", "F")  # doctest: +ELLIPSIS
3280.83989...
>>> convert(100.0, "DEGC", "DEGF")
212.0
>>> counterpart("KDN", metric=False)
'KLB'

A few oilfield conventions worth knowing: ``KDN`` is the kilodecanewton (10 kN, about 2.248 KLB);
``PPB`` is pounds per oil barrel (a mud additive concentration, not parts per billion); ``DGHM`` and
``DGHF`` are degrees per 100 m and per 100 ft; ``PHSF`` is lbf per 100 ft² (yield point); a pump
``stroke`` is a dimension of its own, so ``M3ST`` (m³ per stroke) converts to ``B/ST``. The unitless
marker ``----`` converts only to itself.

Errors are :class:`~witskit.errors.ConversionError` (a :class:`ValueError`): an unknown unit, two
units that measure different things, or asking for a pure factor between temperature scales.
"""

from __future__ import annotations

import threading
from enum import Enum
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from witskit.errors import ConversionError

if TYPE_CHECKING:  # pragma: no cover - typing only; pint is imported lazily at run time
    import pint

    from witskit.symbols import WITSSymbol

__all__ = [
    "ConversionError",
    "UnitConverter",
    "UnitLike",
    "canonical_unit",
    "conversion_factor",
    "convert",
    "convert_symbol_value",
    "counterpart",
    "is_convertible",
    "known_units",
    "unit_category",
]

UNITLESS = "----"
_LIST_HINT = "run `witskit convert --list-units` to see the units WitsKit knows"


class _HasValue(Protocol):
    """Anything with a string ``.value``, such as a witskit 0.1 unit enum member."""

    @property
    def value(self) -> str: ...


#: A unit: its string (``"M"``, ``"f/hr"``), or an object whose ``.value`` is that string.
UnitLike = str | _HasValue

# ------------------------------------------------------------------------------------------------
# The tables. Each WITS unit string -> (pint expression, category). The numbers inside expressions
# are parts of the unit's definition (``KDN`` is 10 kN, ``I/32`` is 1/32 inch), not conversion
# factors; every factor between two units is computed by pint.
# ------------------------------------------------------------------------------------------------

# Units and dimensions pint does not have, defined in our private registry. The names are prefixed
# so they can never collide with (and trigger redefinition warnings for) pint's own units.
_CUSTOM_DEFINITIONS = (
    "wits_stroke = [wits_stroke]",  # one pump stroke
    "wits_currency = [wits_currency]",  # $: currency is its own dimension
    "wits_gapi = [wits_gamma_ray]",  # gamma-ray API unit
    "wits_meq = [wits_ion_exchange]",  # milliequivalent (cation exchange capacity)
    # Angles get a dimension of their own: in pint they are dimensionless, which would make DEG
    # convertible to % or PPM.
    "wits_degree = [wits_angle]",
    "wits_revolution = 360 * wits_degree",
)

_UNITS: dict[str, tuple[str, str]] = {
    UNITLESS: ("", "unitless"),
    # length
    "M": ("meter", "length"),
    "F": ("foot", "length"),
    "MM": ("millimeter", "length"),
    "IN": ("inch", "length"),
    "I/32": ("inch / 32", "length"),
    # area
    "MM2": ("millimeter ** 2", "area"),
    "SQIN": ("inch ** 2", "area"),
    # volume
    "M3": ("meter ** 3", "volume"),
    "BBL": ("oil_barrel", "volume"),
    "MCM": ("1000 * meter ** 3", "volume"),
    "MCF": ("1000 * foot ** 3", "volume"),
    "M3ST": ("meter ** 3 / wits_stroke", "volume_per_stroke"),
    "B/ST": ("oil_barrel / wits_stroke", "volume_per_stroke"),
    # flow rates
    "L/M": ("liter / minute", "flow_rate"),
    "GPM": ("gallon / minute", "flow_rate"),
    "M3/M": ("meter ** 3 / minute", "flow_rate"),
    "BPM": ("oil_barrel / minute", "flow_rate"),
    "M3/D": ("meter ** 3 / day", "flow_rate"),
    "BPD": ("oil_barrel / day", "flow_rate"),
    "MCMD": ("1000 * meter ** 3 / day", "flow_rate"),
    "MCFD": ("1000 * foot ** 3 / day", "flow_rate"),
    # speeds
    "M/HR": ("meter / hour", "drilling_rate"),
    "F/HR": ("foot / hour", "drilling_rate"),
    "M/S": ("meter / second", "speed"),
    "FPM": ("foot / minute", "speed"),
    "FPS": ("foot / second", "speed"),
    "KPH": ("kilometer / hour", "speed"),
    "MPH": ("mile / hour", "speed"),
    "KF/H": ("1000 * foot / hour", "speed"),
    # pressure
    "KPA": ("kilopascal", "pressure"),
    "PSI": ("psi", "pressure"),
    "IHG": ("inch_Hg", "pressure"),
    "PA": ("pascal", "pressure"),
    "PHSF": ("force_pound / (100 * foot ** 2)", "pressure"),
    "BAR": ("bar", "pressure"),  # not in the dictionary; witskit 0.1 had it
    # force, torque
    "KDN": ("10 * kilonewton", "force"),
    "KLB": ("kip", "force"),
    "LB": ("force_pound", "force"),
    "KNM": ("kilonewton * meter", "torque"),
    "KFLB": ("1000 * foot * force_pound", "torque"),
    # mass per length, density, concentration
    "KG/M": ("kilogram / meter", "mass_per_length"),
    "LB/F": ("pound / foot", "mass_per_length"),
    "KGM3": ("kilogram / meter ** 3", "density"),
    "PPG": ("pound / gallon", "density"),
    "G/CC": ("gram / cubic_centimeter", "density"),
    "PPB": ("pound / oil_barrel", "concentration"),
    "MG/L": ("milligram / liter", "concentration"),
    "MEHG": ("wits_meq / (100 * gram)", "cation_exchange_capacity"),
    # temperature (offset scales)
    "DEGC": ("degC", "temperature"),
    "DEGF": ("degF", "temperature"),
    # angles
    "DEG": ("wits_degree", "angle"),
    "DGHM": ("wits_degree / (100 * meter)", "angle_gradient"),
    "DGHF": ("wits_degree / (100 * foot)", "angle_gradient"),
    # power
    "KW": ("kilowatt", "power"),
    "HP": ("horsepower", "power"),
    "KWM2": ("kilowatt / meter ** 2", "power_per_area"),
    "HSI": ("horsepower / inch ** 2", "power_per_area"),
    # time and rates of things
    "SEC": ("second", "time"),
    "MIN": ("minute", "time"),  # not in the dictionary; witskit 0.1 had it
    "HR": ("hour", "time"),
    "RPM": ("wits_revolution / minute", "rotation"),
    "SPM": ("wits_stroke / minute", "pumping"),
    # mud properties
    "CP": ("centipoise", "viscosity"),
    "S/L": ("second / liter", "funnel_viscosity"),
    "S/QT": ("second / quart", "funnel_viscosity"),
    "C/30": ("cubic_centimeter / (30 * minute)", "fluid_loss"),
    # formation evaluation, electrical
    "MD": ("millidarcy", "permeability"),
    "OHMM": ("ohm * meter", "resistivity"),
    "MMHO": ("millimho", "conductance"),
    "V": ("volt", "voltage"),
    "API": ("wits_gapi", "gamma_ray"),
    # ratios
    "%": ("percent", "percentage"),
    "PPM": ("ppm", "ratio"),
    "MLML": ("milliliter / milliliter", "ratio"),
    # money
    "$": ("wits_currency", "cost"),
    "$/M": ("wits_currency / meter", "cost_per_length"),
    "$/F": ("wits_currency / foot", "cost_per_length"),
}

# The (metric, fps) pairs of the dictionary. For a metric unit with several FPS partners the first
# listed is the usual one (KDN is nearly always KLB, MM nearly always IN...).
_PAIRS: tuple[tuple[str, str], ...] = (
    ("$", "$"),
    ("$/M", "$/F"),
    ("%", "%"),
    (UNITLESS, UNITLESS),
    ("API", "API"),
    ("C/30", "C/30"),
    ("CP", "CP"),
    ("DEG", "DEG"),
    ("DEGC", "DEGF"),
    ("DGHM", "DGHF"),
    ("G/CC", "G/CC"),
    ("HR", "HR"),
    ("KDN", "KLB"),
    ("KDN", "LB"),
    ("KG/M", "LB/F"),
    ("KGM3", "PPG"),
    ("KGM3", "PPB"),
    ("KNM", "KFLB"),
    ("KPA", "PSI"),
    ("KPA", "IHG"),
    ("KPH", "MPH"),
    ("KPH", "KF/H"),
    ("KW", "HP"),
    ("KWM2", "HSI"),
    ("L/M", "GPM"),
    ("M", "F"),
    ("M/HR", "F/HR"),
    ("M/S", "FPM"),
    ("M/S", "FPS"),
    ("M3", "BBL"),
    ("M3/D", "BPD"),
    ("M3/M", "BPM"),
    ("M3ST", "B/ST"),
    ("MCM", "MCF"),
    ("MCMD", "MCFD"),
    ("MD", "MD"),
    ("MEHG", "MEHG"),
    ("MG/L", "MG/L"),
    ("MLML", "MLML"),
    ("MM", "IN"),
    ("MM", "I/32"),
    ("MM2", "SQIN"),
    ("MMHO", "MMHO"),
    ("OHMM", "OHMM"),
    ("PA", "PHSF"),
    ("PPM", "PPM"),
    ("RPM", "RPM"),
    ("S/L", "S/QT"),
    ("SEC", "SEC"),
    ("SPM", "SPM"),
    ("V", "V"),
)

# Units outside the dictionary: their counterpart in the other system.
_EXTRA_PAIRS: tuple[tuple[str, str], ...] = (("BAR", "PSI"), ("MIN", "MIN"))

# Other spellings (upper case, spaces removed) -> the dictionary's unit string.
_ALIASES: dict[str, str] = {
    "": UNITLESS,
    "NONE": UNITLESS,
    "UNITLESS": UNITLESS,
    "-": UNITLESS,
    "METER": "M",
    "METERS": "M",
    "METRE": "M",
    "METRES": "M",
    "FT": "F",
    "FOOT": "F",
    "FEET": "F",
    "MILLIMETER": "MM",
    "MILLIMETERS": "MM",
    "INCH": "IN",
    "INCHES": "IN",
    "M/H": "M/HR",
    "FT/HR": "F/HR",
    "FT/H": "F/HR",
    "FPH": "F/HR",
    "FT/MIN": "FPM",
    "FT/S": "FPS",
    "KM/H": "KPH",
    "KMH": "KPH",
    "LPM": "L/M",
    "L/MIN": "L/M",
    "GAL/MIN": "GPM",
    "M3/MIN": "M3/M",
    "BBL/MIN": "BPM",
    "BBL/D": "BPD",
    "BBL/DAY": "BPD",
    "BBLS": "BBL",
    "BARREL": "BBL",
    "BARRELS": "BBL",
    "M^3": "M3",
    "KG/M3": "KGM3",
    "LB/GAL": "PPG",
    "LB/BBL": "PPB",
    "KLBS": "KLB",
    "KLBF": "KLB",
    "KIP": "KLB",
    "KIPS": "KLB",
    "LBS": "LB",
    "LBF": "LB",
    "KN.M": "KNM",
    "KN-M": "KNM",
    "KFT.LBF": "KFLB",
    "KFT-LBF": "KFLB",
    "KFTLB": "KFLB",
    "INHG": "IHG",
    "LBF/100FT2": "PHSF",
    "DEG/100M": "DGHM",
    "DEG/100FT": "DGHF",
    "DEGREE": "DEG",
    "DEGREES": "DEG",
    "°": "DEG",
    "°C": "DEGC",
    "°F": "DEGF",
    "DEG C": "DEGC",
    "DEG F": "DEGF",
    "PERCENT": "%",
    "S": "SEC",
    "SECOND": "SEC",
    "SECONDS": "SEC",
    "H": "HR",
    "HOUR": "HR",
    "HOURS": "HR",
    "MINUTE": "MIN",
    "MINUTES": "MIN",
}


def _build_counterparts() -> tuple[dict[str, str], dict[str, str]]:
    to_fps: dict[str, str] = {}
    to_metric: dict[str, str] = {}
    for metric, fps in (*_PAIRS, *_EXTRA_PAIRS):
        to_fps.setdefault(metric, fps)
        to_metric.setdefault(fps, metric)
    for metric, fps in (*_PAIRS, *_EXTRA_PAIRS):
        to_metric.setdefault(metric, metric)
        to_fps.setdefault(fps, fps)
    return to_fps, to_metric


_TO_FPS, _TO_METRIC = _build_counterparts()

# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------


def _unit_text(unit: UnitLike | Any) -> str:
    """The string of a unit given as a ``str``, an enum member or anything with ``.value``."""
    if isinstance(unit, Enum):
        unit = unit.value
    if isinstance(unit, str):
        return unit
    value = getattr(unit, "value", None)
    if isinstance(value, str):
        return value
    raise ConversionError(f"{unit!r} is not a unit: pass a unit string such as 'M'; {_LIST_HINT}")


@lru_cache(maxsize=512)
def _canonical_or_none(text: str) -> str | None:
    key = text.strip().upper()
    if key in _UNITS:
        return key
    alias = _ALIASES.get(key)
    if alias is None:
        alias = _ALIASES.get(" ".join(key.split()))
    if alias is None:
        alias = _ALIASES.get("".join(key.split()))
    return alias


def _canonical(unit: UnitLike | Any) -> str:
    text = _unit_text(unit)
    canon = _canonical_or_none(text)
    if canon is None:
        raise ConversionError(f"unknown unit {text!r}; {_LIST_HINT}")
    return canon


def canonical_unit(unit: UnitLike | Any) -> str | None:
    """The dictionary's spelling of a unit (``"ft"`` -> ``"F"``), or None for an unknown one; no pint."""
    try:
        return _canonical_or_none(_unit_text(unit))
    except ConversionError:
        return None


def _describe(canon: str) -> str:
    return _UNITS[canon][1].replace("_", " ")


# ------------------------------------------------------------------------------------------------
# pint, imported and set up on first use
# ------------------------------------------------------------------------------------------------

_registry: pint.UnitRegistry[Any] | None = None
_registry_lock = threading.Lock()


def _ureg() -> pint.UnitRegistry[Any]:
    global _registry
    reg = _registry
    if reg is None:
        with _registry_lock:
            if _registry is None:
                import pint

                new: pint.UnitRegistry[Any] = pint.UnitRegistry()
                for definition in _CUSTOM_DEFINITIONS:
                    new.define(definition)
                _registry = new
            reg = _registry
    return reg


def _snap(x: float) -> float | None:
    """``x`` without pint's float noise if it is a short decimal (``31.999999999999936`` -> 32.0)."""
    rounded = float(f"{x:.12g}")
    return rounded if float(f"{x:.8g}") == rounded else None


def _linear_scale(from_canon: str, to_canon: str) -> float | None:
    """pint's factor from one linear unit to another, ``None`` if they measure different things."""
    ureg = _ureg()
    src = ureg.parse_expression(_UNITS[from_canon][0])
    dst = ureg.parse_expression(_UNITS[to_canon][0])
    if src.dimensionality != dst.dimensionality:
        return None
    # An expression such as "1000 * foot ** 3" parses to a quantity with a magnitude.
    converted = ureg.Quantity(float(src.magnitude), src.units).to(dst.units)
    return float(converted.magnitude) / float(dst.magnitude)


def _offset_scale(from_canon: str, to_canon: str) -> tuple[float, float]:
    """pint's ``(scale, offset)`` between two offset scales (temperatures), tidied of float noise.

    pint goes through kelvin and returns ``31.999999999999936`` for 0 °C in °F; constants that
    are short decimals once that noise is removed are snapped to them (32, 1.8), and the others are
    derived from the snapped ones, so that 100 °C is exactly 212 °F and 212 °F exactly 100 °C.
    """
    ureg = _ureg()
    src = ureg.parse_expression(_UNITS[from_canon][0]).units
    dst = ureg.parse_expression(_UNITS[to_canon][0]).units
    b_raw = float(ureg.Quantity(0.0, src).to(dst).magnitude)  # dst value at the src zero
    a_raw = float(ureg.Quantity(0.0, dst).to(src).magnitude)  # src value at the dst zero
    s_raw = float(ureg.Quantity(1.0, src).to(dst).magnitude) - b_raw
    scale = _snap(s_raw)
    if scale is None:
        inverse = _snap(1.0 / s_raw)
        scale = 1.0 / inverse if inverse is not None else s_raw
    offset = _snap(b_raw)
    if offset is None:
        zero = _snap(a_raw)
        offset = -zero * scale if zero is not None else b_raw
    return scale, offset


@cache
def _plan(from_canon: str, to_canon: str) -> tuple[float, float] | None:
    """The cached ``(scale, offset)`` with ``to = from * scale + offset``; ``None`` if incompatible.

    Both units are canonical names (keys of ``_UNITS``). Linear units have ``offset == 0.0`` and
    ``scale`` is pint's factor; temperatures have an offset.
    """
    if from_canon == to_canon:
        return (1.0, 0.0)
    if from_canon == UNITLESS or to_canon == UNITLESS:
        return None
    from_offset = _UNITS[from_canon][1] == "temperature"
    to_offset = _UNITS[to_canon][1] == "temperature"
    if from_offset or to_offset:
        return _offset_scale(from_canon, to_canon) if from_offset and to_offset else None
    scale = _linear_scale(from_canon, to_canon)
    return None if scale is None else (scale, 0.0)


def _require_plan(from_unit: UnitLike, to_unit: UnitLike) -> tuple[str, str, tuple[float, float]]:
    src = _canonical(from_unit)
    dst = _canonical(to_unit)
    plan = _plan(src, dst)
    if plan is None:
        raise ConversionError(f"cannot convert {src} ({_describe(src)}) to {dst} ({_describe(dst)})")
    return src, dst, plan


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def convert(value: float, from_unit: UnitLike, to_unit: UnitLike) -> float:
    """Convert ``value`` from ``from_unit`` to ``to_unit`` (``convert(10, "M", "F")`` -> 32.808...).

    Handles offset scales (``DEGC`` <-> ``DEGF``). Raises :class:`ConversionError` if a unit is
    unknown or the two units measure different things.
    """
    _, _, (scale, offset) = _require_plan(from_unit, to_unit)
    return value * scale + offset


def conversion_factor(from_unit: UnitLike, to_unit: UnitLike) -> float:
    """The factor ``f`` such that a value in ``from_unit`` times ``f`` is the value in ``to_unit``.

    Raises :class:`ConversionError` for unknown or incompatible units, and for offset scales
    (``DEGC`` -> ``DEGF`` is not a pure factor: use :func:`convert`).
    """
    src, dst, (scale, offset) = _require_plan(from_unit, to_unit)
    if offset != 0.0:
        raise ConversionError(
            f"{src} to {dst} is not a pure factor: {_describe(src)} scales have different zeros; "
            "use convert() for values"
        )
    return scale


def is_convertible(from_unit: UnitLike, to_unit: UnitLike) -> bool:
    """True if values in ``from_unit`` can be converted to ``to_unit``; False if not or unknown."""
    src = _canonical_or_none(_unit_text_or_empty(from_unit))
    dst = _canonical_or_none(_unit_text_or_empty(to_unit))
    if src is None or dst is None:
        return False
    return _plan(src, dst) is not None


def _unit_text_or_empty(unit: UnitLike | Any) -> str:
    try:
        return _unit_text(unit)
    except ConversionError:
        return "\x00not a unit"


def known_units() -> list[str]:
    """Every unit string of the WITS dictionary, sorted (``----`` is the unitless marker).

    Aliases (``FT``, ``LPM``...) and the extra units ``BAR`` and ``MIN`` are accepted too but are
    not listed.
    """
    return sorted({u for pair in _PAIRS for u in pair})


def unit_category(unit: UnitLike) -> str:
    """What a unit measures (``"length"``, ``"pressure"``, ``"force"``...); ``"unknown"`` if unknown."""
    try:
        canon = _canonical(unit)
    except ConversionError:
        return "unknown"
    return _UNITS[canon][1]


def counterpart(unit: UnitLike, metric: bool, *, code: str | None = None) -> str:
    """The unit of the same quantity in the metric (``metric=True``) or FPS system.

    ``counterpart("M", metric=False)`` is ``"F"``; a unit already in the wanted system, or used by
    both (``%``, ``RPM``), is returned as is (in its dictionary spelling). Where a metric unit has
    several FPS partners in the dictionary the usual one is chosen (``KDN`` -> ``KLB``, ``MM`` ->
    ``IN``, ``KGM3`` -> ``PPG``, ``KPA`` -> ``PSI``, ``KPH`` -> ``MPH``, ``M/S`` -> ``FPM``); pass
    ``code`` (a WITS item code such as ``"0114"``) to use that item's own pair instead.
    """
    canon = _canonical(unit)
    if code is not None:
        sym = _symbol(code)
        pair = (_canonical(sym.metric_units), _canonical(sym.fps_units))
        if canon in pair:
            return pair[0] if metric else pair[1]
    table = _TO_METRIC if metric else _TO_FPS
    return table.get(canon, canon)


def convert_symbol_value(value: float, code: str, to_metric: bool) -> float:
    """Convert a value of WITS item ``code`` between its own metric and FPS units.

    ``to_metric=True`` reads ``value`` in the item's FPS unit and returns it in its metric unit;
    ``to_metric=False`` the reverse. Raises :class:`ConversionError` for an unknown code.
    """
    sym = _symbol(code)
    if to_metric:
        return convert(value, sym.fps_units, sym.metric_units)
    return convert(value, sym.metric_units, sym.fps_units)


def _symbol(code: str) -> WITSSymbol:
    from witskit.symbols import WITS_SYMBOLS

    sym = WITS_SYMBOLS.get(code)
    if sym is None:
        raise ConversionError(f"unknown WITS item code {code!r}")
    return sym


class UnitConverter:
    """The witskit 0.1 conversion API, now backed by pint (see the module functions).

    Units may be strings or witskit 0.1 unit enum members.
    """

    @classmethod
    def convert_value(cls, value: float, from_unit: UnitLike, to_unit: UnitLike) -> float:
        """Convert ``value`` between two units; raises :class:`ConversionError` (see :func:`convert`)."""
        return convert(value, from_unit, to_unit)

    @classmethod
    def get_conversion_factor(cls, from_unit: UnitLike, to_unit: UnitLike) -> float | None:
        """The multiplicative factor, or ``None`` if the units are unknown, incompatible or offset."""
        try:
            return conversion_factor(from_unit, to_unit)
        except ConversionError:
            return None

    @classmethod
    def is_convertible(cls, from_unit: UnitLike, to_unit: UnitLike) -> bool:
        """True if a value can be converted from ``from_unit`` to ``to_unit``."""
        return is_convertible(from_unit, to_unit)

    @classmethod
    def get_unit_category(cls, unit: UnitLike) -> str:
        """What ``unit`` measures (``"length"``, ``"pressure"``...), ``"unknown"`` if unknown."""
        return unit_category(unit)

    @staticmethod
    def celsius_to_fahrenheit(celsius: float) -> float:
        """Convert a temperature in °C to °F."""
        return convert(celsius, "DEGC", "DEGF")

    @staticmethod
    def fahrenheit_to_celsius(fahrenheit: float) -> float:
        """Convert a temperature in °F to °C."""
        return convert(fahrenheit, "DEGF", "DEGC")
