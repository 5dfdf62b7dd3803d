"""RigStateClassifier on crafted frames: each rule, the estimates, overrides and bad data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from witskit.analytics import (
    RigState,
    RigStateClassifier,
    RigStateSettings,
    Sample,
    classify,
    samples_from_points,
)
from witskit.errors import ConfigError, UsageError
from witskit.protocol import Value, decode_frame

T0 = datetime(2026, 5, 1, tzinfo=UTC)

#: A hanging string off bottom, static, pumps off, in FPS.
STILL: dict[str, Value] = {
    "0108": 9000.0,
    "0110": 9050.0,
    "0112": 40.0,
    "0114": 250.0,
    "0116": 0.0,
    "0118": 0.0,
    "0120": 0,
    "0121": 0.0,
    "0123": 0,
    "0124": 0,
    "0130": 0.0,
}


def run(clf: RigStateClassifier, frames: list[dict[str, Value]], start: int = 0) -> list[RigState]:
    return [clf.update(T0 + timedelta(seconds=start + i), f) for i, f in enumerate(frames)]


def ready(**settings: object) -> RigStateClassifier:
    """A classifier that has seen 60 s in slips and 60 s hanging, so it knows the block weight."""
    clf = RigStateClassifier(RigStateSettings(**settings))  # type: ignore[arg-type]
    run(clf, [{**STILL, "0114": 40.0}] * 60 + [STILL] * 60)
    return clf


def moving(speed: float, seconds: int, **extra: Value) -> list[dict[str, Value]]:
    """Frames with the block moving at ``speed`` ft/s (up positive) and the bit following it."""
    return [{**STILL, "0112": 40.0 + speed * i, "0108": 9000.0 - speed * i, **extra} for i in range(seconds)]


def test_the_block_weight_is_estimated_from_the_slips_level() -> None:
    clf = ready()
    assert clf.block_weight == pytest.approx(40.5, abs=1.0)
    threshold = clf.slips_threshold
    assert threshold is not None
    assert 40 + 10 <= threshold <= 250 - 100  # block + max(10 klb, 30% of the hanging weight)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        pytest.param([{**STILL, "0114": 42.0}] * 5, RigState.IN_SLIPS, id="in-slips"),
        pytest.param([STILL] * 5, RigState.STATIONARY, id="stationary"),
        pytest.param([{**STILL, "0130": 600.0, "0121": 2200.0}] * 5, RigState.CIRCULATING, id="circulating"),
        pytest.param(moving(1.0, 6), RigState.TRIPPING_OUT, id="tripping-out"),
        pytest.param(moving(-1.0, 6), RigState.TRIPPING_IN, id="tripping-in"),
        pytest.param(moving(0.4, 6, **{"0130": 600.0}), RigState.BACK_REAMING, id="back-reaming"),
        pytest.param(moving(-0.4, 6, **{"0120": 60}), RigState.REAMING, id="reaming-rotation-only"),
        pytest.param(
            [{**STILL, "0108": 9050.0, "0130": 600.0, "0120": 120, "0116": 20.0}] * 5,
            RigState.ROTARY_DRILLING,
            id="rotary",
        ),
        pytest.param(
            [{**STILL, "0108": 9049.5, "0130": 600.0, "0120": 0, "0116": 20.0}] * 5,
            RigState.SLIDE_DRILLING,
            id="slide",
        ),
    ],
)
def test_each_state_from_its_readings(frames: list[dict[str, Value]], expected: RigState) -> None:
    clf = ready()
    assert run(clf, frames, start=120)[-1] is expected


def test_a_one_frame_spike_never_flips_the_state() -> None:
    clf = ready()
    frames = [STILL] * 5 + [{**STILL, "0114": 0.0}] + [STILL] * 5 + [{**STILL, "0112": 140.0}] + [STILL] * 5
    assert set(run(clf, frames, start=120)) == {RigState.STATIONARY}


def test_nulls_are_held_then_unknown() -> None:
    clf = ready()
    frames = [STILL] * 3 + [{**STILL, "0114": None}] * 20
    states = run(clf, frames, start=120)
    assert states[5] is RigState.STATIONARY  # the last hook load stands in for 10 s
    assert states[-1] is RigState.UNKNOWN  # then it is missing


def test_pumps_from_spp_when_flow_and_strokes_are_missing() -> None:
    clf = ready()
    # A missing item is held for 10 s, so the flow item's last 0 counts until then.
    frames = [{k: v for k, v in STILL.items() if k not in {"0130", "0123", "0124"}} | {"0121": 2500.0}] * 15
    assert run(clf, frames, start=120)[-1] is RigState.CIRCULATING
    no_pump_items = {k: v for k, v in STILL.items() if k not in {"0130", "0123", "0124", "0121"}}
    assert run(clf, [no_pump_items] * 15, start=200)[-1] is RigState.UNKNOWN


def test_overrides_apply_in_the_feeds_units() -> None:
    # Metric: the block weighs 18 KDN (40 klb); nothing learned, the override rules from frame one.
    clf = RigStateClassifier(RigStateSettings(metric=True, block_weight=18.0))
    assert clf.block_weight == pytest.approx(18.0)
    threshold = clf.slips_threshold
    assert threshold == pytest.approx(18.0 + 4.448, abs=0.01)  # plus the 10 klb margin, in KDN
    metric_still = {**STILL, "0108": 2743.0, "0110": 2758.0, "0112": 12.0, "0114": 110.0}
    assert run(clf, [{**metric_still, "0114": 19.0}] * 3)[-1] is RigState.IN_SLIPS
    assert run(clf, [metric_still] * 5, start=3)[-1] is RigState.STATIONARY


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hold": 0}, "hold must be positive"),
        ({"block_weight": -1.0}, "block_weight must be positive"),
        ({"rpm_threshold": "fast"}, "rpm_threshold must be a number"),
        ({"metric": "yes"}, "metric must be true or false"),
        ({"confirm": float("nan")}, "confirm must be a number"),
    ],
)
def test_bad_settings_are_refused_with_their_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        RigStateSettings(**kwargs)  # type: ignore[arg-type]


def test_feed_skips_other_records_and_classify_takes_frames_and_samples() -> None:
    clf = RigStateClassifier()
    record2 = decode_frame("&&\r\n0201WELL\r\n0208100.0\r\n!!\r\n")
    assert clf.feed(record2) is None
    record1 = decode_frame("&&\r\n0101WELL\r\n0105260501\r\n0106000000\r\n0110100.5\r\n!!\r\n")
    (row,) = classify([record2, record1])
    assert row.state is RigState.UNKNOWN  # one frame: no hook load, no speed
    assert row.hole_depth == 100.5
    assert row.bit_depth is None
    samples = [Sample(T0 + timedelta(seconds=i), STILL) for i in range(3)]
    assert [r.time for r in classify(samples)] == [s.time for s in samples]


def test_samples_from_points_groups_by_frame() -> None:
    points = [
        (T0, "0108", 1.0, 7),
        (T0, "0110", 2.0, 7),
        (T0, "0108", 3.0, 8),
        (T0 + timedelta(seconds=1), "0108", 4.0, 9),
    ]
    assert list(samples_from_points(points)) == [
        Sample(T0, {"0108": 1.0, "0110": 2.0}),
        Sample(T0, {"0108": 3.0}),
        Sample(T0 + timedelta(seconds=1), {"0108": 4.0}),
    ]


def test_settings_from_a_pipeline_files_mapping() -> None:
    settings = RigStateSettings.from_mapping({"metric": True, "block_weight": 18.0, "confirm": 3})
    assert settings == RigStateSettings(metric=True, block_weight=18.0, confirm=3)
    with pytest.raises(ConfigError, match=r"rigs\.rig-1\.rig_state\.blok_weight: unknown rig state setting"):
        RigStateSettings.from_mapping({"blok_weight": 18.0}, where="rigs.rig-1.rig_state")
    with pytest.raises(ConfigError, match="rig_state: rig state setting hold must be positive"):
        RigStateSettings.from_mapping({"hold": -1})


def test_a_gap_starts_afresh_and_time_going_backwards_moves_nothing() -> None:
    clf = ready()
    assert run(clf, [STILL] * 3, start=120)[-1] is RigState.STATIONARY
    after_gap = run(clf, [STILL] * 2, start=400)  # 4.5 min without frames
    assert after_gap == [RigState.UNKNOWN, RigState.STATIONARY]
    # A frame stamped earlier than the last one: classified with the speed it had, no jump.
    assert run(clf, [{**STILL, "0112": 90.0}], start=300) == [RigState.STATIONARY]
