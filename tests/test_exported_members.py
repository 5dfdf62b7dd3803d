"""The public API is exactly what __all__ says (httpx's test_exported_members, for witskit)."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import witskit
import witskit.errors

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


#: Exceptions defined outside witskit.errors (their layers import it, not the other way round).
LAYER_ERRORS = [
    ("witskit.storage", "StorageError"),
    ("witskit.storage.errors", "StorageError"),
    ("witskit.storage.spool", "SpoolError"),
    ("witskit.pipeline.records", "SpoolRecordError"),
    ("witskit.security.auth", "AuthError"),
]


@pytest.mark.parametrize(("module", "name"), LAYER_ERRORS)
def test_a_layers_error_is_a_witskit_error(module: str, name: str) -> None:
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, witskit.WitsKitError)
    with pytest.raises(witskit.WitsKitError):  # so one `except WitsKitError` catches it
        raise error("x")


def test_every_direct_witskit_error_is_drawn_in_the_tree() -> None:
    # Each class whose base is WitsKitError itself, wherever it is defined, is a branch of the tree
    # drawn in witskit/errors.py's docstring, so that tree is the whole picture.
    drawn = set(re.findall(r"[├└]── (\w+)", witskit.errors.__doc__ or ""))
    direct = {
        node.name
        for path in Path(witskit.__file__).parent.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "WitsKitError" for b in node.bases)
    }
    assert direct, "the scan found no exception at all"
    assert direct <= drawn, f"draw these in witskit/errors.py: {sorted(direct - drawn)}"
