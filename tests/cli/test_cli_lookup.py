"""``witskit symbols``, ``witskit convert`` and ``witskit --version``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from witskit._version import __version__
from witskit.cli import app

runner = CliRunner()


# symbols ----------------------------------------------------------------------------------------
def test_search_resistivity_finds_mr1() -> None:
    result = runner.invoke(app, ["symbols", "--search", "resistivity"])
    assert result.exit_code == 0
    assert "MR1" in result.stdout
    assert "0815" in result.stdout


def test_search_finds_compound_words_typed_apart() -> None:
    result = runner.invoke(app, ["symbols", "--search", "hook load", "-f", "json"])
    assert result.exit_code == 0
    assert "HKLA" in {i["mnemonic"] for i in json.loads(result.stdout)}


def test_search_as_json() -> None:
    result = runner.invoke(app, ["symbols", "--search", "resistivity", "--format", "json"])
    assert result.exit_code == 0
    items = json.loads(result.stdout)
    mr1 = next(i for i in items if i["mnemonic"] == "MR1")
    assert mr1 == {
        "code": "0815",
        "record": 8,
        "item": 15,
        "mnemonic": "MR1",
        "long_mnemonic": "MR1",
        "description": "Resis 1 reading",
        "type": "F",
        "length": 4,
        "metric_unit": "OHMM",
        "fps_unit": "OHMM",
    }


def test_record_lists_its_items_in_order() -> None:
    result = runner.invoke(app, ["symbols", "--record", "1", "-f", "json"])
    assert result.exit_code == 0
    codes = [i["code"] for i in json.loads(result.stdout)]
    assert codes[:3] == ["0101", "0102", "0103"]
    assert all(c.startswith("01") for c in codes)


def test_search_within_a_record() -> None:
    result = runner.invoke(app, ["symbols", "-s", "depth", "-r", "1", "-f", "json"])
    items = json.loads(result.stdout)
    assert items
    assert {i["record"] for i in items} == {1}


def test_all_symbols_without_options() -> None:
    result = runner.invoke(app, ["symbols", "-f", "json"])
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) > 1000


def test_list_records() -> None:
    result = runner.invoke(app, ["symbols", "--list-records", "-f", "json"])
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert records[0]["record"] == 1
    assert records[0]["name"] == "General Time-Based"
    assert records[0]["items"] > 30
    table = runner.invoke(app, ["symbols", "--list-records"])
    assert "General Time-Based" in table.stdout


def test_no_match_exits_1() -> None:
    result = runner.invoke(app, ["symbols", "--search", "zzqqxx"])
    assert result.exit_code == 1
    assert "no items match" in result.stderr


def test_unknown_record_is_a_usage_error() -> None:
    result = runner.invoke(app, ["symbols", "--record", "99"])
    assert result.exit_code == 2
    assert "record 99" in result.stderr


def test_list_records_with_search_is_a_usage_error() -> None:
    assert runner.invoke(app, ["symbols", "--list-records", "--search", "x"]).exit_code == 2


# convert ----------------------------------------------------------------------------------------
def test_convert_kdn_to_klb() -> None:
    result = runner.invoke(app, ["convert", "1", "KDN", "KLB"])
    assert result.exit_code == 0
    assert float(result.stdout) == pytest.approx(2.248, abs=5e-4)


def test_convert_negative_values_and_temperatures() -> None:
    result = runner.invoke(app, ["convert", "-10", "DEGC", "DEGF"])
    assert result.exit_code == 0, result.output
    assert float(result.stdout) == pytest.approx(14.0)


def test_convert_prints_a_clean_number() -> None:
    assert runner.invoke(app, ["convert", "100", "degc", "degf"]).stdout == "212\n"


def test_unknown_unit_is_exit_2_with_one_line() -> None:
    result = runner.invoke(app, ["convert", "1", "FURLONG", "M"])
    assert result.exit_code == 2
    assert "FURLONG" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_incompatible_units_exit_2() -> None:
    result = runner.invoke(app, ["convert", "1", "KDN", "M"])
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_missing_arguments_exit_2() -> None:
    result = runner.invoke(app, ["convert", "1", "KDN"])
    assert result.exit_code == 2
    assert "--list-units" in result.stderr


def test_list_units() -> None:
    result = runner.invoke(app, ["convert", "--list-units"])
    assert result.exit_code == 0
    for unit in ("KDN", "KLB", "DEGC", "PPG"):
        assert unit in result.stdout


# version and help -------------------------------------------------------------------------------
def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"witskit {__version__}"


@pytest.mark.parametrize("command", ["decode", "validate", "symbols", "convert", "simulate", "demo"])
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "decode" in result.output
    assert "simulate" in result.output
