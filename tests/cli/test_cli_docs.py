"""Every ``$`` example of docs/cli.md runs, in order, in one directory, and prints what it shows.

Output lines shown under a command must appear in what it printed (stdout or stderr); ``...`` in a
shown line stands for any text. Tables are checked at a width of 100 columns.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from support.commands import console_steps, run_shell, shows

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_BOX = set("┏┓┃┡┩│└┘━─╇┳┻╋")


def examples() -> list[tuple[str, list[str]]]:
    """(command, output lines shown under it) for every ``$`` line of every console block."""
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [step for body in blocks for step in console_steps(body)]


def test_the_doc_has_an_example_for_every_command() -> None:
    commands = " ".join(cmd for cmd, _ in examples())
    for name in (
        "decode",
        "validate",
        "symbols",
        "convert",
        "simulate",
        "demo",
        "import",
        "query",
        "--version",
    ):
        assert f"witskit {name}" in commands, name
    for fmt in ("table", "jsonl", "json", "csv", "raw"):
        assert fmt in commands or fmt == "table", fmt


def test_every_example_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["COLUMNS"] = "100"
    env.pop("NO_COLOR", None)
    for command, shown in examples():
        proc = run_shell(command, cwd=tmp_path, env=env)
        assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-2000:])
        printed = proc.stdout + proc.stderr
        for line in shown:
            if not line.strip() or _BOX & set(line):
                continue
            assert shows(line, printed), (command, line, printed[-3000:])


def test_every_command_is_described_on_the_page() -> None:
    # The README says "Every command is described in docs/cli.md"; run, serve, users, api-keys
    # and db were not there at all.
    import typer

    from witskit.cli import app

    text = DOC.read_text(encoding="utf-8")
    commands = getattr(typer.main.get_command(app), "commands", {})
    missing = [name for name in commands if f"`witskit {name}" not in text]
    assert not missing, missing
    # A group's commands too (`witskit db compact`, or listed as `witskit users add|list|...`).
    missing = [
        f"{name} {sub}"
        for name, group in commands.items()
        for sub in getattr(group, "commands", {})
        if not re.search(rf"witskit {name} (?:[a-z-]+\|)*{sub}\b", text)
    ]
    assert not missing, missing
