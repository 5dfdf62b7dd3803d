"""The Python examples of docs/storage.md run, in order, in one directory, and print what they say."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "storage.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 4


def test_every_example_runs_and_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for index, code in enumerate(BLOCKS, 1):
        if "to_dataframe" in code and importlib.util.find_spec("pandas") is None:
            continue  # pandas is optional; its example needs it
        exec(compile(code, f"docs/storage.md python block {index}", "exec"), {"__name__": "__doc_example__"})
        printed = capsys.readouterr().out.splitlines()
        expected = [m.strip() for m in re.findall(r"#> (.+)$", code, flags=re.M)]
        assert expected, f"block {index} states no output"
        for want in expected:
            assert any(want in line for line in printed), (index, want, printed)
