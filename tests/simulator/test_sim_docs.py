"""The Python examples of docs/simulator.md and docs/simulator_server.md run as written.

An example is a ``python`` block that starts with its imports; the API summaries (signatures) are
``python`` blocks too, for highlighting, but are not programs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def examples(name: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if b.startswith(("from ", "import "))]


@pytest.mark.parametrize(
    ("name", "count"),
    [("simulator.md", 1), ("simulator_server.md", 1)],
)
def test_the_examples_run(
    name: str, count: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    found = examples(name)
    assert len(found) == count  # an example dropped from the page (or a new one) is noticed
    monkeypatch.chdir(tmp_path)
    for index, body in enumerate(found, start=1):
        exec(compile(body, f"{name}:example {index}", "exec"), {"__name__": f"__{name}__"})
    capsys.readouterr()
