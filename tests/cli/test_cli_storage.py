"""witskit db upgrade, import, query and stream --db/--config, through the real entry point."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app
from witskit.simulator import DrillingSimulator

runner = CliRunner()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "rig.wits"
    path.write_bytes(b"".join(DrillingSimulator(5, records=(1,)).frames(200)))
    return path


pytestmark = pytest.mark.usefixtures("data_dir")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_is_idempotent_and_query_streams_every_format(sample: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    code, _, err = invoke("import", str(sample), "--db", db)
    assert code == 0, err
    assert "200 frames, 6000 points (6000 new)" in err
    code, _, err = invoke("import", str(sample), "--db", db)
    assert "(0 new)" in err

    code, out, _ = invoke("query", "--db", db, "--symbols", "DBTM,ROPA", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 400
    assert {r["mnemonic"] for r in rows} == {"DBTM", "ROPA"}
    assert rows[0]["source"] == "rig.wits"

    code, out, _ = invoke(
        "query", "--db", db, "--symbols", "0108", "-f", "jsonl", "--start", "2026-01-01T06:00:10"
    )
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 190
    assert records[0]["time"] == "2026-01-01T06:00:10+00:00"

    out_file = tmp_path / "r.parquet"
    code, _, err = invoke("query", "--db", db, "-f", "parquet", "-o", str(out_file))
    assert code == 0, err
    import pyarrow.parquet as pq

    table = pq.read_table(out_file)
    assert table.num_rows == 6000
    assert table.column_names == ["source", "time", "code", "name", "value_num", "value_text"]
    from witskit.storage import query_sync

    expected = [
        (r.source, r.time, r.code, r.name, r.value if not isinstance(r.value, str) else None, r.value)
        for r in query_sync(db)
    ]
    got = [
        (s, t, c, n, num, txt)
        for s, t, c, n, num, txt in zip(*(table.column(i).to_pylist() for i in range(6)), strict=True)
    ]
    assert [g[:5] for g in got] == [e[:5] for e in expected]
    assert [g[5] for g in got] == [e[5] if isinstance(e[5], str) else None for e in expected]

    code, out, err = invoke("query", "--db", db, "--limit", "5")
    assert "5995 more rows not shown" in err


def test_db_upgrade_and_missing_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'new.db'}"
    code, _, err = invoke("db", "upgrade", "--db", db)
    assert code == 0
    assert "schema at revision" in err
    code, _, err = invoke("db", "upgrade", "--db", db)
    assert code == 0
    code, _, err = invoke("query", "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert code != 0
    assert "no SQLite database" in err


def test_bad_import_arguments(tmp_path: Path) -> None:
    code, _, err = invoke("import", str(tmp_path / "missing.wits"), "--db", f"sqlite:///{tmp_path / 'w.db'}")
    assert code == 2
    assert "no such file" in err
    code, _, err = invoke("query", "-f", "parquet", "--db", f"sqlite:///{tmp_path / 'w.db'}")
    assert code == 2


def test_stream_stores_while_it_prints(sample: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = invoke("stream", f"file://{sample}", "--db", db, "-f", "jsonl")
    assert code == 0, err
    assert len(out.splitlines()) == 200
    code, out, _ = invoke("query", "--db", db, "--symbols", "0108", "-f", "csv")
    assert len(out.splitlines()) == 201


def test_stream_with_a_pipeline_file(sample: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text(
        f"sources:\n  - url: file://{sample}\n    name: rig-7\n"
        f"sinks:\n  - url: sqlite:///{tmp_path / 'p.db'}\n  - url: jsonl://{tmp_path / 'out.jsonl'}\n"
    )
    code, _, err = invoke("stream", "--config", str(pipeline), "-f", "csv")
    assert code == 0, err
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 200
    assert json.loads(lines[0])["source"] == "rig-7"
    code, out, _ = invoke("query", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--source", "rig-7", "-f", "csv")
    assert len(out.splitlines()) == 6001


def test_stream_needs_a_source() -> None:
    code, _, err = invoke("stream")
    assert code == 2
    assert "give a source URL" in err


def test_sigterm_drains_the_spool_into_the_database(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    env = {**os.environ, "WITS_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "witskit",
            "stream",
            "sim://rig-1?rate=50&records=1",
            "--db",
            f"sqlite:///{db}",
            "-f",
            "jsonl",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    printed = [proc.stdout.readline() for _ in range(40)]
    proc.terminate()
    out, _ = proc.communicate(timeout=60)
    printed += out.splitlines(keepends=True)
    assert proc.returncode == 143
    _, rows, _ = invoke("query", "--db", f"sqlite:///{db}", "--symbols", "0108", "-f", "csv")
    assert len(rows.splitlines()) - 1 == len([p for p in printed if p.strip()])  # every printed frame stored


def test_query_without_db_next_to_a_make_demo_store_says_how_to_reach_it(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new user runs make demo, then `witskit query` in the clone: the default store is the
    # per-user one, which has nothing. Before: "error: no SQLite database at ..." and no way on.
    clone = tmp_path / "clone"
    (clone / ".witskit").mkdir(parents=True)
    monkeypatch.chdir(clone)
    code, _, err = invoke("import", str(sample), "--db", "sqlite:///.witskit/witskit.db")
    assert code == 0, err
    code, _, err = invoke("query", "--source", "rig.wits")
    assert code == 1, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert "no SQLite database at" in err
    assert "--db sqlite:///.witskit/witskit.db" in err
    # The per-user store exists but is not the demo's: the note says which store was read.
    code, _, err = invoke("import", str(sample))
    assert code == 0, err
    code, _, err = invoke("query", "--source", "rig-1")
    assert code == 2, err
    assert "--db sqlite:///.witskit/witskit.db" in err, err
    code, out, err = invoke("query", "--source", "rig.wits", "--db", "sqlite:///.witskit/witskit.db")
    assert code == 0, err
    assert "rig.wits" in out
