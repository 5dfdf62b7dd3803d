"""Every example in the README runs: Python blocks are executed, shell lines are run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(python|console)\n(.*?)```", README.read_text(), flags=re.S)
PYTHON_BLOCKS = [body for lang, body in BLOCKS if lang == "python"]
SHELL_LINES = [
    line[2:].strip()
    for lang, body in BLOCKS
    if lang == "console"
    for line in body.splitlines()
    if line.startswith("$ ")
]


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs_and_prints_what_it_says(
    index: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    example_output: Any,
) -> None:
    monkeypatch.chdir(tmp_path)
    code = PYTHON_BLOCKS[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    # "#> text" (after a print or on its own line) is what the block prints, every line of it.
    example_output(code, capsys.readouterr().out.splitlines(), f"README.md python block {index + 1}")


def test_shell_examples_run(tmp_path: Path) -> None:
    assert SHELL_LINES, "the README has no shell examples"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for line in SHELL_LINES:
        result = subprocess.run(
            line, check=False, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-2000:])
        # A newcomer's first commands run clean: no warning or error to puzzle over.
        assert not re.search(r"(?m)^(warning|error)\b", result.stderr), (line, result.stderr[-2000:])


def test_the_two_commands_are_documented() -> None:
    text = README.read_text()
    assert "make demo" in text
    assert "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert "\ndemo:" in makefile
    assert "\ntest:" in makefile
    assert "make test" in (README.parent / ".ci" / "run").read_text()
