"""``witskit export las`` and ``witskit export witsml`` over a real SQLite store.

The store is filled the way a user fills it (``simulate`` then ``import``); the documents are read
back with lasio and lxml, and every bad request is one error line naming what is missing, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from support.energistics import schema_problem
from witskit.cli import app

lasio = pytest.importorskip("lasio", reason="LAS export needs lasio: pip install 'witskit[las]'")
etree = pytest.importorskip("lxml.etree", reason="WITSML export needs lxml: pip install 'witskit[witsml]'")
lascheck = pytest.importorskip("lascheck", reason="the LAS checker: pip install lascheck (in witskit[dev])")
pytest.importorskip("komle", reason="the schema bindings: pip install komle-plus (in witskit[dev])")

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.stderr, result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def store(folder: Path) -> str:
    """A store with 120 s of a simulated rig (records 1 and 2) as source ``rig-1``, from rig.wits."""
    wits, db = folder / "rig.wits", f"sqlite:///{folder / 'rig.db'}"
    start = "2026-01-01T06:00:00Z"
    assert (
        invoke("simulate", "--frames", "120", "--records", "1,2", "--start", start, "-o", str(wits))[0] == 0
    )
    assert invoke("import", str(wits), "--db", db, "--source", "rig-1")[0] == 0
    return db


def test_export_las_by_depth(store: str, tmp_path: Path) -> None:
    out = tmp_path / "rig-1.las"
    code, _, err = invoke(
        "export", "las", "--db", store, "-s", "rig-1", "-c", "DBTM,ROPA,0116", "-o", str(out)
    )
    assert code == 0, err
    assert f"wrote {out}" in err
    las = lasio.read(out)
    assert [c.mnemonic for c in las.curves] == ["DEPT", "DBTM", "ROPA_01", "ROPA_02", "WOBA"]
    assert las.well["STEP"].value == 0.5
    assert las.well["WELL"].value  # the simulated rig's WID item
    assert las.curves["ROPA_01"].unit == "ft/h"
    checked = lascheck.read(str(out))
    assert checked.check_conformity(), checked.get_non_conformities()


def test_export_las_by_time_to_stdout(store: str) -> None:
    code, out, err = invoke(
        "export", "las", "--db", store, "-s", "rig-1", "-c", "ROPA", "--index", "time", "--step", "2",
        "--metric", "--start", "2026-01-01T06:00:10", "--end", "2026-01-01T06:00:30",
    )  # fmt: skip
    assert code == 0, err
    las = lasio.read(out)
    assert las.curves[0].mnemonic == "TIME"
    assert las.well["STEP"].value == 2.0
    assert las.curves["ROPA"].unit == "m/h"
    assert las.well["DATE"].value.startswith("2026-01-01T06:00:1")
    checked = lascheck.read(out)
    assert checked.check_conformity(), checked.get_non_conformities()


@pytest.mark.parametrize("version", ["1.4.1.1", "2.0"])
def test_export_witsml(store: str, tmp_path: Path, version: str) -> None:
    out = tmp_path / "log.xml"
    code, _, err = invoke(
        "export", "witsml", "--db", store, "-s", "rig-1", "-c", "ROPA,WOBA", "--version", version,
        "--tz", "America/Chicago", "-o", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert schema_problem(out.read_bytes(), version) is None
    root = etree.parse(str(out)).getroot()
    if version == "2.0":
        rows = json.loads(root.findtext("{*}ChannelSet/{*}Data/{*}Data"))
        assert rows[0][0].endswith("-06:00")
    else:
        first = root.findtext("{*}log/{*}logData/{*}data")
        assert first.split(",")[0].endswith("-06:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "NOPE"], "unknown code 'NOPE'"),
        (["-c", "ROPA", "--start", "2030-01-01"], "no data for ROPA in rig-1 from 2030-01-01"),
        (["-c", "ROPA,0810"], "no data for 0810 (0810) in rig-1"),
        (["-c", "ROPA", "-s", "rig-9"], "no source named 'rig-9' in the store; its sources: rig-1"),
        (["-c", "WID"], "WID (0101, Well Identifier) is text"),
        (["-c", "ROPA", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not a known time zone"),
        (["-c", "ROPA", "--step", "0"], "the depth step must be a positive number"),
        (["-c", "ROPA", "--start", "yesterday"], "--start='yesterday' is not an ISO 8601 time"),
    ],
)
def test_bad_requests_are_one_line_naming_what_is_missing(store: str, args: list[str], message: str) -> None:
    # -s given twice: the last one counts, so ["-s", "rig-9"] in args asks for rig-9
    code, out, err = invoke("export", "las", "--db", store, "-s", "rig-1", *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_store_that_does_not_exist_says_so(tmp_path: Path) -> None:
    code, _, err = invoke(
        "export", "witsml", "--db", f"sqlite:///{tmp_path / 'none.db'}", "-s", "r", "-c", "ROPA"
    )
    assert code != 0
    assert "none.db" in err


def test_export_from_a_capture_file_equals_export_from_the_store(
    store: str, folder: Path, tmp_path: Path
) -> None:
    from_file, from_store = tmp_path / "file.las", tmp_path / "store.las"
    args = ["-c", "01.DBTM,0113", "-s", "rig-1", "--index", "depth"]
    assert invoke("export", "las", "--file", str(folder / "rig.wits"), *args, "-o", str(from_file))[0] == 0
    assert invoke("export", "las", "--db", store, *args, "-o", str(from_store))[0] == 0
    assert from_file.read_text() == from_store.read_text()
    code, out, _ = invoke("export", "witsml", "--file", str(folder / "rig.wits"), "-c", "ROPA")
    assert code == 0
    assert 'uidWell="rig.wits"' in out  # the source defaults to the file name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "missing.wits"], "missing.wits: no such file"),
        (["--file", "x.wits", "--db", "sqlite:///x.db"], "give --db or --file, not both"),
        ([], "name the source to export with --source"),
    ],
)
def test_bad_sources_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "x.wits").write_text("&&\n0113 12\n!!\n")
    args = [str(tmp_path / a) if a.endswith(".wits") else a for a in args]
    code, _, err = invoke("export", "las", "-c", "ROPA", *args)
    assert code == 2
    assert message in err


def test_witsml_uids_can_be_given(store: str) -> None:
    code, out, err = invoke(
        "export", "witsml", "--db", store, "-s", "rig-1", "-c", "ROPA", "--end", "2026-01-01T06:00:02",
        "--well-uid", "W-7", "--log-uid", "L<1>",
    )  # fmt: skip
    assert code == 0, err
    log = etree.fromstring(out.encode()).find("{*}log")
    assert (log.get("uidWell"), log.get("uidWellbore"), log.get("uid")) == ("W-7", "rig-1-wb", "L<1>")
    assert log.findtext("{*}nameWell") == "WITSKIT-SIM-1"  # the name still comes from the WID item
