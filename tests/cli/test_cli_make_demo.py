"""``make demo`` from a clone keeps its data in the clone, and a restart says how to get in.

The Makefile runs as written, on the test's own environment (``-o`` tells make the venv is
installed, so nothing is installed), from a copy of the clone's Makefile in a temporary directory.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_READY = "WitsKit is serving at"


def make_demo(clone: Path, env: dict[str, str]) -> str:
    """Run ``make demo`` until the service is up; stop it; return what it printed on stderr."""
    venv = Path(sys.executable).parent.parent
    log_path = clone / "demo.err"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                "make",
                "--no-print-directory",
                "-o",
                f"{venv}/.installed-dev",
                "demo",
                f"VENV={venv}",
                "DEMO_ARGS=--port 0",
            ],
            cwd=clone,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # make and witskit in one group, stopped together
        )
        try:
            deadline = time.monotonic() + 60
            while _READY not in log_path.read_text(errors="replace"):
                assert proc.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "make demo did not start"
                time.sleep(0.1)
            time.sleep(0.3)  # the lines after the URL
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    return log_path.read_text(errors="replace")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_keeps_its_data_in_the_clone_and_a_restart_says_how_to_get_in(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(ROOT / "Makefile", clone / "Makefile")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), WITS_METRICS_ENABLED="false")
    # A new user runs make demo without activating .venv: witskit is not on their PATH.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)

    first = make_demo(clone, env)
    assert "Its password is shown only this once" in first
    change = re.search(r"^Change it with: (\S+) users set-password admin ", first, flags=re.M)
    assert change is not None, first[-2000:]
    assert shutil.which(change.group(1), path=env["PATH"]) is not None, change.group(0)  # runnable as printed
    assert (clone / ".witskit" / "witskit.db").exists()
    assert not (home / ".local" / "share" / "witskit").exists()  # nothing in the per-user directory
    assert "/.witskit/" in (ROOT / ".gitignore").read_text()

    second = make_demo(clone, env)
    assert "shown only this once" not in second
    match = re.search(r"^\s+(\S*witskit users set-password admin --generate --db \S+)$", second, flags=re.M)
    assert match is not None, second[-2000:]
    # The command printed works as it is, from another shell (without the demo's environment, and
    # without .venv on PATH: the command names the program make demo ran).
    argv = shlex.split(match.group(1))
    reset = subprocess.run(
        argv,
        env={k: v for k, v in env.items() if k != "WITS_DATA_DIR"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reset.returncode == 0, reset.stderr
    assert len(reset.stdout.strip()) >= 16  # the new password, shown once
    assert "password of admin changed" in reset.stderr
