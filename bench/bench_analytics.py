"""Rig-state speed: live throughput for a fleet at 1 Hz, and a stored rig-month, printed as ratios.

Run:  .venv/bin/python bench/bench_analytics.py           (about half a minute)
      .venv/bin/python bench/bench_analytics.py --quick   (a few seconds)

What it measures (targets from issue 15), on one core, nothing asserted:
1. Live: 1000 rigs at 1 Hz, one RigStateClassifier each, fed decoded frames round-robin (each rig
   its own simulated feed); frames/s against the 1000 frames/s needed, as a ratio. The baseline in
   the same run is the decoder alone on the same frames, to show what classification adds.
2. A stored rig-month (30 days at 1 Hz, 2,592,000 record-1 frames): the time to classify a measured
   fraction of it (samples as the store gives them: time and values by code), extrapolated to the
   month and compared with the one-minute target. Reading the store is not included (see
   bench_storage.py for the store's scan speed).
"""

from __future__ import annotations

import argparse
import time

from witskit.analytics import RigStateClassifier, Sample, classify
from witskit.protocol import WITSDecoder, iter_frames
from witskit.sim.model import DrillingSimulator

MONTH = 30 * 86400
#: Frames per second a fleet of 1000 rigs at 1 Hz sends.
NEEDED = 1000


def frames_of(seed: int, n: int) -> list[bytes]:
    return list(DrillingSimulator(seed, records=(1,), all_states=True, trip_every_stands=2).frames(n))


def live(rigs: int, seconds: int) -> None:
    feeds = []
    decoder = WITSDecoder()
    for rig in range(rigs):
        raw = b"".join(frames_of(rig % 20, seconds))  # 20 distinct feeds, reused: a fleet of rigs
        feeds.append([decoder.decode(f) for f in iter_frames(raw)])  # type: ignore[arg-type]
    classifiers = [RigStateClassifier() for _ in range(rigs)]
    t0 = time.perf_counter()
    for second in range(seconds):
        for clf, feed in zip(classifiers, feeds, strict=True):
            clf.feed(feed[second])
    took = time.perf_counter() - t0
    rate = rigs * seconds / took
    raw_all = [b"".join(frames_of(rig, seconds)) for rig in range(min(rigs, 20))]
    t0 = time.perf_counter()
    decoded = 0
    for raw in raw_all:
        for frame in iter_frames(raw):
            decoder.decode(frame)  # type: ignore[arg-type]
            decoded += 1
    decode_rate = decoded / (time.perf_counter() - t0)
    print(
        f"live: {rigs} rigs x {seconds} s: {rate:,.0f} frames/s classified on one core "
        f"= {rate / NEEDED:.1f}x the {NEEDED:,} frames/s that 1000 rigs at 1 Hz need; "
        f"the decoder alone (baseline) runs at {decode_rate:,.0f} frames/s, "
        f"so classifying costs {decode_rate / rate:.2f}x decoding"
    )


def month(fraction_days: float) -> None:
    n = int(fraction_days * 86400)
    decoder = WITSDecoder()
    raw = b"".join(frames_of(7, n))
    samples = []
    for frame in iter_frames(raw):
        d = decoder.decode(frame)  # type: ignore[arg-type]
        samples.append(Sample(d.timestamp, dict(d.items())))
    t0 = time.perf_counter()
    count = sum(1 for _ in classify(samples))
    took = time.perf_counter() - t0
    per_month = took * MONTH / count
    print(
        f"rig-month: classified {count:,} frames ({fraction_days:g} days) in {took:.2f} s "
        f"= {count / took:,.0f} frames/s; extrapolated to 30 days: {per_month:.1f} s "
        f"({60 / per_month:.1f}x faster than the 60 s target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: fewer rigs and seconds")
    args = parser.parse_args()
    if args.quick:
        live(rigs=200, seconds=30)
        month(fraction_days=0.5)
    else:
        live(rigs=1000, seconds=60)
        month(fraction_days=3.0)


if __name__ == "__main__":
    main()
