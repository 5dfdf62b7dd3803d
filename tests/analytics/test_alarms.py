"""Alarm rules on crafted streams: each rule type fires and clears exactly once, with debounce."""

from __future__ import annotations

from typing import Any

import pytest

from support.crafted import frame, series
from witskit.analytics.alarms import AlarmEngine, AlarmEvent, parse_rules, rule_problems
from witskit.errors import ConfigError
from witskit.protocol import DecodedFrame


def run(
    rules: list[dict[str, Any]], frames: list[DecodedFrame], state: str | None = None
) -> list[AlarmEvent]:
    engine = AlarmEngine(parse_rules(rules))
    return [event for f in frames for event in engine.feed(f, state)]


def transitions(events: list[AlarmEvent]) -> list[tuple[str, int]]:
    """(state, second of the frame) of each event."""
    return [(e.state, e.time.minute * 60 + e.time.second) for e in events]


SPP_HIGH = {
    "name": "spp-high",
    "type": "threshold",
    "code": "0121",
    "above": 3000,
    "hysteresis": 100,
    "for_seconds": 3,
    "clear_seconds": 5,
    "severity": "critical",
}


def test_threshold_fires_after_its_minimum_duration_and_clears_below_the_hysteresis_band() -> None:
    spp = [2900] * 5 + [3100] * 2 + [2900]  # 2 s above: shorter than for_seconds, ignored
    spp += [3100] * 10  # fires 3 s after the crossing at second 8
    spp += [2950] * 10  # below 3000 but inside the 100 psi band: still active
    spp += [2800] * 10  # clears 5 s after second 28
    events = run([SPP_HIGH], series("0121", spp))
    assert transitions(events) == [("fired", 11), ("cleared", 33)]
    fired = events[0]
    assert (fired.rule, fired.rule_type, fired.severity, fired.source) == (
        "spp-high",
        "threshold",
        "critical",
        "rig-1",
    )
    assert (fired.code, fired.value, fired.unit) == ("0121", 3100.0, "PSI")
    assert fired.message == "spp-high fired on rig-1: 0121 = 3100 PSI"
    assert events[1].value == 2800.0


def test_below_threshold_fires_and_clears_once() -> None:
    rule = {"name": "low-flow", "type": "threshold", "code": "0130", "below": 100, "clear_seconds": 0}
    events = run([rule], series("0130", [500] * 3 + [50] * 4 + [500] * 3))
    assert transitions(events) == [("fired", 3), ("cleared", 7)]


def test_a_metric_feed_is_judged_in_its_own_unit() -> None:
    # 3000 psi is 20684 kPa: the PSI rule fires on a KPA feed at the same pressure.
    frames = [
        frame(i, {"0121": v}, metric=True)
        for i, v in enumerate([20_000, 20_000, 21_000, 21_000, 21_000, 21_000])
    ]
    events = run([{**SPP_HIGH, "unit": "PSI", "for_seconds": 0}], frames)
    assert transitions(events) == [("fired", 2)]
    assert events[0].unit == "KPA"


def test_rate_of_change_over_a_window_fires_and_clears_once() -> None:
    rule = {
        "name": "hookload-drop",
        "type": "rate",
        "code": "0114",
        "fall": 50,
        "window_seconds": 10,
        "clear_seconds": 5,
    }
    hookload = [300.0] * 15 + [300.0 - 10 * k for k in range(1, 8)] + [230.0] * 30
    events = run([rule], series("0114", hookload))
    # 50 klb lost within 10 s when the value reaches 250 (second 19); from second 27 the value 10 s
    # before is 270, less than 50 above, and the alarm clears 5 s later.
    assert transitions(events) == [("fired", 19), ("cleared", 32)]
    assert events[0].message == "hookload-drop fired on rig-1: 0114 changed -50 KLB over 10 s"


def test_difference_of_two_channels_fires_and_clears_once() -> None:
    rule = {
        "name": "flow-imbalance",
        "type": "difference",
        "code": "0129",
        "minus": "0130",
        "above": 40,
        "hysteresis": 10,
        "for_seconds": 2,
        "clear_seconds": 2,
    }
    flow_out = [600] * 5 + [660] * 6 + [635] * 3 + [600] * 5
    frames = [frame(i, {"0129": out, "0130": 600}) for i, out in enumerate(flow_out)]
    events = run([rule], frames)
    assert transitions(events) == [("fired", 7), ("cleared", 16)]  # 35 gpm stays inside the band
    assert events[0].message == "flow-imbalance fired on rig-1: 0129 - 0130 = 60 GPM"


def _drilling(i: int, pit: float, *, block: float = 50.0, spm: int = 120, rpm: int = 100) -> DecodedFrame:
    return frame(i, {"0126": pit, "0112": block, "0123": spm, "0124": spm, "0120": rpm, "0130": 600})


def test_pit_gain_fires_and_clears_once_while_drilling() -> None:
    pit = [400.0] * 60 + [400.0 + 0.5 * k for k in range(1, 31)] + [415.0] * 400
    events = run([{"name": "kick-pit", "type": "pit_gain"}], [_drilling(i, v) for i, v in enumerate(pit)])
    # 10 bbl (the default) gained within 300 s at second 79; from second 370 the volume 300 s before
    # is less than 10 bbl below, and the alarm clears 10 s (the default clear_seconds) later.
    assert transitions(events) == [("fired", 79), ("cleared", 380)]
    assert {e.severity for e in events} == {"critical"}


def test_pit_gain_is_not_an_alarm_while_tripping() -> None:
    pit = [400.0] * 60 + [400.0 + 0.5 * k for k in range(1, 31)] + [415.0] * 60
    # Pumps off, no rotation, the block travelling: the heuristic says tripping.
    tripping = [_drilling(i, v, block=5 + (i % 60) * 0.5, spm=0, rpm=0) for i, v in enumerate(pit)]
    assert run([{"name": "kick-pit", "type": "pit_gain"}], tripping) == []
    # Pumps off and nothing moving is not tripping: a well that flows with the pumps off is a kick.
    flow_check = [_drilling(i, v, spm=0, rpm=0) for i, v in enumerate(pit)]
    assert transitions(run([{"name": "kick-pit", "type": "pit_gain"}], flow_check)) == [("fired", 79)]
    # A rig-state classifier's word wins over the heuristic.
    assert run([{"name": "kick-pit", "type": "pit_gain"}], flow_check, state="tripping_out") == []


def test_flow_out_rising_with_pumps_steady_fires_once() -> None:
    flow_out = [600.0] * 70 + [600.0 + 10 * k for k in range(1, 7)] + [660.0] * 100 + [600.0] * 80
    frames = [frame(i, {"0129": v, "0123": 120, "0124": 120}) for i, v in enumerate(flow_out)]
    events = run([{"name": "kick-flow", "type": "flow_out_rise", "clear_seconds": 30}], frames)
    # 50 gpm rise within 60 s (the defaults) at second 74; from second 131 the flow 60 s before is
    # within 50 gpm, and the alarm clears 30 s later.
    assert transitions(events) == [("fired", 74), ("cleared", 161)]


def test_flow_out_rising_because_the_pumps_sped_up_is_no_kick() -> None:
    flow_out = [600.0] * 70 + [600.0 + 10 * k for k in range(1, 7)] + [660.0] * 30
    strokes = [120] * 70 + [120 + 2 * k for k in range(1, 7)] + [132] * 30
    frames = [
        frame(i, {"0129": v, "0123": s}) for i, (v, s) in enumerate(zip(flow_out, strokes, strict=True))
    ]
    assert run([{"name": "kick-flow", "type": "flow_out_rise"}], frames) == []


def test_a_flapping_signal_fires_once_and_clears_once() -> None:
    # Ten minutes of a pressure crossing the threshold every second, then quiet.
    spp = [3100 if i % 2 else 2800 for i in range(600)] + [2800] * 20
    events = run([{**SPP_HIGH, "for_seconds": 0, "clear_seconds": 10, "hysteresis": 0}], series("0121", spp))
    assert transitions(events) == [("fired", 1), ("cleared", 610)]


def test_missing_and_null_readings_leave_the_state_alone() -> None:
    spp: list[float | int | None] = [3100] * 4 + [None] * 20 + [3100] * 2 + [2800] * 6
    frames = series("0121", spp)
    frames[10] = frame(10, {"0130": 500})  # a frame without the channel at all
    events = run([{**SPP_HIGH, "for_seconds": 0}], frames)
    assert transitions(events) == [("fired", 0), ("cleared", 31)]


def test_each_source_has_its_own_alarm_and_old_frames_are_skipped() -> None:
    engine = AlarmEngine(parse_rules([{**SPP_HIGH, "for_seconds": 0}]))
    assert engine.feed(frame(0, {"0121": 3100}, source="a"))[0].source == "a"
    assert engine.feed(frame(0, {"0121": 3100}, source="b"))[0].source == "b"
    assert engine.active() == [("spp-high", "a"), ("spp-high", "b")]
    assert engine.feed(frame(-5, {"0121": 100}, source="a")) == []
    assert engine.out_of_order == 1


def test_a_replay_gives_the_same_event_ids() -> None:
    frames = series("0121", [3100] * 5)
    first = run([{**SPP_HIGH, "for_seconds": 0}], frames)
    again = run([{**SPP_HIGH, "for_seconds": 0}], frames)
    assert len(first) == 1
    assert [e.event_id for e in first] == [e.event_id for e in again]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param(
            {"name": "x", "type": "threshold", "code": "0999", "above": 1},
            "alarms.rules.0.code: unknown WITS code '0999' (not in the dictionary; add it with an overlay)",
            id="unknown-code",
        ),
        pytest.param(
            {"name": "x", "type": "threshold", "code": "0121", "above": 1, "unit": "M"},
            "alarms.rules.0.unit: 'M' does not fit 0121 SPPA (Standpipe Pressure (avg)), "
            "measured in PSI or KPA",
            id="unit-does-not-fit",
        ),
        pytest.param(
            {"name": "x", "type": "rate", "code": "0114", "fall": 50, "window_seconds": 0},
            "alarms.rules.0.window_seconds: must be more than 0 seconds (got 0)",
            id="window-of-zero",
        ),
        pytest.param(
            {"name": "x", "type": "rate", "code": "0114", "fall": 50, "window_seconds": 1e6},
            "alarms.rules.0.window_seconds: must be at most 86,400 s, a day (got 1e+06)",
            id="window-too-long",
        ),
        pytest.param(
            {"name": "x", "type": "threshold", "code": "0121", "below": 10, "above": float("nan")},
            "alarms.rules.0.above: must be a number (got nan)",
            id="not-a-number",
        ),
        pytest.param(
            {"name": "x", "type": "rate", "code": "0114", "fall": 50},
            "alarms.rules.0.window_seconds: a rate rule needs window_seconds",
            id="no-window",
        ),
        pytest.param(
            {"name": "x", "type": "thresh", "code": "0121"},
            "alarms.rules.0.type: unknown rule type 'thresh' "
            "(one of: threshold, rate, difference, pit_gain, flow_out_rise)",
            id="unknown-type",
        ),
        pytest.param(
            {"name": "x", "type": "threshold", "code": "0121", "below": 10, "abov": 3000},
            "alarms.rules.0.abov: unknown field for a threshold rule (did you mean 'above'?)",
            id="misspelt-field",
        ),
        pytest.param(
            {"name": "x", "type": "threshold", "code": 121, "above": 3000},
            'alarms.rules.0.code: must be a 4-digit WITS code in quotes, such as "0121" (got 121)',
            id="code-as-number",
        ),
        pytest.param(
            {"name": "x", "type": "difference", "code": "0129", "minus": "0121", "above": 10},
            "alarms.rules.0.minus: 0121 SPPA (PSI or KPA) cannot be subtracted from 0129 MFOA (GPM or L/M)",
            id="difference-of-unlike-channels",
        ),
        pytest.param(
            {"name": "x", "type": "threshold", "code": "0101", "above": 1},
            "alarms.rules.0.code: 0101 WID (Well Identifier) is a text item; alarms need numbers",
            id="text-item",
        ),
        pytest.param(
            {"name": "x", "type": "pit_gain", "code": "0128"},
            "alarms.rules.0.unit: the default unit 'BBL' does not fit 0128 MFOP (Mud Flow Out %), "
            "measured in %; give unit: for this channel",
            id="default-unit-does-not-fit",
        ),
        pytest.param(
            {"name": "x", "type": "threshold", "code": "0121", "above": 1, "severity": "panic"},
            "alarms.rules.0.severity: must be info, warning or critical (got 'panic')",
            id="unknown-severity",
        ),
    ],
)
def test_a_bad_rule_is_refused_with_one_clear_line(rule: dict[str, Any], message: str) -> None:
    assert [f"{field}: {text}" for field, text in rule_problems([rule])] == [message]
    with pytest.raises(ConfigError) as caught:
        parse_rules([rule])
    assert str(caught.value) == f"invalid alarm rules:\n  {message}"


def test_every_bad_rule_is_listed_and_good_ones_beside_them_are_not() -> None:
    rules = [
        SPP_HIGH,
        {"name": "spp-high", "type": "threshold", "code": "0121", "above": 1},
        {"name": "y", "type": "pit_gain", "window_seconds": -1},
    ]
    assert rule_problems(rules) == [
        ("alarms.rules.1.name", "a rule named 'spp-high' is already defined"),
        ("alarms.rules.2.window_seconds", "must be more than 0 seconds (got -1)"),
    ]


def test_without_stroke_channels_flow_in_tells_whether_the_pumps_are_steady() -> None:
    flow_out = [600.0] * 70 + [600.0 + 10 * k for k in range(1, 7)] + [660.0] * 30
    steady = [frame(i, {"0129": v, "0130": 600}) for i, v in enumerate(flow_out)]
    assert transitions(run([{"name": "kick-flow", "type": "flow_out_rise"}], steady)) == [("fired", 74)]
    # Flow in rising with flow out: the pumps sped up, no kick.
    faster = [frame(i, {"0129": v, "0130": v}) for i, v in enumerate(flow_out)]
    assert run([{"name": "kick-flow", "type": "flow_out_rise"}], faster) == []
    # Pumps off (no flow in): flow out moving is the returns settling, not judged.
    off = [frame(i, {"0129": v, "0130": 0}) for i, v in enumerate(flow_out)]
    assert run([{"name": "kick-flow", "type": "flow_out_rise"}], off) == []


def test_set_rules_keeps_the_state_of_unchanged_rules_and_drops_the_others() -> None:
    spp = {"name": "spp", "type": "threshold", "code": "0121", "above": 3000, "clear_seconds": 2}
    wob = {"name": "wob", "type": "threshold", "code": "0116", "above": 30}
    engine = AlarmEngine(parse_rules([spp, wob]))
    events = [e for i in range(3) for e in engine.feed(frame(i, {"0121": 3200, "0116": 40}))]
    assert [(e.rule, e.state) for e in events] == [("spp", "fired"), ("wob", "fired")]
    # wob changed (a new threshold), spp kept: spp stays active and does not fire again.
    engine.set_rules(parse_rules([{**wob, "above": 35}, spp]))
    assert engine.active() == [("spp", "rig-1")]
    events = [e for i in range(3, 6) for e in engine.feed(frame(i, {"0121": 3200, "0116": 40}))]
    assert [(e.rule, e.state) for e in events] == [("wob", "fired")]
    engine.set_rules(parse_rules([spp]))
    assert engine.active() == [("spp", "rig-1")]
    assert not engine.needs_rig_state
    engine.set_rules(parse_rules([{"name": "pits", "type": "pit_gain"}]))
    assert engine.needs_rig_state
    assert engine.active() == []


def test_a_rule_name_with_a_line_break_is_refused() -> None:
    rule = {"name": "spp\nalarm cleared on rig-1", "type": "threshold", "code": "0121", "above": 1}
    assert rule_problems([rule]) == [
        ("alarms.rules.0.name", "must be printable text (no line breaks or control characters)")
    ]
