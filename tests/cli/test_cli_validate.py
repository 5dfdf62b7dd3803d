"""``witskit validate``: every problem with its input line, a summary, exit 1 on any problem."""

from __future__ import annotations

from pathlib import Path

from cli_samples import BAD_FILE, GARBAGE_LINE, UNKNOWN_LINE, frame_of, simulated
from typer.testing import CliRunner

from witskit.cli import app

runner = CliRunner()


def test_valid_file_exits_0_with_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "good.wits"
    path.write_bytes(simulated(5, records=(1,)))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert f"{path}: valid: 5 frames" in result.stdout
    assert "0 problem(s)" in result.stdout


def test_every_problem_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.wits"
    path.write_bytes(BAD_FILE)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}:{GARBAGE_LINE}: ")
    assert "garbage" in lines[0]
    assert lines[1].startswith(f"{path}:{UNKNOWN_LINE}: unknown code 9999")
    assert lines[-1] == f"{path}: INVALID: 3 frames, 15 points, 2 problem(s)"


def test_bad_values_and_cut_frames_are_problems_too(tmp_path: Path) -> None:
    data = (
        frame_of("01083650.40", "0113fast", "0102 1.5")  # lines 1-5: 0113 line 3, 0102 line 4
        + b"&&\r\n01083650.40\r\n"  # lines 6-7: a frame cut short by the next '&&'
        + frame_of("01083651.00", eol="\n")  # lines 8-10
    )
    path = tmp_path / "values.wits"
    path.write_bytes(data)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    out = result.stdout
    assert f"{path}:3: 'fast' is not a number" in out
    assert f"{path}:4: non-integral value '1.5'" in out
    assert f"{path}:6: frame cut short" in out
    assert "3 problem(s)" in out.splitlines()[-1]


def test_no_frames_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "empty.wits"
    path.write_bytes(b"")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "no WITS frames found" in result.stdout


def test_stdin_and_text() -> None:
    result = runner.invoke(app, ["validate", "-"], input=BAD_FILE)
    assert result.exit_code == 1
    assert f"<stdin>:{UNKNOWN_LINE}: unknown code 9999" in result.stdout
    result = runner.invoke(app, ["validate", "--text", r"&&\n01083650.40\n!!"])
    assert result.exit_code == 0
    assert "<text>: valid: 1 frames, 1 points, 0 problem(s)" in result.stdout


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.wits")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
