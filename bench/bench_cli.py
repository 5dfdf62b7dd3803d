"""Start-up time of ``witskit convert``, as a ratio against ``witskit --version`` in the same run.

Run:  .venv/bin/python bench/bench_cli.py

``witskit convert`` answers the pairs of the dashboard's generated unit table without importing pint
(about half a second of start-up); other pairs still go through pint. Target: a table pair within
1.5x of ``witskit --version`` (the interpreter and the command line alone), well under a second.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 7


def wall(*args: str) -> float:
    """Median wall time of ``python -m witskit ARGS`` over RUNS runs, in seconds."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "witskit", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Print the three timings and the ratios."""
    base = wall("--version")
    table = wall("convert", "100", "DEGC", "DEGF")
    pint = wall("convert", "1", "M", "IN")
    print(f"witskit --version                 {base * 1000:6.0f} ms")
    print(f"witskit convert 100 DEGC DEGF     {table * 1000:6.0f} ms  ({table / base:.2f}x --version)")
    print(f"witskit convert 1 M IN (pint)     {pint * 1000:6.0f} ms  ({pint / base:.2f}x --version)")


if __name__ == "__main__":
    main()
