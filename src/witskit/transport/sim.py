"""An in-process simulated rig (``sim://rig-1?rate=1&seed=0``): the main job's default source.

It runs :class:`~witskit.simulator.DrillingSimulator` in real time (``rate`` record-1 frames per
second, ``speed`` times faster than the rig clock if asked) and passes its bytes through the same
:class:`~witskit.protocol.FrameParser` as a network feed, so everything downstream is exercised
exactly as with a real rig. The simulated clock starts at the current time, so the frames' DATE and
TIME are live.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from witskit.errors import UsageError
from witskit.protocol import FrameParser
from witskit.transport.base import Source, SourceEvent

__all__ = ["SimulatorSource"]

_OPTIONS = {"rate", "seed", "records", "speed", "metric", "frames", "name"}


class SimulatorSource(Source):
    """Frames from a simulated drilling rig, paced in real time.

    ``sim://rig-1`` is the source ``rig-1``: the rig's name, in ``witskit stream`` as in
    ``witskit run`` (``name=`` in the URL or a pipeline file's ``name:`` overrides it).
    """

    def __init__(
        self,
        name: str = "rig-1",
        *,
        seed: int = 0,
        rate: float = 1.0,
        records: tuple[int, ...] = (1, 2, 8),
        speed: float = 1.0,
        metric: bool = False,
        frames: int | None = None,
    ) -> None:
        if rate <= 0 or speed <= 0:
            raise UsageError(f"{name}: rate and speed must be positive")
        self.name = name
        self.seed = seed
        self.rate = rate
        self.records = records
        self.speed = speed
        self.metric = metric
        self.frames = frames
        self._closed = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SimulatorSource:
        """``sim://RIG?rate=1&seed=0&records=1,2,8&speed=1&metric=0&frames=N&name=NAME``; named ``RIG``."""
        parts = urlsplit(url)
        rig = parts.netloc + parts.path or "rig-1"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - _OPTIONS
        if unknown:
            raise UsageError(
                f"{url}: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_OPTIONS))}"
            )
        try:
            kwargs: dict[str, Any] = {
                "seed": int(query.get("seed", 0)),
                "rate": float(query.get("rate", 1.0)),
                "speed": float(query.get("speed", 1.0)),
                "metric": query.get("metric", "0") in ("1", "true", "yes"),
                "records": tuple(int(r) for r in query.get("records", "1,2,8").split(",") if r),
                "frames": int(query["frames"]) if "frames" in query else None,
            }
        except ValueError as exc:
            raise UsageError(f"{url}: bad option value ({exc})") from None
        name = query.get("name", rig)
        if not name:
            raise UsageError(f"{url}: option name is empty")
        kwargs.update(options)
        return cls(kwargs.pop("name", name), **kwargs)

    async def events(self) -> AsyncIterator[SourceEvent]:
        """Simulated frames at the simulated rate, parsed like any feed."""
        from witskit.simulator import DrillingSimulator

        start = datetime.now(UTC).replace(microsecond=0)
        sim = DrillingSimulator(
            self.seed, start=start, rate=self.rate, records=self.records, metric=self.metric
        )
        parser = FrameParser(source=self.name)
        wall0 = time.monotonic()
        for sim_time, data in sim.events(self.frames):
            due = wall0 + (sim_time - start).total_seconds() / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):  # the normal case: nobody closed us meanwhile
                    async with asyncio.timeout(delay):
                        await self._closed.wait()
            if self._closed.is_set():
                break
            for event in parser.feed(data):
                yield event
        for event in parser.close():
            yield event

    async def aclose(self) -> None:
        """Stop the simulation."""
        self._closed.set()
