"""The Python examples of docs/storage.md run, in order, in one directory, and print what they say."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "storage.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 4


def test_every_example_runs_and_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], example_output: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    for index, code in enumerate(BLOCKS, 1):
        if "to_dataframe" in code and importlib.util.find_spec("pandas") is None:
            continue  # pandas is optional; its example needs it
        where = f"docs/storage.md python block {index}"
        exec(compile(code, where, "exec"), {"__name__": "__doc_example__"})
        assert "#> " in code, f"{where} states no output"
        example_output(code, capsys.readouterr().out.splitlines(), where)
