"""A WITS capture file as a :class:`~witskit.export.document.PointReader`: export without a store.

The file is decoded with :func:`witskit.protocol.iter_decode` (bad stretches are skipped and
counted, as ``witskit decode`` does), each frame's time coming from its DATE and TIME items in the
time zone given. The points are held in memory in time order (frames of different records are
merged by time, as the store returns them), so this is for files of hours, not of months: import
a long capture into the store and export from there.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from witskit.errors import FrameError, UsageError
from witskit.export.table import Point
from witskit.protocol import WITSDecoder, iter_decode

__all__ = ["MAX_CAPTURE_POINTS", "CapturePoint", "CaptureReader"]

#: Points per batch handed to the log builder.
_BATCH: Final = 10_000
#: The most points a capture file may hold here: ~100 bytes each in memory, so 5 million is about
#: half a gigabyte (a day of full WITS from one rig is ~3 million). Longer captures go to the store.
MAX_CAPTURE_POINTS: Final = 5_000_000


@dataclass(frozen=True, slots=True)
class CapturePoint:
    """One reading of a capture file."""

    time: datetime
    code: str
    value: str | int | float | None


class CaptureReader:
    """The readings of one WITS capture file; ``source`` is the name it answers to."""

    def __init__(self, points: list[CapturePoint], source: str, bad_stretches: int = 0) -> None:
        self.points = points
        self.source = source
        self.bad_stretches = bad_stretches

    @classmethod
    def open(
        cls, path: str | Path, *, source: str | None = None, timezone: str = "UTC", metric: bool = False
    ) -> CaptureReader:
        """Decode the file at ``path`` (named ``source``, default its file name).

        ``timezone`` is the zone of the frames' DATE and TIME items (the ``WITS_TIMEZONE`` setting).
        """
        file = Path(path)
        if not file.is_file():
            raise UsageError(f"{file}: no such file")
        decoder = WITSDecoder(metric, timezone=timezone)
        points: list[CapturePoint] = []
        bad = 0
        for event in iter_decode(file, decoder=decoder):
            if isinstance(event, FrameError):
                bad += 1
                continue
            if len(points) > MAX_CAPTURE_POINTS:
                raise UsageError(
                    f"{file}: more than {MAX_CAPTURE_POINTS:,} points; import it into the store "
                    "(witskit import) and export from there"
                )
            t = event.timestamp
            points.extend(CapturePoint(t, c, v) for c, v in zip(event.codes, event.values, strict=True))
        points.sort(key=lambda p: p.time)  # stable: frames of one time keep their order
        return cls(points, source or file.name, bad)

    async def query_batches(
        self, source: str, codes: list[str], start: datetime | None, end: datetime | None
    ) -> AsyncGenerator[Sequence[Point], None]:
        """The readings of ``codes`` in ``[start, end)`` (none for another ``source``)."""
        if source != self.source:
            return
        wanted = set(codes)
        batch: list[Point] = []
        for p in self.points:
            if p.code in wanted and (start is None or p.time >= start) and (end is None or p.time < end):
                batch.append(p)
                if len(batch) >= _BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch
