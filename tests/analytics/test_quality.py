"""Data-quality checks against hand-made streams: each problem found once, where it is, and a clean
simulated feed with none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from support.crafted import T0, frame, series
from witskit.analytics.quality import IssueKind, QualityIssue, QualitySettings, check_quality
from witskit.protocol import DecodedFrame


def found(issues: list[QualityIssue]) -> list[tuple[str, str, int, int, int]]:
    """(kind, code, first second, last second, count) of each issue."""
    return [
        (
            i.kind.value,
            i.code,
            int((i.start - T0).total_seconds()),
            int((i.end - T0).total_seconds()),
            i.count,
        )
        for i in issues
    ]


def noisy(i: int, base: float = 2000.0) -> float:
    return base + (i * 7 % 5)  # a live sensor never repeats itself for long


def test_a_clean_simulated_feed_has_no_issue() -> None:
    from witskit.protocol import iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(7).frames(900))  # records 1, 2 (per depth step) and 8
    frames = [f for f in iter_decode(data, source="sim") if isinstance(f, DecodedFrame)]
    assert len(frames) > 900
    # Read from memory today, so their receive time is not the rig's: no clock check.
    assert check_quality(frames, QualitySettings(check_clock=False)) == []


def test_missing_frames_are_one_gap_judged_from_the_feeds_cadence() -> None:
    one_hertz = [frame(i, {"0121": noisy(i)}) for i in range(60) if not 30 <= i < 35]
    assert found(check_quality(one_hertz)) == [("gap", "", 29, 35, 5)]
    issue = check_quality(one_hertz)[0]
    assert issue.detail == "record 1: no data for 6 s"
    # A feed every 10 s is not gappy at 10 s; a 40 s silence is 3 frames missing.
    slow = [frame(i, {"0121": noisy(i // 10)}) for i in range(0, 600, 10) if i not in (300, 310, 320)]
    assert found(check_quality(slow)) == [("gap", "", 290, 330, 3)]


def test_a_channel_missing_while_its_record_goes_on_is_a_gap_of_that_channel() -> None:
    frames = [
        frame(i, {"0121": noisy(i), "0114": noisy(i, 250)} if not 20 <= i < 28 else {"0121": noisy(i)})
        for i in range(50)
    ]
    assert found(check_quality(frames)) == [("gap", "0114", 19, 28, 8)]


def test_a_null_run_is_reported_once_with_its_length() -> None:
    values: list[float | int | None] = [noisy(i) for i in range(40)]
    values[10:14] = [None] * 4
    values[39] = None  # still open at the end: reported at the end
    assert found(check_quality(series("0121", values))) == [
        ("null_run", "0121", 10, 13, 4),
        ("null_run", "0121", 39, 39, 1),
    ]


def test_a_frozen_sensor_is_found_but_zeros_and_depths_are_not() -> None:
    settings = QualitySettings(frozen_seconds=60)
    hookload = [noisy(i, 250) for i in range(30)] + [251.5] * 90 + [noisy(i, 250) for i in range(30)]
    assert found(check_quality(series("0114", hookload), settings)) == [("frozen", "0114", 30, 119, 90)]
    assert check_quality(series("0114", hookload[:30] + [251.5] * 50), settings) == []  # 49 s: not yet
    assert check_quality(series("0123", [0] * 200), settings) == []  # pumps off
    assert check_quality(series("0110", [8500.0] * 200), settings) == []  # hole depth off bottom


def test_one_reading_that_leaves_and_comes_back_is_a_spike_a_step_is_not() -> None:
    spp = [noisy(i) for i in range(40)]
    spp[25] = 6000
    issues = check_quality(series("0121", spp))
    assert found(issues) == [("spike", "0121", 25, 25, 1)]
    assert issues[0].detail == "6000 PSI between 2003 and 2002 PSI"
    pumps_on = [noisy(i, 0) for i in range(30)] + [noisy(i, 2500) for i in range(30)]
    assert check_quality(series("0121", pumps_on)) == []


def test_readings_outside_the_units_physical_limits_are_one_run() -> None:
    hookload = [noisy(i, 250) for i in range(30)]
    hookload[10:13] = [5000, 5200, 5100]
    issues = check_quality(series("0114", hookload))
    assert found(issues) == [("out_of_range", "0114", 10, 12, 3)]
    assert issues[0].detail == "readings from 5000 to 5200 KLB, outside [-100, 3000] KLB"


def test_the_limits_follow_a_metric_feeds_units_and_can_be_overridden() -> None:
    # 20,000 psi is 137,895 kPa.
    kpa = [frame(i, {"0121": 140_000 if i == 5 else 14_000 + i % 3}, metric=True) for i in range(20)]
    issues = check_quality(kpa)
    assert found(issues) == [("out_of_range", "0121", 5, 5, 1)]
    assert issues[0].detail.endswith("outside [-689.476, 137895] KPA")
    spp = [noisy(i) for i in range(20)]
    spp[5] = 8000
    assert found(check_quality(series("0121", spp), QualitySettings(limits={"0121": (0, 7500)}))) == [
        ("out_of_range", "0121", 5, 5, 1)
    ]
    assert found(check_quality(series("0121", spp), QualitySettings(unit_limits={"PSI": (0, 7500)}))) == [
        ("out_of_range", "0121", 5, 5, 1)
    ]


def test_frames_far_from_their_receive_time_are_a_clock_offset() -> None:
    frames = [frame(i, {"0121": noisy(i)}, received_after=600 if 10 <= i < 15 else 0.5) for i in range(30)]
    issues = check_quality(frames)
    assert found(issues) == [("clock_offset", "", 10, 14, 5)]
    assert issues[0].detail == "frame time behind receive time by up to 600 s"
    assert check_quality(frames, QualitySettings(check_clock=False)) == []


def test_a_stray_old_frame_is_one_time_backwards_and_nothing_else() -> None:
    frames = [frame(i, {"0121": noisy(i)}) for i in range(20)]
    frames.insert(12, frame(3, {"0121": 2001}))
    issues = check_quality(frames)
    assert found(issues) == [("time_backwards", "", 3, 3, 1)]
    assert issues[0].kind is IssueKind.TIME_BACKWARDS
    assert issues[0].detail == "record 1: frame time went back from 2026-01-01T06:00:11+00:00"


def test_a_clock_set_back_is_one_time_backwards_then_followed() -> None:
    # The rig clock goes back 10 minutes at the 30th frame and runs on from there.
    frames = [frame(i if i < 30 else i - 600, {"0121": noisy(i)}) for i in range(60)]
    assert found(check_quality(frames)) == [("time_backwards", "", -570, -568, 3)]


@pytest.mark.parametrize("source", ["rig-a", "rig-b"])
def test_sources_are_judged_apart(source: str) -> None:
    frames = []
    for i in range(40):
        frames.append(frame(i, {"0121": noisy(i)}, source="rig-a"))
        if not (source == "rig-b" and 20 <= i < 25):
            frames.append(frame(i, {"0121": noisy(i)}, source="rig-b"))
    issues = check_quality(frames)
    assert [(i.source, i.kind) for i in issues] == ([("rig-b", IssueKind.GAP)] if source == "rig-b" else [])
    assert all(i.end - i.start < timedelta(seconds=10) for i in issues)


def test_a_depth_based_record_that_stops_is_no_gap() -> None:
    # Record 2 comes per foot drilled: at a connection it stops for minutes.
    frames = []
    for i in range(300):
        frames.append(frame(i, {"0121": noisy(i)}))
        if i < 100 or i > 250:
            frames.append(frame(i, {"0208": 5000.0 + i * 0.1}, record=2))
    assert check_quality(frames) == []
