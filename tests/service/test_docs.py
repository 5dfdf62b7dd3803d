"""Every ``$`` example of docs/service.md's console blocks runs, in order, against one fresh data
directory, and prints what the document shows (``...`` stands for any text)."""

from __future__ import annotations

import re
from pathlib import Path

from support.commands import clean_env, console_steps, run_shell, shows

DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def examples() -> list[tuple[str, list[str]]]:
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [step for body in blocks for step in console_steps(body)]


def test_the_service_doc_examples_run(tmp_path: Path) -> None:
    env = clean_env(COLUMNS="120", WITS_DATA_DIR=str(tmp_path / "data"))
    found = examples()
    assert len(found) >= 6
    for command, shown in found:
        proc = run_shell(command, cwd=tmp_path, env=env, timeout=60)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        for line in shown:
            assert shows(line, proc.stdout + proc.stderr), (command, line, proc.stdout)
