"""The real entry point, in a subprocess: ``python -m witskit`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from witskit._version import __version__


def witskit(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "witskit", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_version() -> None:
    proc = witskit("--version")
    assert proc.returncode == 0
    assert proc.stdout.decode().strip() == f"witskit {__version__}"


def test_simulate_piped_into_decode() -> None:
    sim = witskit("simulate", "--frames", "5", "--records", "1")
    assert sim.returncode == 0
    proc = witskit("decode", "-", "--format", "jsonl", stdin=sim.stdout)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 5
    assert records[0]["points"][0] == {
        "code": "0101",
        "name": "WID",
        "value": "WITSKIT-SIM-1",
        "raw": "WITSKIT-SIM-1",
        "unit": "----",
    }


def test_missing_file_is_one_clean_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wits"
    proc = witskit("decode", str(missing))
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "no such file" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert proc.stdout == b""


def test_strict_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "bad.wits"
    path.write_bytes(b"&&\r\n01083650.40\r\n!!\r\nnoise\r\n&&\r\n01081\r\n!!\r\n")
    assert witskit("decode", str(path), "-f", "jsonl").returncode == 0
    proc = witskit("decode", str(path), "-f", "jsonl", "--strict")
    assert proc.returncode == 1
    assert f"{path}:4:" in proc.stderr.decode()


def test_validate_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "bad.wits"
    path.write_bytes(b"&&\r\n9999 1\r\n!!\r\n")
    proc = witskit("validate", str(path))
    assert proc.returncode == 1
    assert f"{path}:2: unknown code 9999" in proc.stdout.decode()


def test_importing_witskit_does_not_import_the_cli_stack() -> None:
    code = (
        "import sys, witskit; print(sorted(m for m in ('typer', 'rich', 'witskit.cli') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60)
    assert proc.stdout.decode().strip() == "[]"
