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


def test_stream_db_stopped_while_draining_into_a_down_sink_exits_cleanly(tmp_path: Path) -> None:
    # The source ends, the sink is down, so the pipeline waits (drain_timeout) for the sink; a
    # Ctrl-C or SIGTERM then printed "_GatheringFuture exception was never retrieved" and a
    # traceback. Now: the usual exit status and the spool's note, nothing else.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: the database refuses connections
    env = {**os.environ, "WITS_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "witskit", "stream", "sim://rig-1?frames=2&rate=50",
            "--db", f"postgresql://wits@127.0.0.1:{port}/wits", "-f", "jsonl",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []

    def pump(stream: Any, into: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            into.append(raw.decode(errors="replace").rstrip("\n"))

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 20
        while (len(out) < 2 or not any("sink" in line for line in err)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the source has ended: the pipeline waits for the sink
        assert proc.poll() is None, (out, err)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert len(out) == 2, out
    assert not any("Traceback" in line or "never retrieved" in line for line in err), "\n".join(err)
    assert any("2 frames wait in the spool" in line for line in err), err
    assert proc.returncode == 143, err
