"""The public API is exactly what __all__ says (httpx's test_exported_members, for witskit)."""

from __future__ import annotations

import subprocess
import sys
import types

import witskit

WITSKIT_0_1_NAMES = {
    "decode_frame",
    "decode_file",
    "split_multiple_frames",
    "validate_wits_frame",
    "WITSDecoder",
    "WITSFrame",
    "DecodedFrame",
    "DecodedData",
    "WITSSymbol",
    "WITS_SYMBOLS",
    "get_symbol_by_code",
    "search_symbols",
    "UnitConverter",
    "ConversionError",
    "get_record_types",
    "get_symbols_by_record_type",
    "get_record_description",
}


def test_all_matches_the_public_names() -> None:
    # Submodules appear as attributes once imported (by this or another test); they are not API names.
    public = {
        name
        for name in dir(witskit)
        if not name.startswith("_") and not isinstance(getattr(witskit, name), types.ModuleType)
    }
    assert set(witskit.__all__) - {"__version__", "__author__", "__license__"} == public


def test_everything_in_all_exists_and_is_documented() -> None:
    for name in witskit.__all__:
        obj = getattr(witskit, name)
        if callable(obj):
            assert obj.__doc__, name


def test_witskit_0_1_names_are_still_exported() -> None:
    assert set(witskit.__all__) >= WITSKIT_0_1_NAMES


def test_importing_witskit_pulls_no_heavy_dependency() -> None:
    heavy = ("pint", "typer", "rich", "dataclasses", "asyncio")
    code = f"import sys, witskit; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
