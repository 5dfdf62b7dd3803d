"""What a person at a terminal sees: progress on long work (a real pty), and a taken port's fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.commands import run_on_a_terminal, run_witskit
from witskit.cli._decode import PROGRESS_THRESHOLD
from witskit.simulator import DrillingSimulator


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    out.update(
        WITS_DATA_DIR=str(tmp_path / "data"), WITS_METRICS_ENABLED="false", TERM="xterm", COLUMNS="100"
    )
    out.pop("NO_COLOR", None)
    return out


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A log just over the progress threshold (frames repeated: cheap to make)."""
    chunk = b"".join(DrillingSimulator(4, records=(1,)).frames(200))
    path = tmp_path / "big.wits"
    path.write_bytes(chunk * (PROGRESS_THRESHOLD // len(chunk) + 1))
    return path


@pytest.mark.parametrize(("command", "word"), [("decode", b"decoding"), ("validate", b"validating")])
def test_decode_and_validate_show_progress_on_a_terminal(
    command: str, word: bytes, big: Path, env: dict[str, str], tmp_path: Path
) -> None:
    argv = [command, str(big)] + (["-f", "jsonl"] if command == "decode" else [])
    status, seen = run_on_a_terminal(argv, env=env, cwd=tmp_path)
    assert status == 0, seen[-2000:]
    assert word + b" " + str(big).encode() in seen
    # ...and never when stderr is not a terminal.
    piped = subprocess.run(
        [sys.executable, "-m", "witskit", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert word not in piped.stderr


def test_query_shows_progress_on_a_terminal(env: dict[str, str], tmp_path: Path) -> None:
    small = tmp_path / "small.wits"
    small.write_bytes(b"".join(DrillingSimulator(4, records=(1,)).frames(100)))
    db = f"sqlite:///{tmp_path / 'w.db'}"
    imported = subprocess.run(
        [sys.executable, "-m", "witskit", "import", str(small), "--db", db],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    status, seen = run_on_a_terminal(["query", "--db", db, "-f", "csv"], env=env, cwd=tmp_path)
    assert status == 0, seen[-2000:]
    assert b"querying: " in seen
    assert b" rows" in seen
    piped = subprocess.run(
        [sys.executable, "-m", "witskit", "query", "--db", db, "-f", "csv"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"querying" not in piped.stderr


def test_a_taken_port_names_the_option_to_change_it(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_witskit("run", "--port", str(port), env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("error:"))
    assert f"127.0.0.1:{port}: address already in use" in line
    assert "--port" in line
    assert "Traceback" not in proc.stderr
