"""Every ``$`` example of docs/service.md's console blocks runs, in order, against one fresh data
directory, and prints what the document shows (``...`` stands for any text)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def examples() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for body in re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S):
        for line in body.splitlines():
            if line.startswith("$ "):
                out.append((line[2:].strip(), []))
            elif out and line.strip():
                out[-1][1].append(line)
    return out


def test_the_service_doc_examples_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        COLUMNS="120",
        WITS_DATA_DIR=str(tmp_path / "data"),
    )
    found = examples()
    assert len(found) >= 6
    for command, shown in found:
        proc = subprocess.run(
            command,
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        for line in shown:
            pattern = ".*".join(re.escape(part) for part in line.strip().split("..."))
            assert re.search(pattern, proc.stdout + proc.stderr), (command, line, proc.stdout)
