"""``validate_wits_frame`` and ``witskit validate`` accept and refuse the same frames.

Both run the same parser and decoder; this checks it on the cases that used to differ (a line
without a 4-digit code) and on the ones issue 10 added (decimals in integer items, vendor header
lines, a byte-order mark).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app
from witskit.protocol import validate_wits_frame

runner = CliRunner()

CASES = {
    "hello-world": (b"&&\nhello world\n!!", False),
    "good": (b"&&\r\n01083650.40\r\n011323.38\r\n!!\r\n", True),
    "decimal-in-integer-item": (b"&&\n012095.3\n!!\n", False),
    "text-in-numeric-item": (b"&&\n0108fast\n!!\n", False),
    "unknown-code": (b"&&\n99991\n!!\n", False),
    "pason-header": (b"&&\nEDR PASON\n01081.5\n!!\n", True),
    "bom": (b"\xef\xbb\xbf&&\n01081.5\n!!\n", True),
    "garbage-after": (b"&&\n01081\n!!\njunk\n", False),
    "cut": (b"&&\n01081\n", False),
    "empty": (b"&&\n!!\n", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_wits_frame_agrees_with_the_cli(case: str, tmp_path: Path) -> None:
    data, valid = CASES[case]
    path = tmp_path / f"{case}.wits"
    path.write_bytes(data)
    cli_ok = runner.invoke(app, ["validate", str(path)]).exit_code == 0
    assert cli_ok is valid
    assert validate_wits_frame(data) is valid
    assert validate_wits_frame(data.decode("latin-1")) is valid


def test_hello_world_is_not_a_valid_frame() -> None:
    assert not validate_wits_frame("&&\nhello world\n!!")


def test_two_good_frames_are_a_valid_file_but_not_one_frame(tmp_path: Path) -> None:
    data = b"&&\n01081\n!!\n&&\n01082\n!!\n"
    path = tmp_path / "two.wits"
    path.write_bytes(data)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    assert not validate_wits_frame(data)
