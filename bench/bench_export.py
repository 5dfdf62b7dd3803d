"""Export speed: LAS and WITSML documents of a stretch of 1 Hz drilling, next to plain CSV of the same points.

Run:  .venv/bin/python bench/bench_export.py              (2 hours of 10 codes: 72,000 points)
      .venv/bin/python bench/bench_export.py --quick      (10 minutes, a few seconds in all)

The points come from memory (a reader shaped as the store's ``query_batches``), so this measures
the export layer alone: building the log table (time index per frame or per second, depth index
resampled on bottom) and writing it with lasio or lxml. The baseline, in the same process on the
same points, is one CSV line per point with the csv module: the cost of touching and formatting
each point at all. Each figure is the best of ``--runs``; the ratio says what the format adds.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from witskit.export import ExportFormat, ExportRequest, IndexKind, WitsmlVersion, render
from witskit.export.table import Point

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CODES = ["0108", "0110", "0113", "0114", "0116", "0118", "0120", "0121", "0126", "0130"]


@dataclass(frozen=True, slots=True)
class Reading:
    time: datetime
    code: str
    value: float | None


def readings(seconds: int) -> list[Reading]:
    """One frame a second: bit on bottom drilling 0.01 ft/s, lifted for 60 s every 30 minutes."""
    out = []
    hole = 5000.0
    for i in range(seconds):
        t = T0 + timedelta(seconds=i)
        lifted = i % 1800 >= 1740
        hole = hole if lifted else round(hole + 0.01, 2)
        bit = hole - 10.0 if lifted else hole
        values = {"0108": bit, "0110": hole}
        out += [Reading(t, c, values.get(c, (i % 600) * 0.1 + k)) for k, c in enumerate(CODES)]
    return out


class Reader:
    def __init__(self, points: list[Reading]) -> None:
        self.points = points

    async def query_batches(
        self, source: str, codes: list[str], start: datetime | None, end: datetime | None
    ) -> AsyncGenerator[Sequence[Point], None]:
        wanted = set(codes)
        rows = [p for p in self.points if p.code in wanted]
        for i in range(0, len(rows), 10_000):
            yield rows[i : i + 10_000]


def best(runs: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 minutes, 2 runs")
    args = parser.parse_args()
    minutes, runs = (10, 2) if args.quick else (args.minutes, args.runs)
    points = readings(minutes * 60)
    reader = Reader(points)
    names = [c for c in CODES if c not in ("0108", "0110")]

    def baseline() -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        for p in points:
            writer.writerow((p.time.isoformat(), "bench-rig", p.code, p.value))

    def export(fmt: ExportFormat, index: IndexKind, version: WitsmlVersion = WitsmlVersion.v1411) -> None:
        request = ExportRequest("bench-rig", names, index)
        asyncio.run(render(reader, request, fmt, version))

    base = best(runs, baseline)
    print(f"{len(points):,} points ({minutes} min x {len(CODES)} codes at 1 Hz), best of {runs}")
    rate = len(points) / base
    print(f"{'baseline: CSV line per point':<34} {base:8.3f} s  {rate:>12,.0f} points/s   1.00x")
    cases = [
        ("LAS, time index (1 s step)", ExportFormat.las, IndexKind.time, WitsmlVersion.v1411),
        ("LAS, depth index (0.5 ft step)", ExportFormat.las, IndexKind.depth, WitsmlVersion.v1411),
        ("WITSML 1.4.1.1, time index", ExportFormat.witsml, IndexKind.time, WitsmlVersion.v1411),
        ("WITSML 2.0, time index", ExportFormat.witsml, IndexKind.time, WitsmlVersion.v20),
    ]
    for label, fmt, index, version in cases:
        took = best(runs, lambda fmt=fmt, index=index, version=version: export(fmt, index, version))
        print(f"{label:<34} {took:8.3f} s  {len(points) / took:>12,.0f} points/s  {took / base:5.2f}x")


if __name__ == "__main__":
    main()
