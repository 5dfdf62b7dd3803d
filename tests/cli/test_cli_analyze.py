"""witskit analyze rig-state and analyze kpi, from a file and from the store, through the real entry point."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.analytics import RigState
from witskit.cli import app
from witskit.sim.model import DrillingSimulator

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("data_dir")
FRAMES = 3000


@pytest.fixture
def rig(tmp_path: Path) -> Path:
    path = tmp_path / "rig.wits"
    path.write_bytes(b"".join(DrillingSimulator(11, all_states=True, trip_every_stands=2).frames(FRAMES)))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_rig_state_csv_has_one_row_per_record_1_frame(rig: Path) -> None:
    code, out, err = invoke("analyze", "rig-state", str(rig))
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["time", "state"]
    assert len(rows) == 1 + FRAMES  # records 2 and 8 are in the file too, and give no row
    assert rows[1][0] == "2026-01-01T06:00:00+00:00"
    assert datetime.fromisoformat(rows[-1][0]).tzinfo is not None
    assert {r[1] for r in rows[1:]} <= {s.value for s in RigState}
    assert rows[100][1] == "rotary_drilling"


def test_rig_state_from_the_store_matches_the_file(rig: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    code, _, err = invoke("import", str(rig), "--db", db, "--source", "rig-7")
    assert code == 0, err
    code, from_file, err = invoke("analyze", "rig-state", str(rig), "--format", "jsonl")
    assert code == 0, err
    out_file = tmp_path / "states.jsonl"
    code, _, err = invoke(
        "analyze", "rig-state", "--db", db, "--source", "rig-7", "--format", "jsonl", "-o", str(out_file)
    )
    assert code == 0, err
    assert out_file.read_text() == from_file
    code, out, err = invoke(
        "analyze",
        "rig-state",
        "--db",
        db,
        "--source",
        "rig-7",
        "--format",
        "table",
        "--start",
        "2026-01-01T06:10:00+00:00",
        "--end",
        "2026-01-01T06:10:02+00:00",
    )
    assert code == 0, err
    # A range starts afresh: its first frame has no speed yet, so it is unknown.
    assert out.splitlines()[1:] == [
        "2026-01-01T06:10:00+00:00 unknown",
        "2026-01-01T06:10:01+00:00 rotary_drilling",
    ]
    code, _, err = invoke("analyze", "rig-state", "--db", db, "--source", "nope")
    assert code == 2
    assert "no source named 'nope'" in err
    assert "rig-7" in err


def test_kpi_json_and_table(rig: Path) -> None:
    code, out, err = invoke("analyze", "kpi", str(rig), "--format", "json", "--section", "deep:5600-9000")
    assert code == 0, err
    report = json.loads(out)
    assert report["units"] == {"depth": "ft", "speed": "ft/h"}
    total = report["total"]
    assert total["on_bottom_hours"]["rotary"] > 0
    assert total["footage"]["total"] > 0
    assert set(report["sections"]) == {"deep"}
    code, out, err = invoke("analyze", "kpi", str(rig))
    assert code == 0, err
    assert out.splitlines()[1].startswith("range")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "rig-state"], "give a WITS file PATH or --db URL"),
        (["analyze", "rig-state", "missing.wits"], "missing.wits: no such file"),
        (["analyze", "rig-state", "--db", "sqlite:///x.db"], "--db needs --source"),
        (["analyze", "kpi", "missing.wits", "--section", "x"], "expected NAME:TOP-BOTTOM"),
        (["analyze", "kpi", "x.wits", "--source", "a"], "go with --db"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""
