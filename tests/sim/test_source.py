"""The in-process simulated rig: real-time pacing, parsed like a feed, options from its URL."""

from __future__ import annotations

import time

import pytest

from witskit.errors import UsageError
from witskit.protocol import WITSDecoder, WITSFrame
from witskit.sim.source import SimulatorSource


async def test_frames_are_paced_and_decode_with_live_times() -> None:
    source = SimulatorSource.from_url("sim://rig-7?rate=20&records=1&seed=4")
    start = time.monotonic()
    frames: list[WITSFrame] = []
    async for event in source:
        assert isinstance(event, WITSFrame)
        frames.append(event)
        if len(frames) == 21:
            break
    await source.aclose()
    elapsed = time.monotonic() - start
    assert elapsed >= 0.9  # 20 intervals of 50 ms: paced, not dumped at once
    decoded = [WITSDecoder().decode(f) for f in frames]
    assert all(d.errors == [] and d.source == "rig-7" for d in decoded)
    assert (decoded[-1].timestamp - decoded[0].timestamp).total_seconds() == pytest.approx(1.0, abs=1.0)


async def test_aclose_ends_a_waiting_source_promptly() -> None:
    source = SimulatorSource("sim://slow", rate=0.1, records=(1,))
    iterator = aiter(source)
    await anext(iterator)
    start = time.monotonic()
    await source.aclose()
    assert [e async for e in iterator] == []
    assert time.monotonic() - start < 2


def test_bad_urls_are_clear() -> None:
    with pytest.raises(UsageError, match="unknown option"):
        SimulatorSource.from_url("sim://x?colour=red")
    with pytest.raises(UsageError, match="bad option value"):
        SimulatorSource.from_url("sim://x?rate=fast")
    with pytest.raises(UsageError, match="positive"):
        SimulatorSource.from_url("sim://x?rate=0")
