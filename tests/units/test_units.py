"""Tests of witskit.units: factors checked against exact published constants, not against pint."""

from __future__ import annotations

import doctest
import math
import re
import subprocess
import sys
from collections import Counter
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import witskit.units as units
from witskit.errors import ConversionError as ErrorsConversionError
from witskit.symbols import WITS_SYMBOLS
from witskit.units import (
    ConversionError,
    UnitConverter,
    conversion_factor,
    convert,
    convert_symbol_value,
    counterpart,
    is_convertible,
    known_units,
    unit_category,
)

# Exact definitions (NIST SP 811 / international yard and pound agreement), typed independently.
FOOT_M = 0.3048
INCH_MM = 25.4
LBF_N = 4.4482216152605
LB_KG = 0.45359237
US_GAL_L = 3.785411784
BBL_M3 = 0.158987294928
PSI_KPA = 6.894757293168361
HP_W = 745.69987158227
MILE_KM = 1.609344

DICTIONARY_PAIRS = sorted({(s.metric_units, s.fps_units) for s in WITS_SYMBOLS.values()})
DOCS = Path(__file__).resolve().parents[2] / "docs" / "units.md"


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# --- factors against independent constants ---------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ("F", "M", FOOT_M),
        ("M", "F", 1 / FOOT_M),
        ("F/HR", "M/HR", FOOT_M),
        ("KDN", "KLB", 10000 / (LBF_N * 1000)),
        ("KDN", "LB", 10000 / LBF_N),
        ("KLB", "KDN", LBF_N * 1000 / 10000),
        ("GPM", "L/M", US_GAL_L),
        ("BBL", "M3", BBL_M3),
        ("BPM", "M3/M", BBL_M3),
        ("BPD", "M3/D", BBL_M3),
        ("B/ST", "M3ST", BBL_M3),
        ("PSI", "KPA", PSI_KPA),
        ("IN", "MM", INCH_MM),
        ("I/32", "MM", INCH_MM / 32),
        ("SQIN", "MM2", INCH_MM**2),
        ("DGHM", "DGHF", 0.3048),
        ("PPG", "KGM3", 119.8264273),
        ("PPB", "KGM3", 2.853010174),
        ("HP", "KW", HP_W / 1000),
        ("HSI", "KWM2", HP_W / 1000 / (INCH_MM / 1000) ** 2),
        ("KNM", "KFLB", 0.737562149),
        ("MPH", "KPH", MILE_KM),
        ("KF/H", "KPH", FOOT_M),
        ("FPM", "M/S", FOOT_M / 60),
        ("FPS", "M/S", FOOT_M),
        ("PHSF", "PA", 0.4788025898),
        ("MCF", "M3", 28.316846592),
        ("MCFD", "MCMD", 28.316846592 / 1000),
        ("MCF", "MCM", 28.316846592 / 1000),
        ("$/M", "$/F", 0.3048),
        ("LB/F", "KG/M", LB_KG / FOOT_M),
        ("S/QT", "S/L", 1 / (US_GAL_L / 4)),
        ("IHG", "KPA", 3.386389),
        ("G/CC", "KGM3", 1000.0),
        ("MG/L", "KGM3", 0.001),
        ("%", "PPM", 10000.0),
        ("MLML", "%", 100.0),
        ("PA", "KPA", 0.001),
        ("BAR", "PSI", 100 / PSI_KPA),
        ("HR", "SEC", 3600.0),
    ],
)
def test_factor_matches_exact_constant(src: str, dst: str, expected: float) -> None:
    rel = 1e-6 if src == "IHG" else 1e-9  # inHg is only known to ~7 digits (depends on Hg density)
    assert close(conversion_factor(src, dst), expected, rel)
    assert close(convert(2.5, src, dst), 2.5 * expected, rel)


def test_temperature_offsets() -> None:
    assert convert(100, "DEGC", "DEGF") == pytest.approx(212.0, abs=1e-12)
    assert convert(-40, "DEGC", "DEGF") == pytest.approx(-40.0, abs=1e-12)
    assert convert(0, "DEGC", "DEGF") == pytest.approx(32.0, abs=1e-12)
    assert convert(212, "DEGF", "DEGC") == pytest.approx(100.0, abs=1e-12)
    assert convert(-40, "DEGF", "DEGC") == pytest.approx(-40.0, abs=1e-12)
    assert convert(98.6, "DEGF", "DEGC") == pytest.approx(37.0, abs=1e-12)
    assert convert(20, "DEGC", "DEGC") == 20
    assert UnitConverter.celsius_to_fahrenheit(100) == pytest.approx(212.0)
    assert UnitConverter.fahrenheit_to_celsius(32) == pytest.approx(0.0, abs=1e-12)


def test_temperature_has_no_pure_factor() -> None:
    with pytest.raises(ConversionError, match=r"DEGC.*DEGF.*convert\(\)"):
        conversion_factor("DEGC", "DEGF")
    assert conversion_factor("DEGF", "DEGF") == 1.0
    assert UnitConverter.get_conversion_factor("DEGC", "DEGF") is None
    assert UnitConverter.is_convertible("DEGC", "DEGF")


# --- every pair of the dictionary --------------------------------------------------------------


@pytest.mark.parametrize(("metric", "fps"), DICTIONARY_PAIRS, ids=[f"{m}->{f}" for m, f in DICTIONARY_PAIRS])
@settings(deadline=None, max_examples=50)
@given(value=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_dictionary_pair_round_trips(metric: str, fps: str, value: float) -> None:
    assert is_convertible(metric, fps)
    assert is_convertible(fps, metric)
    there = convert(value, metric, fps)
    back = convert(there, fps, metric)
    assert math.isfinite(there)
    assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-6)
    if unit_category(metric) != "temperature":
        assert there == pytest.approx(value * conversion_factor(metric, fps), rel=1e-12, abs=1e-300)


def test_known_units_are_exactly_the_dictionary_units() -> None:
    dictionary = {u for pair in DICTIONARY_PAIRS for u in pair}
    assert set(known_units()) == dictionary
    assert known_units() == sorted(known_units())
    for unit in known_units():
        assert unit_category(unit) != "unknown"


# --- errors ------------------------------------------------------------------------------------


def test_conversion_error_is_the_shared_one() -> None:
    assert ConversionError is ErrorsConversionError
    assert issubclass(ConversionError, ValueError)


@pytest.mark.parametrize(
    ("src", "dst", "what_src", "what_dst"),
    [
        ("M", "PSI", "length", "pressure"),
        ("KDN", "KNM", "force", "torque"),
        ("DEGC", "KPA", "temperature", "pressure"),
        ("DEG", "%", "angle", "percentage"),
        ("SPM", "RPM", "pumping", "rotation"),
        ("M3ST", "M3", "volume per stroke", "volume"),
        ("----", "%", "unitless", "percentage"),
        ("M", "----", "length", "unitless"),
        ("API", "$", "gamma ray", "cost"),
    ],
)
def test_incompatible_units_name_both(src: str, dst: str, what_src: str, what_dst: str) -> None:
    with pytest.raises(ConversionError) as info:
        convert(1.0, src, dst)
    message = str(info.value)
    assert f"{src} ({what_src})" in message
    assert f"{dst} ({what_dst})" in message
    assert message.startswith("cannot convert")
    assert not is_convertible(src, dst)
    assert UnitConverter.get_conversion_factor(src, dst) is None
    with pytest.raises(ConversionError):
        conversion_factor(src, dst)


@pytest.mark.parametrize(("src", "dst", "bad"), [("FURLONG", "M", "FURLONG"), ("M", "parsec", "parsec")])
def test_unknown_unit_raises_with_hint(src: str, dst: str, bad: str) -> None:
    with pytest.raises(ConversionError) as info:
        convert(1.0, src, dst)
    assert repr(bad) in str(info.value)
    assert "witskit convert --list-units" in str(info.value)
    assert not is_convertible(src, dst)
    assert UnitConverter.get_conversion_factor(src, dst) is None


def test_empty_string_is_the_unitless_marker() -> None:
    assert unit_category("") == "unitless"
    with pytest.raises(ConversionError, match=r"cannot convert ---- \(unitless\) to M \(length\)"):
        convert(1.0, "", "M")


def test_non_unit_object_raises() -> None:
    with pytest.raises(ConversionError, match="not a unit"):
        convert(1.0, 42, "M")  # type: ignore[arg-type]
    assert not is_convertible(42, "M")  # type: ignore[arg-type]


def test_unitless_converts_only_to_itself() -> None:
    assert convert(7.0, "----", "----") == 7.0
    assert conversion_factor("----", "----") == 1.0
    assert not is_convertible("----", "PPM")


# --- spellings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("ft", "F"),
        ("FEET", "F"),
        ("meters", "M"),
        (" m ", "M"),
        ("LPM", "L/M"),
        ("klbs", "KLB"),
        ("KLBF", "KLB"),
        ("deg/100ft", "DGHF"),
        ("DEG/100 FT", "DGHF"),
        ("f/hr", "F/HR"),
        ("kgm3", "KGM3"),
        ("°C", "DEGC"),
    ],
)
def test_aliases_and_case(alias: str, canonical: str) -> None:
    assert conversion_factor(alias, canonical) == 1.0
    assert unit_category(alias) == unit_category(canonical)
    assert counterpart(alias, metric=True) == counterpart(canonical, metric=True)


def test_enum_members_and_value_objects() -> None:
    class WITSUnits(str, Enum):  # noqa: UP042 - exactly the shape of witskit 0.1's enum
        METERS = "M"
        FEET = "F"
        KPA = "KPA"
        PSI = "PSI"

    class Plain(Enum):
        KDN = "KDN"

    class HasValue:
        value = "KLB"

    assert UnitConverter.convert_value(1.0, WITSUnits.FEET, WITSUnits.METERS) == pytest.approx(FOOT_M)
    assert UnitConverter.get_conversion_factor(WITSUnits.PSI, WITSUnits.KPA) == pytest.approx(PSI_KPA)
    assert convert(1.0, Plain.KDN, HasValue()) == pytest.approx(10 / LBF_N)
    assert UnitConverter.get_unit_category(WITSUnits.KPA) == "pressure"


# --- the witskit 0.1 class ---------------------------------------------------------------------


def test_unit_converter_api() -> None:
    assert UnitConverter.convert_value(10.0, "M/HR", "F/HR") == pytest.approx(10 / FOOT_M)
    assert UnitConverter.convert_value(5, "M", "M") == 5
    assert UnitConverter.get_conversion_factor("M", "M") == 1.0
    assert UnitConverter.get_conversion_factor("M3", "BBL") == pytest.approx(1 / BBL_M3)
    assert UnitConverter.get_conversion_factor("M", "PSI") is None
    assert UnitConverter.get_conversion_factor("M", "NOPE") is None
    assert UnitConverter.is_convertible("KPA", "PSI")
    assert not UnitConverter.is_convertible("KPA", "M")
    assert not UnitConverter.is_convertible("KPA", "NOPE")
    with pytest.raises(ConversionError):
        UnitConverter.convert_value(1.0, "KPA", "M")
    with pytest.raises(ValueError, match="unknown unit"):  # 0.1 callers catching ValueError still work
        UnitConverter.convert_value(1.0, "NOPE", "M")


@pytest.mark.parametrize(
    ("unit", "category"),
    [
        ("M", "length"),
        ("F", "length"),
        ("KPA", "pressure"),
        ("PSI", "pressure"),
        ("KDN", "force"),
        ("KLB", "force"),
        ("DEGC", "temperature"),
        ("DEGF", "temperature"),
        ("----", "unitless"),
        ("GPM", "flow_rate"),
        ("F/HR", "drilling_rate"),
        ("KNM", "torque"),
        ("M3", "volume"),
        ("KGM3", "density"),
        ("DGHF", "angle_gradient"),
        ("RPM", "rotation"),
        ("SPM", "pumping"),
        ("%", "percentage"),
        ("HR", "time"),
        ("WHATEVER", "unknown"),
    ],
)
def test_get_unit_category(unit: str, category: str) -> None:
    assert UnitConverter.get_unit_category(unit) == category
    assert unit_category(unit) == category


# --- counterparts ------------------------------------------------------------------------------


def test_counterpart_basics() -> None:
    assert counterpart("M", metric=False) == "F"
    assert counterpart("F", metric=True) == "M"
    assert counterpart("M", metric=True) == "M"
    assert counterpart("F", metric=False) == "F"
    assert counterpart("%", metric=False) == "%"
    assert counterpart("----", metric=True) == "----"
    assert counterpart("DEGC", metric=False) == "DEGF"
    assert counterpart("KDN", metric=False) == "KLB"
    assert counterpart("LB", metric=True) == "KDN"
    assert counterpart("I/32", metric=True) == "MM"
    assert counterpart("PPB", metric=True) == "KGM3"
    assert counterpart("MM", metric=False) == "IN"
    assert counterpart("KGM3", metric=False) == "PPG"
    assert counterpart("KPA", metric=False) == "PSI"
    assert counterpart("KPH", metric=False) == "MPH"
    assert counterpart("M/S", metric=False) == "FPM"
    with pytest.raises(ConversionError, match="unknown unit"):
        counterpart("FURLONG", metric=True)


def test_counterpart_picks_the_most_common_dictionary_pairing() -> None:
    counts = Counter((s.metric_units, s.fps_units) for s in WITS_SYMBOLS.values())
    by_metric: dict[str, Counter[str]] = {}
    for (metric, fps), n in counts.items():
        by_metric.setdefault(metric, Counter())[fps] += n
    for metric, partners in by_metric.items():
        assert counterpart(metric, metric=False) == partners.most_common(1)[0][0], metric
        for fps in partners:
            assert counterpart(fps, metric=True) == metric


def _code_with_pair(metric: str, fps: str) -> str:
    return next(c for c, s in sorted(WITS_SYMBOLS.items()) if (s.metric_units, s.fps_units) == (metric, fps))


def test_counterpart_and_convert_with_item_code() -> None:
    lb_code = _code_with_pair("KDN", "LB")
    assert counterpart("KDN", metric=False, code=lb_code) == "LB"
    assert convert_symbol_value(1.0, lb_code, to_metric=False) == pytest.approx(10000 / LBF_N)
    assert convert_symbol_value(10000 / LBF_N, lb_code, to_metric=True) == pytest.approx(1.0)

    ppb_code = _code_with_pair("KGM3", "PPB")
    assert counterpart("KGM3", metric=False, code=ppb_code) == "PPB"
    assert convert_symbol_value(1.0, ppb_code, to_metric=True) == pytest.approx(2.853010174)

    depth = _code_with_pair("M", "F")
    assert convert_symbol_value(1000.0, code=depth, to_metric=False) == pytest.approx(1000 / FOOT_M)
    # a unit not in the item's pair falls back to the usual pairing
    assert counterpart("KDN", metric=False, code=depth) == "KLB"

    temp = _code_with_pair("DEGC", "DEGF")
    assert convert_symbol_value(212.0, temp, to_metric=True) == pytest.approx(100.0)

    with pytest.raises(ConversionError, match="9999"):
        convert_symbol_value(1.0, "9999", to_metric=True)


# --- caching and laziness ----------------------------------------------------------------------


def test_factors_are_cached_per_pair() -> None:
    units._plan.cache_clear()
    first = conversion_factor("BBL", "M3")
    info = units._plan.cache_info()
    assert info.misses == 1
    second = conversion_factor("bbl", "M3")
    assert second is first
    after = units._plan.cache_info()
    assert after.hits == info.hits + 1
    assert after.misses == info.misses
    assert after.currsize == 1
    convert(3.0, "DEGC", "DEGF")
    convert(4.0, "DEGC", "DEGF")
    assert units._plan.cache_info().currsize == 2


def test_import_does_not_import_pint() -> None:
    code = (
        "import sys, witskit.units\n"
        "assert 'pint' not in sys.modules, 'pint imported at import time'\n"
        "witskit.units.known_units(); witskit.units.counterpart('M', metric=False)\n"
        "witskit.units.unit_category('M')\n"
        "assert 'pint' not in sys.modules, 'pint imported by a table lookup'\n"
        "witskit.units.convert(1.0, 'M', 'F')\n"
        "assert 'pint' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --- documentation -----------------------------------------------------------------------------


def test_module_doctests() -> None:
    failures, tried = doctest.testmod(units, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0


def test_docs_examples_run() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {})


def test_docs_table_lists_every_unit() -> None:
    rows = [line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    cells = {cell for row in rows for cell in re.findall(r"`([^`]+)`", row)}
    missing = [u for u in known_units() if u not in cells]
    assert not missing
