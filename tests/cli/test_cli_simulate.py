"""``witskit simulate`` and ``witskit demo``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app
from witskit.protocol import DecodedFrame, WITSDecoder, iter_decode

runner = CliRunner()


def decoded(data: bytes, *, metric: bool = False) -> list[DecodedFrame]:
    out = []
    for event in iter_decode(data, decoder=WITSDecoder(use_metric_units=metric)):
        assert isinstance(event, DecodedFrame), event
        assert event.errors == []
        out.append(event)
    return out


def test_simulate_writes_decodable_frames_to_stdout() -> None:
    result = runner.invoke(app, ["simulate", "--frames", "5", "--records", "1"])
    assert result.exit_code == 0
    frames = decoded(result.stdout_bytes)
    assert len(frames) == 5
    assert {f.codes[0][:2] for f in frames} == {"01"}
    assert b"\r\n" in result.stdout_bytes


def test_simulate_default_is_60_frames_and_reproducible() -> None:
    first = runner.invoke(app, ["simulate"]).stdout_bytes
    again = runner.invoke(app, ["simulate"]).stdout_bytes
    assert first == again
    assert sum(1 for f in decoded(first) if f.codes[0] == "0101") == 60
    other_seed = runner.invoke(app, ["simulate", "--seed", "9"]).stdout_bytes
    assert other_seed != first


def test_simulate_options(tmp_path: Path) -> None:
    out = tmp_path / "sim.wits"
    result = runner.invoke(
        app,
        [
            "simulate",
            "-n",
            "4",
            "--rate",
            "2",
            "--records",
            "1,8",
            "--line-ending",
            "lf",
            "--metric",
            "--start",
            "2024-05-01T06:00:00Z",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0
    assert result.stdout_bytes == b""
    data = out.read_bytes()
    assert b"\r" not in data
    frames = decoded(data, metric=True)
    rec1 = [f for f in frames if f.codes[0] == "0101"]
    assert [f.timestamp.isoformat() for f in rec1] == [
        "2024-05-01T06:00:00+00:00",
        "2024-05-01T06:00:00+00:00",  # 2 Hz: two frames per second (the clock has 1 s resolution)
        "2024-05-01T06:00:01+00:00",
        "2024-05-01T06:00:01+00:00",
    ]
    assert {f.codes[0][:2] for f in frames} <= {"01", "08"}


def test_simulate_realtime_paces_the_frames() -> None:
    start = time.monotonic()
    result = runner.invoke(app, ["simulate", "-n", "4", "--rate", "20", "--records", "1", "--realtime"])
    elapsed = time.monotonic() - start
    assert result.exit_code == 0
    assert len(decoded(result.stdout_bytes)) == 4
    assert elapsed >= 0.15  # 3 intervals of 50 ms


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--records", "1,x"], "--records"),
        (["--records", "3"], "records must be among"),
        (["--start", "yesterday"], "--start"),
        (["--rate", "0"], "--rate"),
        (["--line-ending", "crcr"], ""),
    ],
)
def test_simulate_bad_options_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.stdout_bytes == b""


def test_demo_runs_fast_and_summarises() -> None:
    start = time.monotonic()
    result = runner.invoke(app, ["demo"], env={"COLUMNS": "200"})
    elapsed = time.monotonic() - start
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("0108", "DBTM", "Depth Bit", "Frames", "Points", "Errors", "Time span", "record 1: 120"):
        assert text in out
    assert elapsed < 2.0


def test_demo_metric() -> None:
    result = runner.invoke(app, ["demo", "--frames", "10", "--metric"])
    assert result.exit_code == 0
    assert "KDN" in result.stdout
