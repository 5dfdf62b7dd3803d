"""Commands as a user types them: ``python -m witskit``, shell lines of the documents' console
blocks, and checking that they printed what the documents show."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any ``WITS_*`` setting, this venv's scripts first on PATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


def run_witskit(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m witskit *args`` to its end (``timeout`` s at most), its output captured as text."""
    command = [sys.executable, "-m", "witskit", *args]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_on_a_terminal(
    argv: list[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 120.0
) -> tuple[int, bytes]:
    """``python -m witskit *argv`` with stderr on a real pseudo-terminal and stdout to /dev/null:
    (exit status, every byte written to the terminal). Reads for ``timeout`` s at most."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "witskit", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
        cwd=cwd,
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed its end (EIO on Linux)
                    break
                if not data:
                    break
                seen += data
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)


def run_shell(
    command: str, *, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """One shell line (a ``$`` line of a document) to its end, its output captured as text."""
    return subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def console_steps(body: str) -> list[tuple[str, list[str]]]:
    """(command, non-blank output lines shown under it) for each ``$`` line of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].strip(), []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def shows(shown: str, printed: str) -> bool:
    """Whether ``printed`` holds the ``shown`` line, where ``...`` stands for any text."""
    pattern = ".*".join(re.escape(part) for part in shown.strip().split("..."))
    return re.search(pattern, printed) is not None
