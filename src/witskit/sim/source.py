"""An in-process simulated rig (``sim://rig-1?rate=1&seed=0``): the main job's default source.

It runs :class:`~witskit.sim.model.DrillingSimulator` in real time (``rate`` record-1 frames per
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
from urllib.parse import urlsplit

from witskit.errors import UsageError
from witskit.protocol import FrameParser
from witskit.sim.model import RECORDS, DrillingSimulator
from witskit.transport.base import Source, SourceEvent
from witskit.transport.options import URLOptions

__all__ = ["URL_OPTIONS", "SimulatorSource"]

#: Query keys of ``sim://`` URLs.
URL_OPTIONS = ("rate", "seed", "records", "speed", "metric", "frames", "name")


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
        """``sim://RIG?rate=1&seed=0&records=1,2,8&speed=1&metric=0&frames=N&name=NAME``; named ``RIG``.

        The query follows the rules of every scheme (:class:`~witskit.transport.options.URLOptions`):
        an unknown option, an option given twice or a value of the wrong kind (``metric=banana``,
        ``seed=1.5``, ``records=3``) raises :class:`~witskit.errors.UsageError`. Keyword ``options``
        override the query.
        """
        query = URLOptions(url, URL_OPTIONS)  # first: it refuses a URL urlsplit cannot read
        parts = urlsplit(url)
        if parts.fragment:
            raise UsageError(f"{query.url}: unexpected fragment '#{parts.fragment}'")
        kwargs: dict[str, Any] = {
            "seed": query.integer("seed"),
            "rate": query.number("rate"),
            "speed": query.number("speed"),
            "metric": query.flag("metric"),
            "records": query.integers("records", RECORDS),
            "frames": query.integer("frames", minimum=0),
        }
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        kwargs.update(options)
        name = kwargs.pop("name", query.text("name") or parts.netloc + parts.path or "rig-1")
        return cls(name, **kwargs)

    async def events(self) -> AsyncIterator[SourceEvent]:
        """Simulated frames at the simulated rate, parsed like any feed."""
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
