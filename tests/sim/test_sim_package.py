"""witskit.sim holds the simulator (model, source, server); the seed's witskit.simulator is a thin
alias, and transport neither holds nor imports any of it (issue 11, item 6)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import witskit.sim

TRANSPORT = Path(__file__).resolve().parents[2] / "src" / "witskit" / "transport"

#: Old path -> (new path, the public names the old path had before the move).
MOVED = {
    "witskit.simulator": (
        "witskit.sim.model",
        {"ACTIVITY_CODES", "DEFAULT_START", "DrillingSimulator", "Phase", "SimState"},
    ),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_re_export_the_same_objects(old: str) -> None:
    new, names_before = MOVED[old]
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert names_before <= set(old_module.__all__)
    assert set(old_module.__all__) <= set(new_module.__all__)
    for name in old_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), name
    assert new in (old_module.__doc__ or "")  # the shim says where the real code is


def test_the_package_exports_its_main_names_lazily() -> None:
    for name in witskit.sim.__all__:
        assert getattr(witskit.sim, name) is not None, name
    assert witskit.sim.DrillingSimulator is importlib.import_module("witskit.sim.model").DrillingSimulator
    with pytest.raises(AttributeError):
        witskit.sim.NoSuchName  # noqa: B018
    code = "import sys, witskit.sim; print(','.join(m for m in ('asyncio', 'ssl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_transport_imports_nothing_from_sim() -> None:
    assert not {"sim.py", "rigserver.py"} & {p.name for p in TRANSPORT.glob("*.py")}  # moved to witskit.sim
    for path in sorted(TRANSPORT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(
                n == "witskit.sim" or n.startswith(("witskit.sim.", "witskit.simulator")) for n in names
            ), f"{path.name}:{node.lineno} imports {names} (transport must not import the simulator)"


def test_sim_urls_open_without_importing_witskit_sim_first() -> None:
    # witskit/__init__.py names the scheme; open_source imports witskit.sim.source on first use.
    code = (
        "import sys\n"
        "from witskit.transport import open_source\n"
        "before = 'witskit.sim.source' in sys.modules\n"
        "source = open_source('sim://rig-4?rate=2')\n"
        "print(before, type(source).__module__, source.name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "witskit.sim.source", "rig-4"]
