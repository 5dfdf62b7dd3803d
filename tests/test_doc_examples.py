"""Every example in README.md and docs/*.md runs as written, or says why it cannot.

A fenced ``python`` or ``console`` block is an example. Each one is either

* run by the test of its document (``DEDICATED``: those tests run every block of that kind), or
* run here, in order, one document at a time (every other document), or
* marked on the line just before its fence with ``<!-- not run: the reason -->``.

A console example is written as ``$ command`` lines, each followed by the lines it prints
(``...`` stands for any text); a console block without a ``$`` line runs nothing and must be
marked. Python examples print exactly what their ``#> text`` lines show. So a new example that
nobody runs fails here, and an example's output cannot drift from what the code prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from support.commands import clean_env, console_steps, run_shell, shows

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)
_MARK = re.compile(r"<!-- not run: (.*?) -->\s*$")

#: (document, kind) -> the test file that runs every block of that kind in that document.
DEDICATED: dict[tuple[str, str], str] = {
    ("README.md", "python"): "tests/test_readme.py",
    ("README.md", "console"): "tests/test_readme.py",
    ("docs/cli.md", "console"): "tests/cli/test_cli_docs.py",
    ("docs/history.md", "console"): "tests/storage/test_history_compact.py",
    ("docs/pipeline.md", "python"): "tests/pipeline/test_pipeline_docs.py",
    ("docs/pipeline.md", "console"): "tests/pipeline/test_pipeline_docs.py",
    ("docs/service.md", "console"): "tests/service/test_docs.py",
    ("docs/storage.md", "python"): "tests/storage/test_store_docs.py",
    ("docs/transports.md", "python"): "tests/transport/test_urls.py",
    ("docs/transports.md", "console"): "tests/transport/test_urls.py",
    ("docs/serial_and_files.md", "python"): "tests/transport/test_file.py",
    ("docs/units.md", "python"): "tests/units/test_units.py",
}


@dataclass(frozen=True)
class Example:
    """One fenced example."""

    doc: str
    line: int
    kind: str
    body: str
    #: Why it is not run, when it is marked so.
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def examples() -> list[Example]:
    out = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        doc = str(path.relative_to(ROOT))
        for match in _FENCE.finditer(text):
            kind = match.group(1)
            if kind not in ("python", "console"):
                continue
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = _MARK.search(before)
            line = text.count("\n", 0, match.start()) + 1
            out.append(Example(doc, line, kind, match.group(2), mark.group(1).strip() if mark else None))
    return out


EXAMPLES = examples()


def run_here(kind: str) -> list[str]:
    """The documents whose ``kind`` examples this module runs."""
    docs = {e.doc for e in EXAMPLES if e.kind == kind and e.not_run is None}
    return sorted(d for d in docs if (d, kind) not in DEDICATED)


def test_every_example_is_run_or_says_why_not() -> None:
    assert len(EXAMPLES) > 40
    problems = []
    for ex in EXAMPLES:
        if ex.not_run is not None:
            if len(ex.not_run) < 10:
                problems.append(f"{ex.where}: give a reason in <!-- not run: ... -->")
        elif ex.kind == "console" and not any(ln.startswith("$ ") for ln in ex.body.splitlines()):
            problems.append(
                f"{ex.where}: a console block with no `$ command` line runs nothing: write its commands "
                "as `$ command` lines, or mark it <!-- not run: why --> on the line before the fence"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("doc", "kind"), sorted(DEDICATED))
def test_dedicated_runners_exist(doc: str, kind: str) -> None:
    runner = ROOT / DEDICATED[doc, kind]
    assert runner.is_file(), runner
    text = runner.read_text(encoding="utf-8")
    assert Path(doc).name in text, f"{runner} does not read {doc}"
    assert f"```{kind}" in text or "python|console" in text, f"{runner} does not look for {kind} blocks"


def test_every_witskit_command_in_the_docs_exists() -> None:
    from witskit.cli import app

    commands = set(getattr(typer.main.get_command(app), "commands", {}))
    wrong = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"(?:`|\$ |^)witskit ([a-z][a-z-]*)", text, flags=re.M):
            if match.group(1) not in commands:
                wrong.append(
                    f"{path.name}:{text.count(chr(10), 0, match.start()) + 1}: witskit {match.group(1)}"
                )
    assert not wrong, wrong


def _env(tmp_path: Path) -> dict[str, str]:
    return clean_env(WITS_DATA_DIR=str(tmp_path / "data"), WITS_METRICS_ENABLED="false", COLUMNS="100")


_SEPARATOR = "\x00-- example --"


@pytest.mark.parametrize("doc", run_here("python"))
def test_python_examples_print_what_they_show(doc: str, tmp_path: Path, example_output: Any) -> None:
    blocks = [e for e in EXAMPLES if e.doc == doc and e.kind == "python" and e.not_run is None]
    # In order, in one interpreter (a later block may use what an earlier one defined).
    script = "\n".join(f"print({_SEPARATOR!r}, flush=True)\n{e.body}" for e in blocks)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout.split(_SEPARATOR + "\n")[1:]
    assert len(printed) == len(blocks)
    for example, out in zip(blocks, printed, strict=True):
        example_output(example.body, out.splitlines(), example.where)


@pytest.mark.parametrize("doc", run_here("console"))
def test_console_examples_run_and_print_what_they_show(doc: str, tmp_path: Path) -> None:
    env = _env(tmp_path)
    for example in (e for e in EXAMPLES if e.doc == doc and e.kind == "console" and e.not_run is None):
        for command, shown in console_steps(example.body):
            proc = run_shell(command, cwd=tmp_path, env=env)
            assert proc.returncode == 0, (example.where, command, proc.stderr[-2000:])
            for want in shown:
                assert shows(want, proc.stdout + proc.stderr), (example.where, command, want)
