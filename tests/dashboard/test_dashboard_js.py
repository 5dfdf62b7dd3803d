"""The dashboard's pure JavaScript (``static/js/scales.js``), tested with ``node --test``.

The tests are ``tests/dashboard/js/*.test.mjs``; they import the served modules as they are (plain
ES modules, no build). Without Node they are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dashboard_helpers import in_ci

JS_TESTS = Path(__file__).with_name("js")


def test_the_pure_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        if in_ci():
            pytest.fail("CI=true and node is not installed: the dashboard's JavaScript is untested")
        pytest.skip("node is not installed (Node 18 or later runs tests/dashboard/js)")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no JavaScript tests in {JS_TESTS}"
    # Local time is part of what the time labels show: the tests expect UTC.
    env = {**os.environ, "TZ": "UTC", "NODE_OPTIONS": ""}
    result = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert "# fail 0" in result.stdout
