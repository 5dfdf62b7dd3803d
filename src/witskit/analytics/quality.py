"""Data quality of a feed, per channel: can these numbers be trusted?

:class:`QualityChecker` reads decoded frames in arrival order and reports :class:`QualityIssue` s:

* ``gap``: frames missing, judged from the feed's own cadence: the median interval of the last
  intervals of the same record of the same source (a 1 Hz feed and a 10 s feed are both judged
  right), for the records sent on a clock (``gap_records``: 1 and 5; record 2 is sent per depth
  step and stops whenever drilling does). An interval longer than ``gap_factor`` cadences is a
  gap of ``round(interval / cadence) - 1`` frames. A whole record that stops is one gap (code
  ``""``); a channel that stops while its record goes on is a gap of that channel. Judged after
  ``MIN_INTERVALS`` intervals of a stream.
* ``null_run``: consecutive null readings of a channel (a null sentinel such as -9999, or empty).
* ``frozen``: a channel repeating the exact same number for ``frozen_seconds`` or longer. Zeros are
  not counted (a pump that is off reads 0 for hours) and neither are the depth channels in
  ``frozen_exempt`` (hole depth holds still whenever the bit is off bottom).
* ``spike``: one reading that leaves its neighbours and comes back: far from the reading before and
  the reading after, while those two agree. "Far" is ``spike_factor`` times the channel's usual
  step (1.4826 x the median absolute step of its last readings), and at least ``SPIKE_FLOOR`` of
  the channel's physical range. A step change (pumps coming on) is no spike.
* ``out_of_range``: readings outside the physical limits of the channel's unit
  (:data:`PHYSICAL_LIMITS`, converted to metric units for a metric feed), overridable per unit
  (``unit_limits``) and per code (``limits``, in the feed's unit).
* ``clock_offset``: frames whose own time is more than ``clock_tolerance`` seconds from the time
  they were received (a rig clock that is wrong, or a time zone setting that is).
* ``time_backwards``: frames of a record older than the frame before them. One or two stray old
  frames are one issue and are not judged further; ``RESYNC_AFTER`` in a row are a clock set back,
  and the stream is followed from its new time.

Runs (nulls, frozen, out of range, clock offsets) are reported once, when they end or at
:meth:`QualityChecker.finish`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from statistics import median
from typing import Final

from witskit.errors import ConversionError
from witskit.protocol import DecodedFrame
from witskit.units import convert, is_convertible

__all__ = [
    "PHYSICAL_LIMITS",
    "IssueKind",
    "QualityChecker",
    "QualityIssue",
    "QualitySettings",
    "check_quality",
]

#: Physical limits per unit of the dictionary (FPS units; a metric feed's units get them converted).
#: Wide on purpose: a reading outside them is a broken sensor or a wrong scale, never a hard day.
PHYSICAL_LIMITS: Final[Mapping[str, tuple[float, float]]] = {
    "F": (-100.0, 50_000.0),  # depths and block position: the deepest wells are ~40,000 ft
    "F/HR": (0.0, 3_000.0),  # ROP: fast top-hole drilling stays under ~1,000 ft/h
    "KLB": (-100.0, 3_000.0),  # hook load, WOB: the largest rigs hook ~2,500 klb; WOB reads a bit negative
    "KFLB": (-20.0, 200.0),  # surface torque: top drives give ~100 kft.lbf
    "RPM": (0.0, 1_000.0),  # surface rotation: top drives turn ~250 RPM
    "PSI": (-100.0, 20_000.0),  # standpipe and choke pressure: 7,500-psi systems, 15k for the highest
    "SPM": (0.0, 300.0),  # pump strokes: triplex pumps run ~150 SPM
    "GPM": (0.0, 5_000.0),  # mud flow: large-hole drilling ~1,500 gpm
    "BBL": (-5_000.0, 20_000.0),  # pit volumes and their changes
    "PPG": (0.0, 25.0),  # mud density: water 8.3, the heaviest muds ~20
    "DEGF": (-60.0, 500.0),  # mud temperature
    "%": (0.0, 100.0),
}
#: Intervals a stream needs before gaps are judged: the cadence is their median.
MIN_INTERVALS: Final = 5
#: Intervals the cadence is the median of (a sliding window: a feed that changes rate is followed).
_CADENCE_WINDOW: Final = 31
#: Steps a spike is judged against (the median absolute step of the last ones).
_STEP_WINDOW: Final = 31
#: The least "far" for a spike, as a share of the unit's physical range: a flat signal's steps are
#: ~0, and a digitiser's last bit must not count as a spike.
SPIKE_FLOOR: Final = 0.005
#: Records sent on a clock (the dictionary's "Time-Based" and "Trip - Time").
TIME_BASED_RECORDS: Final = frozenset({1, 5})
#: Frames in a row older than their stream after which the stream follows them: a rig clock that
#: was set back, not a stray old frame (one or two, resent by a buffering link).
RESYNC_AFTER: Final = 3
#: Depth channels that hold still legitimately (bit off bottom): not judged frozen by default.
FROZEN_EXEMPT: Final = frozenset({"0108", "0109", "0110", "0111", "0139"})


class IssueKind(StrEnum):
    """What is wrong (see the module docstring)."""

    GAP = "gap"
    NULL_RUN = "null_run"
    FROZEN = "frozen"
    SPIKE = "spike"
    OUT_OF_RANGE = "out_of_range"
    CLOCK_OFFSET = "clock_offset"
    TIME_BACKWARDS = "time_backwards"


@dataclass(frozen=True, slots=True)
class QualityIssue:
    """One problem of one channel (``code``; ``""`` for a whole record or frame) over a time range."""

    source: str
    code: str
    kind: IssueKind
    start: datetime
    end: datetime
    #: Frames missing (gap), readings (null_run, frozen, out_of_range, clock_offset), or 1.
    count: int
    detail: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready values (times in ISO 8601 UTC)."""
        return {
            "source": self.source,
            "code": self.code,
            "kind": self.kind.value,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "count": self.count,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class QualitySettings:
    """The checks' settings; every default is in the module docstring's terms."""

    gap_factor: float = 2.5
    frozen_seconds: float = 300.0
    frozen_exempt: frozenset[str] = FROZEN_EXEMPT
    spike_factor: float = 10.0
    clock_tolerance: float = 300.0
    #: False for data whose receive time is not the rig's (a file read today): no clock_offset.
    check_clock: bool = True
    #: The records sent on a clock, whose gaps are judged (1 General Time-Based, 5 Trip - Time);
    #: the others come per depth step or per event (record 2 stops whenever drilling does).
    gap_records: frozenset[int] = TIME_BASED_RECORDS
    #: Per unit (the dictionary's spelling), in that unit: replaces :data:`PHYSICAL_LIMITS`' entry.
    unit_limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: Per code, in the feed's unit for that code: replaces the unit's limits.
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)


class _Run:
    """An open run of readings (nulls, a frozen value, out of range, clock offsets)."""

    __slots__ = ("count", "end", "high", "low", "start", "value")

    def __init__(self, t: datetime, value: float | None = None) -> None:
        self.start = self.end = t
        self.count = 1
        self.value = value
        self.low = self.high = value

    def extend(self, t: datetime, value: float | None = None) -> None:
        self.end = t
        self.count += 1
        if value is not None:
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)


class _Cadence:
    """A stream's intervals: the last time seen and the median of recent intervals."""

    __slots__ = ("_n", "cadence", "intervals", "last")

    def __init__(self) -> None:
        self.last: datetime | None = None
        self.intervals: deque[float] = deque(maxlen=_CADENCE_WINDOW)
        self.cadence: float | None = None
        self._n = 0

    def gap(self, t: datetime, factor: float) -> tuple[float, int] | None:
        """Note time ``t``; (interval, frames missing) when the interval is a gap."""
        last, self.last = self.last, t
        if last is None:
            return None
        dt = (t - last).total_seconds()
        if dt <= 0:
            return None
        cadence = self.cadence
        if cadence is not None and dt > factor * cadence:
            return dt, max(1, round(dt / cadence) - 1)
        self.intervals.append(dt)
        self._n += 1
        if len(self.intervals) >= MIN_INTERVALS and (cadence is None or self._n % 8 == 0):
            self.cadence = median(self.intervals)
        return None


class _Channel:
    __slots__ = ("cadence", "frozen", "nulls", "out", "prev", "prev2", "steps")

    def __init__(self) -> None:
        self.cadence = _Cadence()
        self.nulls: _Run | None = None
        self.frozen: _Run | None = None
        self.out: _Run | None = None
        self.steps: deque[float] = deque(maxlen=_STEP_WINDOW)
        self.prev: tuple[datetime, float] | None = None  # the reading before the newest
        self.prev2: tuple[datetime, float] | None = None  # the newest reading, judged at the next


class QualityChecker:
    """Streams frames through every check (see the module docstring)."""

    def __init__(self, settings: QualitySettings | None = None) -> None:
        self.settings = settings or QualitySettings()
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._records: dict[tuple[str, str], _Cadence] = {}
        self._clock: dict[str, _Run] = {}
        self._back: dict[tuple[str, str], _Run] = {}
        self._limits: dict[tuple[str, str], tuple[float, float] | None] = {}

    # Limits ------------------------------------------------------------------------------------
    def limits_for(self, code: str, unit: str) -> tuple[float, float] | None:
        """The (low, high) limits of a channel in ``unit``, or None when none apply."""
        key = (code, unit)
        if key not in self._limits:
            self._limits[key] = self._find_limits(code, unit)
        return self._limits[key]

    def _find_limits(self, code: str, unit: str) -> tuple[float, float] | None:
        s = self.settings
        if code in s.limits:
            return s.limits[code]
        if unit in s.unit_limits:
            return s.unit_limits[unit]
        table = {**PHYSICAL_LIMITS, **s.unit_limits}
        if unit in table:
            return table[unit]
        for known, (low, high) in table.items():
            if is_convertible(known, unit):
                try:
                    return convert(low, known, unit), convert(high, known, unit)
                except ConversionError:  # pragma: no cover - is_convertible said yes
                    return None
        return None

    # Feeding -----------------------------------------------------------------------------------
    def feed(self, frame: DecodedFrame) -> list[QualityIssue]:
        """Check one frame; the issues it completes."""
        s = self.settings
        source = frame.source or "default"
        t = frame.timestamp
        out: list[QualityIssue] = []
        if s.check_clock:
            self._check_clock(source, frame, out)
        record = frame.codes[0][:2] if frame.codes else "??"
        stream = self._records.get((source, record))
        if stream is None:
            stream = self._records[(source, record)] = _Cadence()
        before = stream.last
        back = self._back.get((source, record))
        if before is not None and t < before:
            if back is None:
                back = self._back[(source, record)] = _Run(t, before.timestamp())
            else:
                back.extend(t)
            if back.count < RESYNC_AFTER:
                return (
                    out  # a stray old frame: its readings are not judged against a stream it does not follow
                )
            # The clock really went back: report it, and follow the stream from its new time.
            out.append(self._back_issue(source, record, back))
            del self._back[(source, record)]
            stream.last = t
        elif back is not None:
            out.append(self._back_issue(source, record, back))
            del self._back[(source, record)]
        timed = record.isdigit() and int(record) in s.gap_records
        gap = stream.gap(t, s.gap_factor)
        if gap is not None and timed:
            assert before is not None
            out.append(self._gap(source, "", before, t, gap, f"record {int(record)}"))
        for code, value in zip(frame.codes, frame.values, strict=True):
            if code[2:] <= "07":  # header items (well id, date, time, activity): not measurements
                continue
            self._check_channel(source, code, value, t, before if timed else None, frame, out)
        return out

    @staticmethod
    def _back_issue(source: str, record: str, run: _Run) -> QualityIssue:
        went_from = datetime.fromtimestamp(run.value or 0.0, UTC)
        detail = f"record {int(record)}: frame time went back from {went_from.isoformat()}"
        return QualityIssue(source, "", IssueKind.TIME_BACKWARDS, run.start, run.end, run.count, detail)

    def _gap(
        self, source: str, code: str, start: datetime, end: datetime, gap: tuple[float, int], what: str
    ) -> QualityIssue:
        dt, missing = gap
        return QualityIssue(source, code, IssueKind.GAP, start, end, missing, f"{what}: no data for {dt:g} s")

    def _check_clock(self, source: str, frame: DecodedFrame, out: list[QualityIssue]) -> None:
        offset = (frame.timestamp - frame.received_at).total_seconds()
        run = self._clock.get(source)
        if abs(offset) > self.settings.clock_tolerance:
            if run is None:
                self._clock[source] = _Run(frame.timestamp, offset)
            else:
                run.extend(frame.timestamp, offset)
        elif run is not None:
            out.append(self._close_clock(source, run))
            del self._clock[source]

    def _close_clock(self, source: str, run: _Run) -> QualityIssue:
        worst = max((run.low or 0.0, run.high or 0.0), key=abs)
        side = "ahead of" if worst > 0 else "behind"
        detail = f"frame time {side} receive time by up to {abs(worst):g} s"
        return QualityIssue(source, "", IssueKind.CLOCK_OFFSET, run.start, run.end, run.count, detail)

    def _check_channel(
        self,
        source: str,
        code: str,
        value: object,
        t: datetime,
        record_before: datetime | None,
        frame: DecodedFrame,
        out: list[QualityIssue],
    ) -> None:
        s = self.settings
        channel = self._channels.get((source, code))
        if channel is None:
            channel = self._channels[(source, code)] = _Channel()
        channel_before = channel.cadence.last
        gap = channel.cadence.gap(t, s.gap_factor)
        if gap is not None and record_before is not None and channel_before not in (None, record_before):
            assert channel_before is not None
            # The record went on without this channel (a record-wide gap is reported once, above).
            out.append(self._gap(source, code, channel_before, t, gap, f"{code} missing from its record"))
        if value is None:
            if channel.nulls is None:
                channel.nulls = _Run(t)
            else:
                channel.nulls.extend(t)
            return
        if channel.nulls is not None:
            out.append(self._close(source, code, IssueKind.NULL_RUN, channel.nulls, "null readings"))
            channel.nulls = None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return  # text items: only nulls and gaps apply
        x = float(value)
        unit = frame.unit(code)
        limits = self.limits_for(code, unit)
        if limits is not None and not limits[0] <= x <= limits[1]:
            if channel.out is None:
                channel.out = _Run(t, x)
            else:
                channel.out.extend(t, x)
            return  # an impossible reading is not a step or a repeat of the signal
        if channel.out is not None:
            run = channel.out
            low, high = limits if limits is not None else (float("nan"), float("nan"))
            detail = f"readings from {run.low:g} to {run.high:g} {unit}, outside [{low:g}, {high:g}] {unit}"
            out.append(
                QualityIssue(source, code, IssueKind.OUT_OF_RANGE, run.start, run.end, run.count, detail)
            )
            channel.out = None
        self._check_frozen(source, code, channel, t, x, out)
        self._check_spike(source, code, channel, t, x, unit, limits, out)

    def _check_frozen(
        self, source: str, code: str, channel: _Channel, t: datetime, x: float, out: list[QualityIssue]
    ) -> None:
        run = channel.frozen
        if run is not None and run.value == x:
            run.extend(t)
            return
        if run is not None:
            issue = self._frozen_issue(source, code, run)
            if issue is not None:
                out.append(issue)
        channel.frozen = None if x == 0 or code in self.settings.frozen_exempt else _Run(t, x)

    def _frozen_issue(self, source: str, code: str, run: _Run) -> QualityIssue | None:
        seconds = (run.end - run.start).total_seconds()
        if seconds < self.settings.frozen_seconds:
            return None
        detail = f"the same reading {run.value:g} for {seconds:g} s"
        return QualityIssue(source, code, IssueKind.FROZEN, run.start, run.end, run.count, detail)

    def _check_spike(
        self,
        source: str,
        code: str,
        channel: _Channel,
        t: datetime,
        x: float,
        unit: str,
        limits: tuple[float, float] | None,
        out: list[QualityIssue],
    ) -> None:
        before, middle = channel.prev, channel.prev2
        channel.prev, channel.prev2 = middle, (t, x)
        if middle is None:
            return
        step = abs(middle[1] - (before[1] if before is not None else middle[1]))
        if before is None or len(channel.steps) < MIN_INTERVALS:
            channel.steps.append(step)
            return
        usual = 1.4826 * median(channel.steps)
        floor = SPIKE_FLOOR * (limits[1] - limits[0]) if limits is not None else 0.0
        far = self.settings.spike_factor * max(usual, floor, 1e-9)
        a, m = before[1], middle[1]
        if abs(m - a) > far and abs(m - x) > far and abs(x - a) <= far / 2:
            detail = f"{m:g} {unit} between {a:g} and {x:g} {unit}"
            out.append(QualityIssue(source, code, IssueKind.SPIKE, middle[0], middle[0], 1, detail))
            channel.prev = before  # the spike is no neighbour of the next reading, nor a step
            channel.steps.append(abs(x - a))
            return
        channel.steps.append(step)

    @staticmethod
    def _close(source: str, code: str, kind: IssueKind, run: _Run, what: str) -> QualityIssue:
        seconds = (run.end - run.start).total_seconds()
        return QualityIssue(
            source, code, kind, run.start, run.end, run.count, f"{run.count} {what} over {seconds:g} s"
        )

    def finish(self) -> list[QualityIssue]:
        """The issues of runs still open at the end of the data."""
        out: list[QualityIssue] = []
        for source, run in self._clock.items():
            out.append(self._close_clock(source, run))
        for (source, record), run in self._back.items():
            out.append(self._back_issue(source, record, run))
        self._back.clear()
        for (source, code), channel in self._channels.items():
            if channel.nulls is not None:
                out.append(self._close(source, code, IssueKind.NULL_RUN, channel.nulls, "null readings"))
            if channel.frozen is not None and (issue := self._frozen_issue(source, code, channel.frozen)):
                out.append(issue)
            if channel.out is not None:
                run = channel.out
                detail = f"readings from {run.low:g} to {run.high:g}, outside the channel's limits"
                out.append(
                    QualityIssue(source, code, IssueKind.OUT_OF_RANGE, run.start, run.end, run.count, detail)
                )
        self._clock.clear()
        self._channels.clear()
        return out


def check_quality(
    frames: Iterable[DecodedFrame], settings: QualitySettings | None = None
) -> list[QualityIssue]:
    """Every issue of a sequence of frames, ordered by source, start time, code and kind."""
    checker = QualityChecker(settings)
    issues = [issue for frame in frames for issue in checker.feed(frame)]
    issues.extend(checker.finish())
    return sorted(issues, key=lambda i: (i.source, i.start, i.code, i.kind.value))
