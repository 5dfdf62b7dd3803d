"""Alarms live at fleet scale: can one core run the rules for 1000 rigs sending a frame a second?

Run:  .venv/bin/python bench/bench_alarms.py           (about 30 s; writes bench/out/alarms.json)
      .venv/bin/python bench/bench_alarms.py --quick   (a few seconds)

The frames are the simulator's record 1 (30 items), decoded beforehand (decoding is ingest's cost,
paid once whatever runs after it), one stream per rig, interleaved as they arrive: second by
second, every rig's frame of that second. The five rules of docs/analytics.md's pipeline file run
on them (a threshold, a rate, a difference and both kick indicators), through

1. ``AlarmEngine.feed`` frame by frame, and
2. the pipeline's alarm stage (``AlarmStage.write``) in batches of 2,000, as the pipeline calls it,
   without a store or webhooks (their cost is off the ingest path: a queue and a transaction per
   batch of events),
3. the stage as ``witskit run`` builds it (``witskit.service.alarms``): the same, plus a rig-state
   classifier per rig for the ``pit_gain`` rule's tripping question, and with no rule at all (the
   service always has the stage),
4. and, for scale, the data-quality checks (``check_quality``) over the same frames.

Printed: frames/s on one core and the ratio to 1000 frames/s (>= 1 keeps up), and, as a baseline
in the same run, the cheapest possible loop over the same frames (a code->value dict per frame and
one comparison per rule), so the engine's overhead is a ratio too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RIGS_TARGET = 1000  # rigs at 1 Hz: the target rate is this many frames per second

RULES = [
    {"name": "spp-high", "type": "threshold", "code": "0121", "above": 3000, "unit": "PSI", "hysteresis": 100,
     "for_seconds": 3, "clear_seconds": 5, "severity": "critical"},
    {"name": "hookload-drop", "type": "rate", "code": "0114", "fall": 50, "window_seconds": 10},
    {"name": "flow-imbalance", "type": "difference", "code": "0129", "minus": "0130", "above": 40,
     "for_seconds": 10},
    {"name": "kick-pit-gain", "type": "pit_gain"},
    {"name": "kick-flow-out", "type": "flow_out_rise", "rise": 40},
]  # fmt: skip


def fleet(rigs: int, seconds: int) -> list:  # type: ignore[type-arg]
    """``seconds`` x ``rigs`` decoded frames, interleaved second by second."""
    from witskit.protocol import FrameParser, WITSDecoder, WITSFrame
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(3, records=(1,)).frames(seconds))
    decoder = WITSDecoder()
    per_rig = []
    for k in range(rigs):
        parser = FrameParser(source=f"rig-{k:04d}")
        per_rig.append([decoder.decode(e) for e in parser.feed(data) if isinstance(e, WITSFrame)])
    return [stream[s] for s in range(seconds) for stream in per_rig]


def best_of(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 simulated seconds, one run each")
    ap.add_argument("--rigs", type=int, default=RIGS_TARGET)
    args = ap.parse_args()
    seconds, runs = (10, 1) if args.quick else (60, 3)

    from witskit.analytics.alarms import AlarmEngine, parse_rules
    from witskit.analytics.quality import QualitySettings, check_quality
    from witskit.pipeline.alarms import AlarmStage
    from witskit.service.alarms import RigStates

    t0 = time.perf_counter()
    frames = fleet(args.rigs, seconds)
    print(
        f"{len(frames):,} frames: {args.rigs} rigs x {seconds} s (made in {time.perf_counter() - t0:.1f} s)"
    )
    rules = parse_rules(RULES)
    codes = [r.code for r in rules]
    events = 0

    def baseline() -> None:
        hits = 0
        for frame in frames:
            values = dict(zip(frame.codes, frame.values, strict=True))
            for code in codes:
                value = values.get(code)
                if isinstance(value, int | float) and value > 1e9:
                    hits += 1

    def engine() -> None:
        nonlocal events
        eng = AlarmEngine(rules)
        feed = eng.feed
        events = sum(len(feed(frame)) for frame in frames)

    def stage(rig_states: bool = False, with_rules: bool = True) -> None:
        st = AlarmStage(AlarmEngine(rules if with_rules else []))
        if rig_states:
            st.state_of = RigStates(st.engine, metric=False)

        async def run() -> None:
            for i in range(0, len(frames), 2000):
                await st.write(frames[i : i + 2000], upto=i)

        asyncio.run(run())

    def service_stage() -> None:
        stage(rig_states=True)

    def empty_stage() -> None:
        stage(with_rules=False)

    def quality() -> None:
        check_quality(frames, QualitySettings(check_clock=False))

    # Warm-up: pint builds its registry at the first unit conversion of a process (once, at start).
    AlarmEngine(rules).feed_many(frames[:100])
    check_quality(frames[:100])
    t_base, t_engine, t_stage = best_of(baseline, runs), best_of(engine, runs), best_of(stage, runs)
    t_service, t_empty = best_of(service_stage, runs), best_of(empty_stage, runs)
    t_quality = best_of(quality, runs)
    n = len(frames)
    report = {
        "frames": n,
        "rigs": args.rigs,
        "rules": len(rules),
        "events": events,
        "baseline_frames_per_s": n / t_base,
        "engine_frames_per_s": n / t_engine,
        "stage_frames_per_s": n / t_stage,
        "engine_ratio_to_1000_rigs": n / t_engine / RIGS_TARGET,
        "stage_ratio_to_1000_rigs": n / t_stage / RIGS_TARGET,
        "engine_vs_baseline": t_base / t_engine,
        "service_stage_frames_per_s": n / t_service,
        "service_stage_ratio_to_1000_rigs": n / t_service / RIGS_TARGET,
        "empty_stage_frames_per_s": n / t_empty,
        "quality_frames_per_s": n / t_quality,
    }
    print(
        f"baseline (dict + one comparison per rule): {report['baseline_frames_per_s']:,.0f} frames/s\n"
        f"AlarmEngine.feed, {len(rules)} rules:            {report['engine_frames_per_s']:,.0f} frames/s "
        f"-> {report['engine_ratio_to_1000_rigs']:.1f}x 1000 rigs at 1 Hz (target >= 1); "
        f"{report['engine_vs_baseline']:.0%} of the baseline's speed; {events} events\n"
        f"AlarmStage.write (batches of 2000):       {report['stage_frames_per_s']:,.0f} frames/s "
        f"-> {report['stage_ratio_to_1000_rigs']:.1f}x 1000 rigs at 1 Hz\n"
        f"the service's stage (+ rig state per rig):  {report['service_stage_frames_per_s']:,.0f} frames/s "
        f"-> {report['service_stage_ratio_to_1000_rigs']:.1f}x 1000 rigs at 1 Hz; "
        f"{t_stage / t_service:.0%} of the plain stage's speed\n"
        f"the service's stage with no rule:          {report['empty_stage_frames_per_s']:,.0f} frames/s\n"
        f"data quality (QualityChecker, every check): {report['quality_frames_per_s']:,.0f} frames/s "
        f"-> {report['quality_frames_per_s'] / RIGS_TARGET:.1f}x 1000 rigs at 1 Hz"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "alarms.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
