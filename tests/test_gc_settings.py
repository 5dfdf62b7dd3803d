"""A ``witskit`` process collects cycles less often and never rescans what it loaded at start-up."""

from __future__ import annotations

import gc
import subprocess
import sys

from witskit._gc import THRESHOLDS, tune


def test_tune_freezes_what_is_loaded_and_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 1000  # the modules, classes and functions loaded so far
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_witskit_command_runs_with_them() -> None:
    code = (
        "import gc, sys; from witskit.cli import app, main; "
        "app.registered_commands.clear(); "
        "import typer; app.command('probe')(lambda: print(gc.get_threshold(), gc.get_freeze_count() > 0)); "
        "sys.argv = ['witskit', 'probe']; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == f"{THRESHOLDS} True"
