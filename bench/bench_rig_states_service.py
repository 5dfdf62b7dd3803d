"""Rig states in the service: the live per-rig classification and its writes, and the analytics
routes' work over a stored range, printed as ratios against a baseline of the same run.

Run:  .venv/bin/python bench/bench_rig_states_service.py           (about a minute)
      .venv/bin/python bench/bench_rig_states_service.py --quick   (a few seconds)

What it measures, on a SQLite file in a temporary directory, nothing asserted:
1. Live: 1000 rigs at 1 Hz through ``LiveAnalytics.on_frame`` (the classifier, the interval
   bookkeeping), against the classifier alone (baseline); then one flush of what 1000 rigs left
   (one transaction: the new intervals and every open one's end), which the service does every 5 s.
2. A stored range of one rig at 1 Hz: the rig states classified from the stored points and the KPIs
   (what ``/data/rig-state`` and ``/data/kpi`` do for history), against reading the same points
   from the store alone (baseline), and extrapolated to the routes' 7-day limit.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from witskit.analytics import RIG_STATE_CODES, RigStateClassifier, compute_kpis
from witskit.protocol import DecodedFrame, WITSDecoder, iter_decode
from witskit.service.accounts import AccountStore
from witskit.service.analytics import LiveAnalytics
from witskit.sim.model import DrillingSimulator
from witskit.storage.store import Store

WEEK = 7 * 86400


def fleet(rigs: int, seconds: int) -> list[list[DecodedFrame]]:
    feeds: dict[int, bytes] = {}
    out = []
    for rig in range(rigs):
        seed = rig % 20  # 20 distinct feeds, reused: a fleet of rigs
        if seed not in feeds:
            sim = DrillingSimulator(seed, records=(1,), all_states=True, trip_every_stands=2)
            feeds[seed] = b"".join(sim.frames(seconds))
        decoded = iter_decode(feeds[seed], source=f"rig-{rig}")
        out.append([f for f in decoded if isinstance(f, DecodedFrame)][:seconds])
    return out


async def live(tmp: Path, rigs: int, seconds: int) -> None:
    url = f"sqlite:///{tmp / 'live.db'}"
    store = await Store.open(url)
    tables = await AccountStore.open(url)
    analytics = LiveAnalytics(tables, store, metric=False, decoder=WITSDecoder)
    feeds = fleet(rigs, seconds)
    classifiers = [RigStateClassifier() for _ in range(rigs)]
    t0 = time.perf_counter()
    for second in range(seconds):
        for clf, feed in zip(classifiers, feeds, strict=True):
            clf.feed(feed[second])
    base = rigs * seconds / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    on_frame = analytics.on_frame
    for second in range(seconds):
        for feed in feeds:
            on_frame(feed[second])
    rate = rigs * seconds / (time.perf_counter() - t0)
    pending = len(analytics._dirty)
    t0 = time.perf_counter()
    await analytics.flush()
    first = time.perf_counter() - t0
    for feed in feeds:  # one more second each: every open interval's end moves (updates)
        on_frame(feed[-1])
    t0 = time.perf_counter()
    await analytics.flush()
    steady = time.perf_counter() - t0
    print(
        f"live: {rigs} rigs x {seconds} s: {rate:,.0f} frames/s through LiveAnalytics.on_frame "
        f"= {rate / rigs:.0f}x what {rigs} rigs at 1 Hz send; the classifier alone (baseline) "
        f"{base:,.0f} frames/s, so the interval bookkeeping costs {base / rate:.2f}x"
    )
    print(
        f"flush: {pending:,} intervals written in {first * 1000:.0f} ms; a steady flush "
        f"({rigs} open intervals' ends) in {steady * 1000:.0f} ms, once every 5 s"
    )
    await tables.aclose()
    await store.aclose()


async def stored(tmp: Path, hours: float) -> None:
    url = f"sqlite:///{tmp / 'range.db'}"
    store = await Store.open(url)
    tables = await AccountStore.open(url)
    analytics = LiveAnalytics(tables, store, metric=False, decoder=WITSDecoder)
    n = int(hours * 3600)
    start = datetime(2026, 1, 1, 6, tzinfo=UTC)
    sim = DrillingSimulator(7, records=(1,), all_states=True, trip_every_stands=2, start=start)
    frames = [f for f in iter_decode(b"".join(sim.frames(n)), source="rig-7") if isinstance(f, DecodedFrame)]
    for k in range(0, len(frames), 5000):
        await store.write(frames[k : k + 5000])
    end = frames[-1].timestamp.replace(microsecond=0)
    t0 = time.perf_counter()
    points = 0
    scan = await store.scan("rig-7", list(RIG_STATE_CODES), start, end)
    async for batch in scan:
        points += len(batch)
    read = time.perf_counter() - t0
    t0 = time.perf_counter()
    intervals = await analytics.computed_intervals("rig-7", start, end, 50_000)
    states = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = await analytics.classify_stored("rig-7", start, end, compute_kpis)
    kpis = time.perf_counter() - t0
    frames_n = len(frames)
    print(
        f"stored range: {frames_n:,} frames ({hours:g} h at 1 Hz, {points:,} points): reading the points "
        f"alone (baseline) {read:.2f} s; rig states ({len(intervals)} intervals) {states:.2f} s = "
        f"{states / read:.2f}x the read; KPIs ({report.total.total_hours:.1f} h) {kpis:.2f} s "
        f"= {kpis / read:.2f}x"
    )
    week = max(states, kpis) * WEEK / frames_n
    print(f"extrapolated to the 7-day limit (604,800 frames): about {week:.0f} s per request")
    await tables.aclose()
    await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: fewer seconds and hours")
    args = parser.parse_args()
    seconds, hours = (20, 0.5) if args.quick else (120, 6.0)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(live(Path(tmp), 1000, seconds))
        asyncio.run(stored(Path(tmp), hours))


if __name__ == "__main__":
    main()
