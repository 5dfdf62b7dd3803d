"""``witskit stream URL --to SINK``: a relay (or any sink) named on the command line, no file needed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.commands import clean_env, run_witskit
from witskit.protocol import FrameParser, WITSFrame

pytestmark = pytest.mark.usefixtures("data_dir")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stream_to_wits_serve_relays_a_live_source(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "witskit", "stream", "sim://rig-1?rate=20&records=1",
        "--to", f"wits-serve://127.0.0.1:{port}", "-n", "60", "-f", "jsonl",
    ]  # fmt: skip
    with subprocess.Popen(
        command, env=clean_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + 20
        while True:
            try:
                consumer = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the relay never listened"
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        parser = FrameParser(source="consumer")
        frames: list[WITSFrame] = []
        with consumer:
            while len(frames) < 5:
                chunk = consumer.recv(65536)
                assert chunk
                frames += [e for e in parser.feed(chunk) if isinstance(e, WITSFrame)]
        assert proc.wait(timeout=30) == 0
    assert all(f.lines[0].startswith(b"01") for f in frames)


def test_a_bad_to_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_witskit(
        "stream", "sim://rig-1", "--to", "wits-serve://0.0.0.0:10002?codes=12", env=clean_env(), cwd=tmp_path
    )
    assert result.returncode == 2
    assert "codes='12' is not a comma-separated list of 4-digit codes" in result.stderr
    assert "Traceback" not in result.stderr
