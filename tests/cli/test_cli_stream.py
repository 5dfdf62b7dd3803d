"""``witskit stream`` and the serving modes of ``witskit simulate``, end to end.

The rig is a real ``witskit simulate --listen tcp://127.0.0.1:0`` subprocess (its stderr gives the
bound port); ``stream`` runs through the CLI's argv entry point, in process or as a subprocess when
a signal has to be sent to it. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from typer.testing import CliRunner

from witskit.cli import app
from witskit.protocol import WITSFrame

runner = CliRunner()
WAIT = 20.0  # upper bound for a subprocess to start or answer; normally well under a second
WITSKIT = [sys.executable, "-m", "witskit"]


class Server:
    """A ``witskit simulate`` rig server in a subprocess, with its stderr collected by a thread.

    ``command`` runs another subcommand the same way (``stream`` of a listener, for one).
    """

    def __init__(self, *args: str, command: str = "simulate") -> None:
        self.proc = subprocess.Popen(
            [*WITSKIT, command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` stderr lines matching ``pattern`` (waiting up to WAIT)."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = [m for line in self.lines if (m := re.search(pattern, line))]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                assert left > 0, self.lines
                assert "<eof>" not in self.lines, self.lines
                self._changed.wait(left)

    def ports(self, count: int = 1) -> list[int]:
        return [int(m.group(1)) for m in self.wait_for(r"listening on tcp://127\.0\.0\.1:(\d+)", count)]

    def stop(self) -> int:
        """SIGTERM: the server closes its links and exits 143."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._thread.join(WAIT)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            assert self.proc.stderr is not None
            self.proc.stderr.close()
        return status


@contextlib.contextmanager
def rig(*args: str) -> Iterator[Server]:
    server = Server(*args)
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# stream ------------------------------------------------------------------------------------------
def test_stream_prints_n_json_lines_and_exits_0() -> None:
    with rig("--listen", "tcp://127.0.0.1:0", "--rate", "20") as server:
        (port,) = server.ports()
        url = f"tcp://127.0.0.1:{port}"
        result = runner.invoke(app, ["stream", url, "-n", "5", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    records = [json.loads(line) for line in lines]
    assert all(r["source"] == url for r in records)
    assert records[0]["points"][0]["value"] == "WITSKIT-SIM-1"
    assert lines[0] == json.dumps(records[0], separators=(",", ":"))  # compact, as decode writes it
    assert f"connecting to {url}" in result.stderr
    assert f"connected to {url}" in result.stderr


def test_stream_csv_and_table_formats() -> None:
    with rig("--listen", "tcp://127.0.0.1:0", "--rate", "20", "--records", "1", "--pason") as server:
        (port,) = server.ports()
        url = f"tcp://127.0.0.1:{port}"
        csv_result = runner.invoke(app, ["stream", url, "-n", "2", "-f", "csv"])
        table_result = runner.invoke(app, ["stream", url, "-n", "3"])
    assert csv_result.exit_code == 0, csv_result.output
    rows = csv_result.stdout.splitlines()
    assert rows[0] == "time,source,code,mnemonic,value,text,unit"
    assert rows[1].startswith("2026-01-01T06:00:")
    assert rows[1].endswith(",1984,VEN1,,PASON/EDR,----")  # the Pason vendor line
    assert sum(1 for row in rows if ",0101,WID," in row) == 2
    assert table_result.exit_code == 0, table_result.output
    lines = table_result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert re.match(r"2026-01-01 06:\d\d:\d\d rec 1 #\d+  DBTM=\d+\.\d+ F ", line), line
        assert "PASON" not in line


def test_stream_reports_frame_errors_and_reconnects() -> None:
    args = ("--listen", "tcp://127.0.0.1:0", "--rate", "50", "--records", "1", "--drop-every", "3")
    with rig(*args, "--garbage-rate", "0.5", "--seed", "2") as server:
        (port,) = server.ports()
        result = runner.invoke(app, ["stream", f"tcp://127.0.0.1:{port}", "-n", "8", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 8
    assert "stream ended inside a frame" in result.stderr  # the half frame of each drop
    assert "garbage outside any frame" in result.stderr
    assert "disconnected: " in result.stderr
    assert "closed by the peer; reconnecting now" in result.stderr


def test_stream_unreachable_with_reconnect_disabled_exits_2() -> None:
    url = f"tcp://127.0.0.1:{free_port()}?reconnect=0"
    result = runner.invoke(app, ["stream", url, "-f", "jsonl"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "error:" in result.stderr
    assert "connection refused" in result.stderr


def test_stream_bad_url_and_bad_zone_are_usage_errors() -> None:
    result = runner.invoke(app, ["stream", "udp://127.0.0.1:5000"])
    assert result.exit_code == 2
    assert "unknown scheme 'udp'" in result.stderr
    result = runner.invoke(app, ["stream", "tcp://127.0.0.1:5000", "--tz", "Mars/Olympus"])
    assert result.exit_code == 2
    assert "unknown time zone" in result.stderr


def test_stream_a_file_to_its_end(tmp_path: Path) -> None:
    sample = tmp_path / "sample.wits"
    assert (
        runner.invoke(app, ["simulate", "--frames", "4", "--records", "1", "-o", str(sample)]).exit_code == 0
    )
    result = runner.invoke(app, ["stream", sample.as_uri(), "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 4
    assert result.stderr == ""  # a file has no link to report on


def test_stream_ctrl_c_exits_130() -> None:
    with rig("--listen", "tcp://127.0.0.1:0", "--rate", "20") as server:
        (port,) = server.ports()
        # As a context manager, so its pipes are closed and the process reaped even on a timeout
        # (a leaked pipe would surface as a ResourceWarning in some later test).
        with subprocess.Popen(
            [*WITSKIT, "stream", f"tcp://127.0.0.1:{port}", "-f", "jsonl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # a frame has been printed: the stream is running
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        server.wait_for(r"closed after \d+ frames: closed by the client")
    assert json.loads(first)["points"]
    assert proc.returncode == 130
    assert b"interrupted" in err
    assert b"Traceback" not in err
    del out


def test_stream_send_and_receive_rig_with_requests() -> None:
    with rig("--listen", "tcp://127.0.0.1:0", "--send-and-receive", "--sar-packets", "8") as server:
        (port,) = server.ports()
        url = f"tcp://127.0.0.1:{port}?request=1&request_interval=0.5"
        result = runner.invoke(app, ["stream", url, "-n", "8", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 8


# simulate as a server ----------------------------------------------------------------------------
def test_simulate_serves_three_rigs_and_stops_cleanly_on_sigterm() -> None:
    server = Server("--listen", "tcp://127.0.0.1:0", "--rigs", "3", "--rate", "20")
    try:
        ports = server.ports(3)
        assert len(set(ports)) == 3
        wells = []
        for port in ports:
            result = runner.invoke(app, ["stream", f"tcp://127.0.0.1:{port}", "-n", "1", "-f", "jsonl"])
            assert result.exit_code == 0, result.output
            wells.append(json.loads(result.stdout)["points"][0]["value"])
        assert wells == ["WITSKIT-SIM-1", "WITSKIT-SIM-2", "WITSKIT-SIM-3"]
    finally:
        status = server.stop()
    assert status == 143
    assert any(re.fullmatch(r"served 3 session\(s\), \d+ frames", line) for line in server.lines)


async def test_simulate_connect_pushes_into_a_listener() -> None:
    from witskit.transport.listener import ListenerSource

    expected = runner.invoke(app, ["simulate", "--frames", "3", "--records", "1"]).stdout_bytes
    async with ListenerSource("127.0.0.1", 0) as listener:
        proc = await asyncio.create_subprocess_exec(
            *WITSKIT,
            "simulate",
            "--connect",
            f"tcp://127.0.0.1:{listener.port}",
            "--frames",
            "3",
            "--records",
            "1",
            "--no-realtime",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        frames: list[bytes] = []
        try:
            async with asyncio.timeout(WAIT):
                async for event in listener:
                    assert isinstance(event, WITSFrame), event
                    frames.append(event.raw + b"\r\n")
                    if len(frames) == 3:
                        break
            _, err = await asyncio.wait_for(proc.communicate(), WAIT)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert b"".join(frames) == expected
    assert proc.returncode == 0, err
    assert b"pushing 1 rig(s) to tcp://127.0.0.1:" in err


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are posix")
def test_simulate_serial_writes_to_a_pty() -> None:
    expected = runner.invoke(app, ["simulate", "--frames", "3", "--records", "1"]).stdout_bytes
    master, slave = os.openpty()
    os.set_blocking(master, False)
    received = bytearray()
    try:
        proc = subprocess.run(
            [
                *WITSKIT,
                "simulate",
                "--serial",
                os.ttyname(slave),
                "--frames",
                "3",
                "--records",
                "1",
                "--no-realtime",
            ],
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(master, 65536):
                received += chunk
    except OSError as exc:  # EIO: nothing more on the master side
        if exc.errno != errno.EIO:
            raise
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stderr
    assert bytes(received) == expected


def test_simulate_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with rig(
        "--listen", "tls://127.0.0.1:0", "--cert", str(tmp_path / "server.pem"), "--rate", "20"
    ) as server:
        (match,) = server.wait_for(r"listening on tls://127\.0\.0\.1:(\d+)")
        url = f"tls://127.0.0.1:{match.group(1)}?ca={tmp_path / 'ca.pem'}"
        result = runner.invoke(app, ["stream", url, "-n", "2", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pason"], "--pason: only when serving"),
        (["--drop-every", "3", "--split-writes"], "--drop-every, --split-writes: only when serving"),
        (["--rigs", "2"], "--rigs: only when serving"),
        (["--listen", "ftp://127.0.0.1:0"], "is not tcp://host:port or tls://host:port"),
        (["--listen", "tls://127.0.0.1:0"], "needs --cert"),
        (["--listen", "tcp://127.0.0.1:0", "--cert", "x.pem"], "--cert and --key are for --listen tls://"),
        (["--listen", "tcp://127.0.0.1:0", "-o", "out.wits"], "cannot be combined"),
        (["--connect", "tcp://127.0.0.1"], "needs a host and a port"),
        (["--serial", "/nonexistent/tty"], "cannot open"),
    ],
)
def test_simulate_serving_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_simulate_port_in_use_exits_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["simulate", "--listen", f"tcp://127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert "cannot listen" in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_stream_db_with_an_output_that_cannot_be_written_keeps_storing_and_says_so(tmp_path: Path) -> None:
    # Found by bench/bench_faults.py: with stdout on a full disk, `stream --db` stored the first
    # frame, then its read loop died on the print's OSError: no word, exit 0, the rest not read.
    # Printing is secondary to storing: it says so once, keeps storing, and fails at the end.
    import sqlite3

    db = tmp_path / "rig.db"
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [*WITSKIT, "stream", "sim://rig-1?rate=1000&frames=50", "--db", f"sqlite:///{db}", "-f", "jsonl"],
            stdout=full,
            stderr=subprocess.PIPE,
            env={**os.environ, "WITS_DATA_DIR": str(tmp_path / "data")},
            timeout=WAIT,
            check=False,
        )
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert len(re.findall(r"cannot write the frames to standard output", err)) == 1, err
    assert "No space left on device" in err
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (stored,) = conn.execute(
            "SELECT count(DISTINCT value_num) FROM points WHERE code = '0104'"
        ).fetchone()
    assert stored == 50
