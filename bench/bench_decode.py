"""Decode speed and memory of the WitsKit core, as ratios against baselines run in the same process.

Run:  .venv/bin/python bench/bench_decode.py            (about a minute; writes bench/out/decode.json)
      .venv/bin/python bench/bench_decode.py --big-gb 0  (skip the 1 GB streaming run)

What it measures (targets from the core issue):
1. Bulk decode to typed values of a `witskit simulate` file of 20,000 record-1 frames x 30 items,
   in points/s (target >= 1,000,000 on one core), against the minimal loop
   ``for line in data.split(b"\\n"): (line[:4], float(line[4:]))`` over the same bytes (target >= 50%).
   That loop raises on the ``&&``/``!!`` and text lines of a real file, so it is run two ways: with a
   try/except around it over the same bytes, and (stricter) over only the numeric data lines.
2. Streaming decode of a 1 GB file: peak RSS of a fresh process (target < 150 MB).
3. ``witskit decode FILE --format jsonl > out`` wall time (target < 5 s).
4. ``python -c "import witskit"`` wall time (target < 80 ms), next to a bare interpreter.
5. Parser cost when fed one byte at a time: time for 4x the bytes should be ~4x (linear).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PY = sys.executable
WITSKIT = [PY, "-m", "witskit"]


def best_of(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_sim_file(frames: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"sim-{frames}-r1.wits"
    if not path.exists():
        subprocess.run(
            [*WITSKIT, "simulate", "--frames", str(frames), "--records", "1", "-o", str(path)], check=True
        )
    return path


def bench_bulk(data: bytes) -> dict[str, float]:
    from witskit.protocol import iter_decode

    numeric_only = b"\n".join(ln for ln in data.split(b"\n") if ln[:1].isdigit() and _is_number(ln[4:]))

    def baseline_same_bytes() -> None:
        for line in data.split(b"\n"):
            try:  # noqa: SIM105 - contextlib.suppress would slow the baseline down
                (line[:4], float(line[4:]))
            except ValueError:
                pass

    def baseline_numeric_lines() -> None:
        for line in numeric_only.split(b"\n"):
            (line[:4], float(line[4:]))

    points = 0

    def ours() -> None:
        nonlocal points
        points = 0
        for frame in iter_decode(data):
            points += len(frame.codes)  # type: ignore[union-attr]

    lines_same = data.count(b"\n")
    lines_numeric = numeric_only.count(b"\n") + 1
    t_same = best_of(baseline_same_bytes)
    t_numeric = best_of(baseline_numeric_lines)
    t_ours = best_of(ours)
    return {
        "points": points,
        "ours_points_per_s": points / t_ours,
        "baseline_same_bytes_lines_per_s": lines_same / t_same,
        "baseline_numeric_lines_per_s": lines_numeric / t_numeric,
        "ratio_vs_same_bytes": (points / t_ours) / (lines_same / t_same),
        "ratio_vs_numeric_lines": (points / t_ours) / (lines_numeric / t_numeric),
    }


def _is_number(b: bytes) -> bool:
    try:
        float(b)
    except ValueError:
        return False
    return True


def bench_streaming_rss(sim: bytes, gigabytes: float) -> dict[str, float]:
    target = int(gigabytes * 1e9)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        big = Path(tmp) / "big.wits"
        with big.open("wb") as fh:
            written = 0
            while written < target:
                fh.write(sim)
                written += len(sim)
        code = (
            "import resource, sys, time\n"
            "from witskit.protocol import iter_decode\n"
            "t = time.perf_counter(); n = 0; f = 0\n"
            "for fr in iter_decode(sys.argv[1]):\n"
            "    n += len(fr.codes); f += 1\n"
            "dt = time.perf_counter() - t\n"
            "print(n, f, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        out = subprocess.run([PY, "-c", code, str(big)], capture_output=True, text=True, check=True).stdout
        points, frames, seconds, maxrss_kb = out.split()
        return {
            "bytes": written,
            "frames": int(frames),
            "points": int(points),
            "seconds": float(seconds),
            "points_per_s": int(points) / float(seconds),
            "peak_rss_mb": int(maxrss_kb) / 1024,
        }


def bench_cli_jsonl(path: Path) -> dict[str, float]:
    out = OUT / "decode.jsonl"
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        with out.open("wb") as fh:
            subprocess.run([*WITSKIT, "decode", str(path), "--format", "jsonl"], stdout=fh, check=True)
        times.append(time.perf_counter() - t0)
    lines = sum(1 for _ in out.open("rb"))
    return {"seconds": min(times), "records": lines, "output_mb": out.stat().st_size / 1e6}


def bench_import() -> dict[str, float]:
    def wall(cmd: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - t0

    for _ in range(2):  # warm the OS cache
        wall([PY, "-c", "import witskit"])
    with_witskit = statistics.median(wall([PY, "-c", "import witskit"]) for _ in range(15))
    bare = statistics.median(wall([PY, "-c", "pass"]) for _ in range(15))
    return {"import_witskit_ms": with_witskit * 1000, "bare_python_ms": bare * 1000}


def bench_trickle() -> dict[str, float]:
    from witskit.protocol import FrameParser

    frame = b"&&\r\n01083650.40\r\n011323.38\r\n!!\r\n"

    def trickle(n_bytes: int) -> float:
        data = frame * (n_bytes // len(frame))
        p = FrameParser()
        t0 = time.perf_counter()
        for i in range(len(data)):
            p.feed(data[i : i + 1])
        return time.perf_counter() - t0

    small = trickle(250_000)
    large = trickle(1_000_000)
    return {"seconds_250kB": small, "seconds_1MB": large, "ratio_4x_bytes": large / small}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--big-gb", type=float, default=1.0, help="size of the streaming file; 0 skips it")
    args = ap.parse_args()

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # measure imports as an installed package runs them
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(Path(__import__("witskit").__file__).parent)], check=True
    )
    sim_path = make_sim_file(args.frames)
    data = sim_path.read_bytes()
    report: dict[str, object] = {"file": str(sim_path), "file_mb": len(data) / 1e6}
    print(f"file: {sim_path} ({len(data) / 1e6:.1f} MB)")

    bulk = bench_bulk(data)
    report["bulk"] = bulk
    print(
        f"bulk decode: {bulk['ours_points_per_s']:,.0f} points/s (target >= 1,000,000)\n"
        f"  baseline over the same bytes (try/except): {bulk['baseline_same_bytes_lines_per_s']:,.0f} lines/s"
        f" -> ratio {bulk['ratio_vs_same_bytes']:.0%} (target >= 50%)\n"
        f"  baseline over numeric lines only:          {bulk['baseline_numeric_lines_per_s']:,.0f} lines/s"
        f" -> ratio {bulk['ratio_vs_numeric_lines']:.0%}"
    )

    trickle = bench_trickle()
    report["trickle"] = trickle
    print(
        f"one byte at a time: 250 kB {trickle['seconds_250kB']:.2f} s, 1 MB {trickle['seconds_1MB']:.2f} s,"
        f" ratio {trickle['ratio_4x_bytes']:.2f} for 4x the bytes (linear = 4)"
    )

    cli = bench_cli_jsonl(sim_path)
    report["cli_jsonl"] = cli
    print(
        f"witskit decode --format jsonl: {cli['seconds']:.2f} s for {cli['records']} records (target < 5 s)"
    )

    imp = bench_import()
    report["import"] = imp
    print(
        f"import witskit: {imp['import_witskit_ms']:.0f} ms"
        f" (bare python {imp['bare_python_ms']:.0f} ms; target < 80 ms)"
    )

    if args.big_gb > 0:
        big = bench_streaming_rss(data, args.big_gb)
        report["streaming"] = big
        print(
            f"streaming decode of {big['bytes'] / 1e9:.2f} GB:"
            f" {big['points']:,} points in {big['seconds']:.1f} s"
            f" ({big['points_per_s']:,.0f} points/s), peak RSS {big['peak_rss_mb']:.0f} MB (target < 150 MB)"
        )

    OUT.mkdir(exist_ok=True)
    (OUT / "decode.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {OUT / 'decode.json'}")


if __name__ == "__main__":
    main()
