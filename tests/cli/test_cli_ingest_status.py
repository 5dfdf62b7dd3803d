"""``witskit stream --db``/``--config`` tell the operator what happens, with the time of day.

Before the fix the pipeline path lost the reason and the delay of each failed connection attempt,
and no status line said when it happened.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_stream_db_reports_each_failed_attempt_with_reason_delay_and_time(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    env = {**os.environ, "WITS_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "witskit", "stream", f"tcp://127.0.0.1:{port}",
            "--db", f"sqlite:///{tmp_path / 'rig.db'}", "-f", "jsonl",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    lines: list[str] = []
    assert proc.stderr is not None

    def pump() -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            lines.append(raw.decode(errors="replace").rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    retry = re.compile(rf"{STAMP} disconnected: .*refused.*; reconnecting in \d+\.\d s")
    try:
        deadline = time.monotonic() + 20
        while not any(retry.fullmatch(line) for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
        proc.stderr.close()
    assert any(retry.fullmatch(line) for line in lines), lines
    assert any(
        re.fullmatch(rf"{STAMP} connecting to tcp://127\.0\.0\.1:{port} \.\.\.", ln) for ln in lines
    ), lines


def test_stream_db_whose_source_fails_for_good_exits_2_not_0(tmp_path: Path, monkeypatch: Any) -> None:
    # Before the fix the pipeline logged "source ... stopped" and the command exited 0, as if the
    # stream had ended normally.
    from typer.testing import CliRunner

    from witskit.cli import app

    monkeypatch.setenv("WITS_DATA_DIR", str(tmp_path / "data"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}?reconnect=0"
    result = CliRunner().invoke(
        app, ["stream", url, "--db", f"sqlite:///{tmp_path / 'rig.db'}", "-f", "jsonl"]
    )
    assert result.exit_code == 2, result.output
    assert f"error: source tcp://127.0.0.1:{port} stopped:" in result.stderr
    assert "connection refused" in result.stderr
