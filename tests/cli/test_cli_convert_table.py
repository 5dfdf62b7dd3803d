"""``witskit convert`` answers from the generated unit table, which agrees with pint."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from witskit import units
from witskit.cli._convert import TABLE, table_convert

FACTORS = json.loads(TABLE.read_text(encoding="utf-8"))["factors"]


@pytest.mark.parametrize("pair", sorted(FACTORS))
def test_the_table_agrees_with_pint(pair: str) -> None:
    src, dst = pair.split(">")
    for value in (-40.0, 0.0, 1.0, 100.0, 3650.4):
        fast = table_convert(value, src, dst)
        assert fast is not None
        assert math.isclose(fast, units.convert(value, src, dst), rel_tol=1e-9, abs_tol=1e-9), (pair, value)


def test_pairs_outside_the_table_and_unknown_units_go_to_pint() -> None:
    assert table_convert(1.0, "M", "IN") is None
    assert table_convert(1.0, "M", "NOPE") is None
    assert table_convert(5.0, "ft", "F") == 5.0  # spellings are the dictionary's


def run_convert(*args: str) -> tuple[str, bool]:
    """witskit convert ARGS in a fresh interpreter: (what it printed, whether pint was imported)."""
    code = (
        "import sys\n"
        "from witskit.cli import main\n"
        f"sys.argv = ['witskit', 'convert', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('pint' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    *printed, pint = proc.stdout.split()
    return " ".join(printed), pint == "True"


def test_convert_does_not_start_pint_for_a_table_pair() -> None:
    assert run_convert("100", "DEGC", "DEGF") == ("212", False)
    assert run_convert("1", "KDN", "KLB") == ("2.248089431", False)
    assert run_convert("1", "M", "IN") == ("39.3700787402", True)  # any other pair: pint
