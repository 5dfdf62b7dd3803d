"""The examples in docs/pipeline.md run and print what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"
BLOCKS = re.findall(r"```(python|console)\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("index", [i for i, (lang, _) in enumerate(BLOCKS) if lang == "python"])
def test_python_examples(index: int, tmp_path: Path) -> None:
    code = BLOCKS[index][1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    for want in re.findall(r"#> (.+)$", code, flags=re.M):
        assert want.strip() in result.stdout


def test_shell_examples(tmp_path: Path) -> None:
    env = {**os.environ, "WITS_DATA_DIR": str(tmp_path / "data")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    lines = [
        ln[2:]
        for lang, body in BLOCKS
        if lang == "console"
        for ln in body.splitlines()
        if ln.startswith("$ ")
    ]
    assert lines
    for line in lines:
        result = subprocess.run(
            line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, (line, result.stderr)
