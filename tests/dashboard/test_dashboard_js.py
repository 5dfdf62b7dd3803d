"""The dashboard's DOM-free JavaScript (scales, view window, loader, rig picker, readings), tested
with ``node --test``.

The tests are ``tests/dashboard/js/*.test.mjs``; they import the served modules as they are (plain
ES modules, no build). Without Node they are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.ci import in_ci

JS_TESTS = Path(__file__).with_name("js")
STATIC_JS = Path(__file__).resolve().parents[2] / "src" / "witskit" / "service" / "static" / "js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if in_ci():
            pytest.fail("CI=true and node is not installed: the dashboard's JavaScript is untested")
        pytest.skip("node is not installed (Node 18 or later runs tests/dashboard/js)")
    return node


def test_the_pure_modules_pass_their_node_tests() -> None:
    node = _node()
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no JavaScript tests in {JS_TESTS}"
    # Local time is part of what the time labels show: the tests expect UTC.
    env = {**os.environ, "TZ": "UTC", "NODE_OPTIONS": ""}
    result = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert "# fail 0" in result.stdout


def test_the_dashboard_channels_know_which_items_are_integers() -> None:
    """``integer`` in store.js's CHANNELS (a decimal the rig sends in such an item is shown as
    sent, issue 10) matches the symbol table, so a channel added later cannot round it away."""
    from witskit.symbols import default_table

    store = STATIC_JS / "store.js"
    script = (
        f"import {{ CHANNELS }} from {json.dumps(store.as_uri())};\nconsole.log(JSON.stringify(CHANNELS));"
    )
    result = subprocess.run(
        [_node(), "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "NODE_OPTIONS": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    channels = json.loads(result.stdout)
    table = default_table()
    got = {c["code"]: bool(c.get("integer")) for c in channels}
    want = {c["code"]: table[c["code"]].data_type.is_integer for c in channels}
    assert got == want
    assert any(want.values())  # rotary RPM (0120) is a short integer item
