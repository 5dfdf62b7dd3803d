"""KPIs against hand-computed cases: a scripted hour of drilling, a connection, a trip and a gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from witskit.analytics import RigState, Section, StateSample, compute_kpis
from witskit.errors import UsageError

T0 = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
R = RigState


def script(*steps: tuple[RigState, int, float, float, float, float]) -> list[StateSample]:
    """1 Hz samples: each step is (state, seconds, hole from, hole to, bit from, bit to), linear."""
    out: list[StateSample] = []
    t = T0
    for state, seconds, h0, h1, b0, b1 in steps:
        for i in range(seconds):
            f = i / seconds
            out.append(StateSample(t, state, h0 + (h1 - h0) * f, b0 + (b1 - b0) * f))
            t += timedelta(seconds=1)
    return out


# Drill 600 s rotary from 1000 to 1010 ft, slide 300 s to 1012 ft, pick up 20 s (back reaming 10 ft),
# stop 10 s, slips 120 s, out of slips and circulate 40 s, ream down 30 s to bottom, drill 60 s to
# 1013 ft. Then a trip out: 2 stands of 90 ft (100 s each) with 50 s of slips between, and a
# final 10 s stationary so the last move ends.
CASE = script(
    (R.ROTARY_DRILLING, 600, 1000, 1010, 1000, 1010),
    (R.SLIDE_DRILLING, 300, 1010, 1012, 1010, 1012),
    (R.BACK_REAMING, 20, 1012, 1012, 1012, 1002),
    (R.STATIONARY, 10, 1012, 1012, 1002, 1002),
    (R.IN_SLIPS, 120, 1012, 1012, 1002, 1002),
    (R.CIRCULATING, 40, 1012, 1012, 1002, 1002),
    (R.REAMING, 30, 1012, 1012, 1002, 1012),
    (R.ROTARY_DRILLING, 60, 1012, 1013, 1012, 1013),
    (R.TRIPPING_OUT, 101, 1013, 1013, 1013, 913),
    (R.IN_SLIPS, 50, 1013, 1013, 913, 913),
    (R.TRIPPING_OUT, 101, 1013, 1013, 913, 813),
    (R.STATIONARY, 10, 1013, 1013, 813, 813),
)


def test_hours_footage_and_rop() -> None:
    k = compute_kpis(CASE).total
    assert k.rotary_hours == pytest.approx(660 / 3600)
    assert k.slide_hours == pytest.approx(300 / 3600)
    # Footage is hole depth made while drilling: 10 + 2 + 1 ft (the last drilling second ends at 1013
    # because the next sample, tripping, reads 1013).
    assert k.footage[R.ROTARY_DRILLING] == pytest.approx(11.0)
    assert k.footage[R.SLIDE_DRILLING] == pytest.approx(2.0)
    assert k.rop() == pytest.approx(13.0 / (960 / 3600))  # 48.75 ft/h on bottom
    assert k.rop(R.SLIDE_DRILLING) == pytest.approx(2.0 / (300 / 3600))  # 24 ft/h
    total = len(CASE) - 1  # the last sample has no successor: its second is not counted
    assert k.total_hours == pytest.approx(total / 3600)
    assert k.flat_hours == pytest.approx((total - 960) / 3600)
    assert k.circulating_hours == pytest.approx(40 / 3600)


def test_the_connection_is_listed_with_both_times() -> None:
    (conn,) = compute_kpis(CASE).total.connections
    assert conn.off_bottom == T0 + timedelta(seconds=900)  # slide ends
    assert conn.slips_to_slips == 120
    assert conn.weight_to_weight == 20 + 10 + 120 + 40 + 30  # 220 s until back on bottom
    assert conn.hole_depth == 1012


def test_the_trip_speed_counts_slips_between_stands() -> None:
    (trip,) = compute_kpis(CASE).total.trips
    assert trip.direction == "out"
    assert trip.stands == 2
    # Travel per stand as sampled: 100 s of 101 samples from 1013 to 913 (last sample at 914-ish).
    per_stand = 100 * 100 / 101
    assert trip.distance == pytest.approx(2 * per_stand)
    assert trip.hours == pytest.approx((101 + 50 + 101) / 3600)
    assert trip.speed == pytest.approx(2 * per_stand / ((101 + 50 + 101) / 3600))
    assert trip.stands_per_hour == pytest.approx(2 / (252 / 3600))


def test_days_split_at_utc_midnight_and_sections_by_hole_depth() -> None:
    shifted = [StateSample(s.time + timedelta(minutes=50), s.state, s.hole_depth, s.bit_depth) for s in CASE]
    report = compute_kpis(shifted, sections=[Section("top", 0, 1011), Section("bottom", 1011, 2000)])
    first, second = sorted(report.days)
    assert report.days[first].total_hours == pytest.approx(600 / 3600)  # 23:50 to midnight
    assert report.days[first].rotary_hours == pytest.approx(600 / 3600)
    assert report.days[second].total_hours == pytest.approx((len(CASE) - 1 - 600) / 3600)
    top, bottom = report.sections["top"], report.sections["bottom"]
    assert top.total_hours + bottom.total_hours == pytest.approx(report.total.total_hours)
    assert top.footage[R.ROTARY_DRILLING] == pytest.approx(10.0)
    assert top.footage[R.SLIDE_DRILLING] == pytest.approx(1.0)  # 1010 to 1011 ft of the slide
    assert len(bottom.connections) == 1
    assert not top.connections


def test_a_gap_counts_no_time_and_breaks_a_connection() -> None:
    samples = script(
        (R.ROTARY_DRILLING, 100, 1000, 1001, 1000, 1001), (R.IN_SLIPS, 100, 1001, 1001, 990, 990)
    )
    late = [
        StateSample(s.time + timedelta(hours=1), s.state, s.hole_depth, s.bit_depth) for s in samples[100:]
    ]
    tail = script((R.ROTARY_DRILLING, 10, 1001, 1002, 1001, 1002))
    tail = [StateSample(s.time + timedelta(hours=2), s.state, s.hole_depth, s.bit_depth) for s in tail]
    k = compute_kpis(samples[:100] + late + tail).total
    assert k.total_hours == pytest.approx((99 + 99 + 9) / 3600)
    assert k.connections == []


def test_report_to_dict_names_units() -> None:
    d = compute_kpis(CASE, metric=True).to_dict()
    assert d["units"] == {"depth": "m", "speed": "m/h"}
    assert d["total"]["connections"]["count"] == 1
    assert d["total"]["tripping"]["out"]["stands"] == 2


@pytest.mark.parametrize(("top", "bottom"), [(10.0, 10.0), (20.0, 10.0)])
def test_a_section_upside_down_is_refused(top: float, bottom: float) -> None:
    with pytest.raises(UsageError, match="must be above"):
        Section("x", top, bottom)
