"""What real rigs send, end to end through the CLI (issue 10): ``decode`` to JSON Lines, and
``import`` into SQLite then ``query``. Every coded line is a point; mismatches are still reported."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app

runner = CliRunner()

BOM = b"\xef\xbb\xbf"


def frame(*lines: str) -> bytes:
    return ("&&\r\n" + "\r\n".join(lines) + "\r\n!!\r\n").encode("utf-8")


#: A Windows-written capture: a BOM, Pason's header line, decimals in integer items, a date-time
#: text in SQID, UTF-8 text, and five frames in the same DATE/TIME second (a 5 Hz rig).
CAPTURE = BOM + b"".join(
    frame(
        "EDR PASON",
        "0101Sécurité 7",
        "0105260315",
        "0106093015",
        "0104260315 093015",
        f"0108{1000 + i}.5",
        f"012095.{i}",
        "01281.06",
        "013730.22",
    )
    for i in range(5)
)


pytestmark = pytest.mark.usefixtures("data_dir")


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "pason.wits"
    path.write_bytes(CAPTURE)
    return path


def test_decode_keeps_every_coded_line_as_a_point(capture: Path) -> None:
    result = runner.invoke(app, ["decode", str(capture), "--format", "jsonl"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5
    first = records[0]
    values = {p["code"]: p["value"] for p in first["points"]}
    assert values == {
        "0101": "Sécurité 7",
        "0105": 260315,
        "0106": 93015,
        "0104": "260315 093015",
        "0108": 1000.5,
        "0120": 95.0,
        "0128": 1.06,
        "0137": 30.22,
    }
    assert first["headers"] == ["EDR PASON"]
    assert [r["points"][5]["value"] for r in records] == [95.0, 95.1, 95.2, 95.3, 95.4]
    assert len(first["errors"]) == 3  # 0104 text, 0128 and 0137 decimals; 0120 95.0 is integral
    # Each mismatch is reported on stderr with its input line; the BOM and the header are not.
    err = result.stderr
    assert f"{capture}:6: '260315 093015' is not a number, for numeric item 0104 SQID" in err
    assert f"{capture}:9: non-integral value '1.06' for integer item 0128 MFOP" in err
    assert "garbage" not in err
    assert "4-digit" not in err


def test_import_then_query_shows_every_value_in_receive_order(capture: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    result = runner.invoke(app, ["import", str(capture), "--db", db])
    assert result.exit_code == 0, result.stderr
    assert "5 frames, 40 points (40 new)" in result.stderr

    result = runner.invoke(app, ["query", "--db", db, "--symbols", "0120,0128,0137,0104,0101", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["value"] for r in rows if r["code"] == "0120"] == [95, 95.1, 95.2, 95.3, 95.4]
    assert {r["value"] for r in rows if r["code"] == "0128"} == {1.06}
    assert {r["value"] for r in rows if r["code"] == "0137"} == {30.22}
    assert {r["value"] for r in rows if r["code"] == "0104"} == {"260315 093015"}
    assert {r["value"] for r in rows if r["code"] == "0101"} == {"Sécurité 7"}

    result = runner.invoke(app, ["query", "--db", db, "--symbols", "DBTM", "-f", "csv"])
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    depths = [row["value"] for row in table if row["code"] == "0108"]
    assert depths == ["1000.5", "1001.5", "1002.5", "1003.5", "1004.5"]
