"""The command line's help, through the real entry point: no Python types, every command listed."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from witskit.cli import app

# A Python type or typer's usage braces leaking into help: <bool>, <list[str]>, <int range>,
# <table|csv>, {files}...
_LEAK = re.compile(r"<[A-Za-z_][\w\[\], |.]*>|\{\w+\}")


def all_commands() -> list[list[str]]:
    """The argv prefix of every command and group (``[]`` is the top level)."""
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        out.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return out


def help_text(*argv: str, columns: int = 100) -> str:
    """``witskit ARGV --help`` through the argv entry point, at a terminal of ``columns``."""
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("argv", all_commands(), ids=lambda argv: " ".join(argv) or "witskit")
def test_help_shows_no_python_types(argv: list[str]) -> None:
    text = help_text(*argv)
    assert not _LEAK.findall(text), _LEAK.findall(text)


def test_top_level_help_lists_every_command_with_a_one_line_purpose() -> None:
    text = help_text(columns=80)
    root = typer.main.get_command(app)
    names = list(getattr(root, "commands", {}))
    assert len(names) > 10
    rows = text[text.index("Commands") :].split("╰")[0].splitlines()[1:]
    assert len(rows) == len(names), rows  # one line each at 80 columns
    for name, row in zip(names, rows, strict=True):
        match = re.match(rf"│ {re.escape(name)} +(\S.*?) *│$", row)
        assert match is not None, (name, row)
        assert len(match.group(1)) > 10, name


def test_import_usage_names_its_files_plainly() -> None:
    text = help_text("import")
    assert "Usage: witskit import [OPTIONS] FILES..." in text


@pytest.mark.parametrize("command", ["decode", "query"])
def test_help_names_the_one_csv_layout(command: str) -> None:
    from witskit.cli._writers import CSV_HEADER
    from witskit.storage.formats import CSV_COLUMNS

    assert CSV_HEADER == CSV_COLUMNS  # decode/stream and query/the API write the same columns
    text = " ".join(help_text(command, columns=200).split())
    assert ",".join(CSV_COLUMNS) in text, text


@pytest.mark.parametrize("argv", all_commands(), ids=lambda argv: " ".join(argv) or "witskit")
def test_usage_line_brackets_each_optional_argument_once(argv: list[str]) -> None:
    # Before: "Usage: witskit stream [OPTIONS] [[URL]]" (a metavar that carried its own brackets).
    usage = next(line for line in help_text(*argv).splitlines() if "Usage:" in line)
    assert "[[" not in usage, usage
