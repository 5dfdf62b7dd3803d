"""The simulator's rig-state truth, all_states, and the classic stream left as it was."""

from __future__ import annotations

import hashlib
from collections import Counter

from witskit.analytics import RigState
from witskit.sim.model import RIG_STATES, DrillingSimulator

#: SHA-256 of the first 20,000 steps of seed 5 (records 1, 2, 8), as written before all_states
#: existed: the default stream must not change.
CLASSIC = "ea2d19b30a2c16864ab20a1ef3d71b4da725e6dbafc9ee39275dcba8f3b63eb6"


def test_the_vocabulary_is_analytics_own() -> None:
    assert set(RIG_STATES) == {s.value for s in RigState} - {"unknown"}


def test_all_states_plays_every_state_and_the_classic_stream_is_unchanged() -> None:
    sim = DrillingSimulator(3, records=(1,), all_states=True, trip_every_stands=2)
    seen: Counter[str] = Counter()
    for _ in range(12 * 3600):
        for _event in sim.events(1):
            pass
        seen[sim.rig_state] += 1
    assert set(seen) == set(RIG_STATES)
    assert sim.state.rig_state == sim.rig_state
    classic = DrillingSimulator(5)
    digest = hashlib.sha256(b"".join(classic.frames(20_000))).hexdigest()
    assert digest == CLASSIC
    assert b"".join(DrillingSimulator(5, all_states=False).frames(500)) == b"".join(
        DrillingSimulator(5).frames(500)
    )


def test_the_classic_stream_reports_its_states_too() -> None:
    sim = DrillingSimulator(5, records=(1,))
    seen = set()
    for _ in range(6 * 3600):
        for _event in sim.events(1):
            pass
        seen.add(sim.rig_state)
    assert {"rotary_drilling", "in_slips", "circulating", "reaming", "tripping_in", "tripping_out"} <= seen
    assert "slide_drilling" not in seen
