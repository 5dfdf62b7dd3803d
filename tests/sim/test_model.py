"""The drilling simulator: deterministic, valid WITS, and moving like a rig."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from witskit.errors import EncodeError, UsageError
from witskit.protocol import FrameParser, WITSDecoder, WITSFrame, encode_frame
from witskit.simulator import ACTIVITY_CODES, DEFAULT_START, DrillingSimulator, Phase, SimState
from witskit.symbols import WITS_SYMBOLS, WITSDataType

R1_CODES = [
    "0101", "0102", "0103", "0104", "0105", "0106", "0107", "0108", "0110", "0112", "0113", "0114",
    "0115", "0116", "0117", "0118", "0119", "0120", "0121", "0122", "0123", "0124", "0126", "0127",
    "0128", "0129", "0130", "0131", "0132", "0133",
]  # fmt: skip

Decoded = tuple[datetime, dict[str, Any]]


def parse(data: bytes) -> list[WITSFrame]:
    parser = FrameParser()
    events = parser.feed(data) + parser.close()
    assert all(isinstance(e, WITSFrame) for e in events), [e for e in events if not isinstance(e, WITSFrame)]
    return [e for e in events if isinstance(e, WITSFrame)]


def decode_events(events: list[tuple[datetime, bytes]], *, metric: bool = False) -> list[Decoded]:
    """Decode each frame strictly and check it against the time the simulator gave it."""
    decoder = WITSDecoder(use_metric_units=metric, strict_mode=True)
    out: list[Decoded] = []
    for t, raw in events:
        (frame,) = parse(raw)
        decoded = decoder.decode(frame)
        assert decoded.errors == []
        assert decoded.timestamp == t.replace(microsecond=0)
        out.append((t, dict(decoded.items())))
    return out


def record(rows: list[Decoded], rec: int) -> list[dict[str, Any]]:
    head = f"{rec:02d}01"
    return [values for _, values in rows if head in values]


@pytest.fixture(scope="module")
def long_run() -> list[Decoded]:
    """20,000 record-1 steps at 1 Hz (about 5.5 simulated hours) with records 1, 2 and 8."""
    return decode_events(list(DrillingSimulator(seed=0).events(20_000)))


# Determinism -------------------------------------------------------------------------------------
def test_same_seed_gives_the_same_bytes() -> None:
    a = b"".join(DrillingSimulator(seed=42).frames(3000))
    b = b"".join(DrillingSimulator(42).frames(3000))
    assert a == b


def test_a_different_seed_gives_different_bytes() -> None:
    a = b"".join(DrillingSimulator(seed=1).frames(200))
    b = b"".join(DrillingSimulator(seed=2).frames(200))
    assert a != b


def test_consecutive_calls_continue_the_same_stream() -> None:
    whole = list(DrillingSimulator(seed=3).events(600))
    sim = DrillingSimulator(seed=3)
    parts = list(sim.events(250)) + list(sim.events(350))
    assert parts == whole


def test_unread_frames_of_a_step_come_first_on_the_next_call() -> None:
    whole = list(DrillingSimulator(seed=3).frames(400))
    sim = DrillingSimulator(seed=3)
    got: list[bytes] = []
    for frame in sim.frames(300):
        got.append(frame)
        if frame.startswith(b"&&\r\n0201"):
            break  # stop in the middle of a step
    got += list(sim.frames(400 - sum(f.startswith(b"&&\r\n0101") for f in got)))
    assert got == whole


def test_the_record_selection_and_units_do_not_change_the_physics() -> None:
    all_records = [f for f in DrillingSimulator(seed=5).frames(2000) if f.startswith(b"&&\r\n0101")]
    only_one = list(DrillingSimulator(seed=5, records=(1,)).frames(2000))
    assert only_one == all_records
    other_interval = list(DrillingSimulator(seed=5, records=(1,), depth_interval=0.5).frames(2000))
    assert other_interval == only_one


# Valid WITS ---------------------------------------------------------------------------------------
def test_every_frame_decodes_with_the_right_items_and_types(long_run: list[Decoded]) -> None:
    counts = {1: 0, 2: 0, 8: 0}
    for _, values in long_run:
        codes = list(values)
        rec = int(codes[0][:2])
        counts[rec] += 1
        assert codes[:7] == [f"{rec:02d}{i:02d}" for i in range(1, 8)]
        assert values[f"{rec:02d}01"] == "WITSKIT-SIM-1"
        assert values[f"{rec:02d}03"] == rec
        assert values[f"{rec:02d}07"] in ACTIVITY_CODES.values()
        if rec == 1:
            assert codes == R1_CODES
        for code, value in values.items():
            kind = WITS_SYMBOLS[code].data_type
            assert value is not None, code
            if kind is WITSDataType.ASCII:
                assert isinstance(value, str)
            elif kind.is_integer:
                assert type(value) is int, code
            else:
                assert type(value) is float, code
    assert counts[1] == 20_000
    assert counts[2] > 100
    assert counts[8] > 100
    assert {len(v) for v in record(long_run, 2)} == {24}
    assert {len(v) for v in record(long_run, 8)} == {17}


def test_frames_read_back_the_same_through_the_encoder() -> None:
    decoder = WITSDecoder(strict_mode=True)
    for raw in DrillingSimulator(seed=9).frames(300):
        (frame,) = parse(raw)
        decoded = decoder.decode(frame)
        (again,) = parse(encode_frame(decoded.items()))
        assert decoder.decode(again).values == decoded.values


def test_sequence_numbers_count_frames_of_each_record(long_run: list[Decoded]) -> None:
    for rec in (1, 2, 8):
        seq = [v[f"{rec:02d}04"] for v in record(long_run, rec)]
        assert seq == list(range(1, len(seq) + 1))


def test_frame_times_are_the_simulated_clock() -> None:
    start = datetime(2026, 3, 31, 23, 59, 50, tzinfo=UTC)
    sim = DrillingSimulator(seed=4, start=start, rate=4.0, records=(1,))
    rows = decode_events(list(sim.events(200)))  # checks the DATE/TIME items against each time
    times = [t for t, _ in rows]
    assert times[0] == start
    assert times[-1] == start + timedelta(seconds=199 / 4)
    assert sim.clock == times[-1]
    assert rows[-1][1]["0105"] == 260401  # past midnight: the date moved on


def test_a_naive_start_is_utc() -> None:
    sim = DrillingSimulator(seed=0, start=datetime(2025, 6, 1, 12, 0), records=(1,))
    t, _ = next(sim.events(1))
    assert t == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("ending", "eol"), [("crlf", b"\r\n"), ("lf", b"\n"), ("cr", b"\r")])
def test_line_endings(ending: str, eol: bytes) -> None:
    data = b"".join(DrillingSimulator(seed=0, line_ending=ending).frames(100))
    lines = data.split(eol)
    assert lines[-1] == b""
    assert all(b"\r" not in ln and b"\n" not in ln for ln in lines)
    assert lines[0] == b"&&"
    assert data.endswith(b"!!" + eol)
    assert len(parse(data)) >= 100


# Moving like a rig --------------------------------------------------------------------------------
def test_a_long_run_shows_every_phase(long_run: list[Decoded]) -> None:
    seen = {v["0107"] for v in record(long_run, 1)}
    for phase in (Phase.DRILLING, Phase.CONNECTION, Phase.TRIPPING_OUT):
        assert phase.activity_code in seen, phase


def test_depths_never_go_wrong(long_run: list[Decoded]) -> None:
    rows = record(long_run, 1)
    hole = [v["0110"] for v in rows]
    assert all(b >= a for a, b in itertools.pairwise(hole))
    assert hole[-1] > hole[0] + 150  # a few stands drilled
    assert all(v["0108"] <= v["0110"] for v in rows)
    assert all(0 < v["0112"] < 110 for v in rows)


def test_drilling_values_are_believable(long_run: list[Decoded]) -> None:
    drilling = [v for v in record(long_run, 1) if v["0107"] == 1]
    assert all(v["0108"] == v["0110"] for v in drilling)  # bit on bottom
    assert all(v["0113"] <= 150 for v in drilling)
    assert all(80 <= v["0120"] <= 160 for v in drilling[100:])
    steady = drilling[200:]
    assert 30 < sum(v["0113"] for v in steady) / len(steady) < 150
    for code, low, high in [
        ("0114", 100, 400),  # hookload, klb
        ("0116", 0, 40),  # WOB, klb
        ("0118", 5, 25),  # torque, kft.lbf
        ("0121", 2000, 4000),  # standpipe, psi
        ("0126", 700, 900),  # pits, bbl
        ("0128", 90, 100),  # flow out %
        ("0130", 450, 800),  # flow in, gpm
        ("0131", 10.0, 10.8),  # mud density out, ppg
        ("0132", 10.1, 10.7),  # mud density in, ppg
        ("0133", 95, 150),  # mud temperature out, degF
    ]:
        assert all(low <= v[code] <= high for v in steady), code
    # Flow in is what the two pumps stroke.
    for v in steady[:100]:
        assert 3.9 < v["0130"] / (v["0123"] + v["0124"]) < 4.5


def test_no_flow_and_no_rotation_during_connections(long_run: list[Decoded]) -> None:
    connection = [v for v in record(long_run, 1) if v["0107"] == 2]
    assert connection
    for v in connection:
        assert v["0123"] == v["0124"] == 0
        assert v["0129"] == v["0130"] == 0.0
        assert v["0128"] == 0
        assert v["0116"] == 0.0
        assert v["0108"] < v["0110"]  # off bottom
    in_slips = [v for v in connection if v["0114"] < 50]
    assert in_slips  # hookload drops to the block weight in the slips
    assert sum(v["0121"] < 50 for v in connection) > 0.9 * len(connection)


def test_connections_last_three_to_six_minutes() -> None:
    sim = DrillingSimulator(seed=11, records=(1,), trip_every_stands=0)
    runs: list[int] = []
    count = 0
    for _ in sim.frames(30_000):
        if sim.phase is Phase.CONNECTION:
            count += 1
        elif count:
            runs.append(count)
            count = 0
    assert len(runs) >= 4
    assert all(170 <= r <= 360 for r in runs), runs


def test_trips_go_out_and_back_in_then_circulate() -> None:
    sim = DrillingSimulator(seed=0, records=(1,), trip_every_stands=2)
    order: list[Phase] = []
    for _ in sim.frames(20_000):
        if not order or order[-1] is not sim.phase:
            order.append(sim.phase)
    start = order.index(Phase.TRIPPING_OUT)
    assert order[start : start + 5] == [
        Phase.TRIPPING_OUT,
        Phase.TRIPPING_IN,
        Phase.CIRCULATING,
        Phase.CONNECTION,
        Phase.CIRCULATING,
    ]
    assert order[start + 5] is Phase.DRILLING
    assert sim.state.trips >= 2


def test_no_trips_when_disabled() -> None:
    sim = DrillingSimulator(seed=0, records=(1,), trip_every_stands=0)
    phases = set()
    for _ in sim.frames(20_000):
        phases.add(sim.phase)
    assert phases == {Phase.DRILLING, Phase.CONNECTION, Phase.CIRCULATING}


def test_tripping_speed_is_plausible(long_run: list[Decoded]) -> None:
    rows = record(long_run, 1)
    out = [i for i, v in enumerate(rows) if v["0107"] == 3]
    assert out
    first, last = out[0], out[-1]
    pulled = rows[first]["0108"] - rows[last]["0108"]
    hours = (last - first) / 3600
    assert 900 < pulled / hours < 2500  # ft/h, including time in the slips
    assert all(v["0129"] == 0.0 and v["0120"] == 0 for v in rows[first + 10 : last])


def test_record_2_only_while_drilling_with_rising_depth(long_run: list[Decoded]) -> None:
    depths: list[float] = []
    for i, (_, values) in enumerate(long_run):
        if "0201" in values:
            assert values["0207"] == Phase.DRILLING.activity_code
            # The record 1 of the same step was drilling, or the stand ended during the step.
            r1 = next(v for _, v in reversed(long_run[:i]) if "0101" in v)
            assert r1["0107"] in (1, 2, 3)
            assert values["0211"] > 0
            assert values["0210"] > 0
            depths.append(values["0208"])
    assert depths
    assert all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(depths))
    assert depths[0] == float(int(depths[0]))


def test_record_8_reads_the_formation_behind_the_bit(long_run: list[Decoded]) -> None:
    rows = record(long_run, 8)
    assert len(rows) > 1000
    for v in rows:
        assert v["0807"] in (1, 5)  # the MWD tool pulses only with the pumps on
        assert v["0810"] - v["0813"] == pytest.approx(33.0, abs=0.02)
        assert v["0810"] - v["0821"] == pytest.approx(42.0, abs=0.02)
        assert v["0813"] == v["0817"]
        assert 20 <= v["0823"] <= 150
        assert 0.5 <= v["0815"] <= 200
        assert 0.5 <= v["0819"] <= 200
        assert v["0824"] > v["0823"]
    gammas = [v["0823"] for v in rows]
    assert max(gammas) - min(gammas) > 40  # layers show
    times = [t for t, v in long_run if "0801" in v]
    gaps = {round((b - a).total_seconds()) for a, b in itertools.pairwise(times)}
    assert 10 in gaps


def test_metric_output_is_the_fps_run_converted() -> None:
    fps = decode_events(list(DrillingSimulator(seed=8, records=(1,)).events(3000)))
    metric = decode_events(
        list(DrillingSimulator(seed=8, records=(1,), metric=True).events(3000)), metric=True
    )
    factors = {  # code: (factor, decimals in FPS, decimals in metric)
        "0108": (0.3048, 2, 2),
        "0110": (0.3048, 2, 2),
        "0112": (0.3048, 2, 2),
        "0113": (0.3048, 2, 2),
        "0114": (0.44482216152605, 2, 2),
        "0116": (0.44482216152605, 2, 2),
        "0118": (1.3558179483314, 2, 2),
        "0121": (6.894757293168, 1, 1),
        "0126": (0.158987294928, 2, 3),
        "0130": (3.785411784, 1, 1),
        "0132": (119.8264273, 2, 1),
    }
    for (_, f), (_, m) in zip(fps, metric, strict=True):
        for code, (k, fps_dec, metric_dec) in factors.items():
            tolerance = 0.5 * 10**-fps_dec * k + 0.5 * 10**-metric_dec + 1e-9
            assert m[code] == pytest.approx(f[code] * k, abs=tolerance), code
        assert m["0133"] == pytest.approx((f["0133"] - 32) / 1.8, abs=0.1)
        assert m["0120"] == f["0120"]
        assert m["0123"] == f["0123"]
    assert 1000 < metric[0][1]["0110"] < 3000  # metres


def test_metric_depth_interval_is_0_3_m() -> None:
    sim = DrillingSimulator(seed=0, records=(2,), metric=True)
    rows = decode_events(list(sim.events(5000)), metric=True)
    depths = [v["0208"] for v in record(rows, 2)]
    assert len(depths) > 10
    assert all(b - a == pytest.approx(0.3) for a, b in itertools.pairwise(depths))


def test_start_depth_is_in_the_output_units() -> None:
    ft = DrillingSimulator(seed=0, start_depth=10_000.0)
    m = DrillingSimulator(seed=0, start_depth=3048.0, metric=True)
    assert ft.state.hole_depth == pytest.approx(10_000.0)
    assert m.state.hole_depth == pytest.approx(10_000.0)


def test_state_snapshot() -> None:
    sim = DrillingSimulator(seed=0)
    assert sim.clock == DEFAULT_START
    assert sim.phase is Phase.DRILLING
    for _ in sim.frames(500):
        pass
    state = sim.state
    assert isinstance(state, SimState)
    assert state.clock == sim.clock == DEFAULT_START + timedelta(seconds=499)
    assert state.phase is sim.phase
    assert state.bit_depth <= state.hole_depth
    assert state.formation in {"shale", "sandstone", "limestone"}
    assert isinstance(state.rpm, int)
    strokes = state.spm1 + state.spm2
    assert state.flow_in == 0.0 if strokes == 0 else 3.9 < state.flow_in / strokes < 4.5


def test_phase_values_and_activity_codes() -> None:
    assert [p.value for p in Phase] == [
        "drilling",
        "connection",
        "tripping_out",
        "tripping_in",
        "circulating",
    ]
    assert [p.activity_code for p in Phase] == [1, 2, 3, 4, 5]
    assert Phase("drilling") is Phase.DRILLING


def test_generation_is_fast() -> None:
    sim = DrillingSimulator(seed=0, records=(1,))
    started = time.process_time()
    count = sum(1 for _ in sim.frames(20_000))
    elapsed = time.process_time() - started
    assert count == 20_000
    assert elapsed < 2.0


# Arguments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": float("inf")},
        {"records": (3,)},
        {"records": ()},
        {"line_ending": "crcr"},
        {"well_id": ""},
        {"start_depth": -1.0},
        {"depth_interval": 0.0},
        {"mwd_interval": -5},
        {"trip_every_stands": -1},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        DrillingSimulator(0, **kwargs)


def test_a_well_id_wits_cannot_carry_is_refused() -> None:
    with pytest.raises(EncodeError):
        DrillingSimulator(0, well_id="A&&B")


def test_bad_n_is_refused() -> None:
    with pytest.raises(UsageError):
        list(DrillingSimulator(0).events(-1))


def test_forever_keeps_going() -> None:
    frames = DrillingSimulator(0, records=(1,)).frames(None)
    assert sum(1 for _, _ in zip(range(50), frames, strict=False)) == 50
