"""Points for the export tests: a drilling stretch on and off bottom, and an in-memory reader.

:func:`drilling` makes record-1-like readings once a second: the bit drills from 1000.0 m at
0.13 m/s, is lifted 5 m off bottom for a connection between seconds 20 and 29 (readings taken
then must not reach a depth log), and drills on; ROPA is null at second 5.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from witskit.export.table import Point

T0 = datetime(2026, 12, 3, 10, 0, 0, 250000, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Reading:
    """A stored reading, shaped as :class:`witskit.storage.PointRow`."""

    time: datetime
    code: str
    value: str | int | float | None


def drilling(seconds: int = 60, well: str = "A-1 <Main> & Co") -> list[Reading]:
    """The readings of the module docstring, in time order."""
    out: list[Reading] = []
    depth = 1000.0
    for i in range(seconds):
        t = T0 + timedelta(seconds=i)
        lifted = 20 <= i < 30
        if not lifted:
            depth = round(depth + 0.13, 2) if i else depth
        bit = round(depth - 5.0, 2) if lifted else depth
        rop = None if i == 5 else 40.0 + i / 4
        out += [
            Reading(t, "0101", well),
            Reading(t, "0108", bit),
            Reading(t, "0110", depth),
            Reading(t, "0113", rop),
            Reading(t, "0116", 11.5 + (i % 7) / 10),
        ]
    return out


class MemoryReader:
    """A :class:`witskit.export.PointReader` over a list of readings (in batches of ``batch``)."""

    def __init__(self, readings: list[Reading], source: str = "rig-1", batch: int = 7) -> None:
        self.readings = readings
        self.source = source
        self.batch = batch

    async def query_batches(
        self, source: str, codes: list[str], start: datetime | None, end: datetime | None
    ) -> AsyncGenerator[Sequence[Point], None]:
        """The readings of ``source`` and ``codes`` in ``[start, end)``."""
        if source != self.source:
            return
        rows = [
            r
            for r in self.readings
            if r.code in codes and (start is None or r.time >= start) and (end is None or r.time < end)
        ]
        for i in range(0, len(rows), self.batch):
            yield rows[i : i + self.batch]


async def batches_of(readings: list[Reading], size: int = 7) -> AsyncGenerator[Sequence[Point], None]:
    """``readings`` in batches of ``size``."""
    for i in range(0, len(readings), size):
        yield readings[i : i + size]
