"""Drilling KPIs over a classified range: time breakdown, footage and ROP, connections, trips.

:func:`compute_kpis` reads :class:`~witskit.analytics.rigstate.StateSample` rows (what
:func:`~witskit.analytics.rigstate.classify` yields) and returns a :class:`KpiReport`: the whole
range, each UTC day and each well section. Depths and speeds stay in the feed's units (ft or m).

The definitions follow the usual drilling-performance convention (IADC-style time accounting as
Pason, Corva and operators' benchmarking use it; ``docs/analytics.md`` gives the details):

* a frame's state lasts until the next frame; a hole in the data longer than ``max_gap`` counts as
  no time at all;
* on-bottom hours: rotary and slide drilling; footage: new hole made (hole depth increase) while
  drilling; on-bottom ROP: footage / on-bottom hours;
* a connection is the time between two drilling runs with exactly one slips period and no trip:
  weight-to-weight from off bottom to back on bottom, slips-to-slips from slips set to slips out;
* a trip is a run of tripping in (or out) with its slips periods between stands: tripping speed is
  the bit's travel over the trip's whole time (slips included), stands/h its stands (moves of
  at least :data:`MIN_STAND` ft) over the same time;
* flat time: every hour of the range that is not on bottom; circulating time: the circulating state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from witskit.analytics.rigstate import RigState, StateSample
from witskit.errors import UsageError

__all__ = ["MIN_STAND", "Connection", "KpiReport", "Kpis", "Section", "Trip", "compute_kpis"]

#: A trip move shorter than this (ft; 9 m in metric) is not a stand (a pick-up off bottom, a kelly).
MIN_STAND = 30.0
#: The same in metres.
MIN_STAND_M = 9.0

_DRILLING = (RigState.ROTARY_DRILLING, RigState.SLIDE_DRILLING)


@dataclass(frozen=True, slots=True)
class Section:
    """A well section: the frames whose hole depth is in ``[top, bottom)`` (feed units)."""

    name: str
    top: float
    bottom: float

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("a well section needs a name")
        if not self.top < self.bottom:
            raise UsageError(f"well section {self.name!r}: top {self.top} must be above bottom {self.bottom}")


@dataclass(frozen=True, slots=True)
class Connection:
    """One drilling connection: off bottom, slips set, slips out, back on bottom (UTC)."""

    off_bottom: datetime
    slips_set: datetime
    slips_out: datetime
    on_bottom: datetime
    hole_depth: float | None

    @property
    def slips_to_slips(self) -> float:
        """Seconds in slips."""
        return (self.slips_out - self.slips_set).total_seconds()

    @property
    def weight_to_weight(self) -> float:
        """Seconds from off bottom to back on bottom."""
        return (self.on_bottom - self.off_bottom).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times ISO 8601)."""
        return {
            "off_bottom": self.off_bottom.isoformat(),
            "slips_set": self.slips_set.isoformat(),
            "slips_out": self.slips_out.isoformat(),
            "on_bottom": self.on_bottom.isoformat(),
            "hole_depth": self.hole_depth,
            "slips_to_slips_s": round(self.slips_to_slips, 1),
            "weight_to_weight_s": round(self.weight_to_weight, 1),
        }


@dataclass(frozen=True, slots=True)
class Trip:
    """One trip in or out: its span, the bit's travel, its stands and the time moving pipe."""

    direction: str  # "in" or "out"
    start: datetime
    end: datetime
    distance: float
    stands: int
    moving_hours: float

    @property
    def hours(self) -> float:
        """The trip's hours, slips between stands included."""
        return (self.end - self.start).total_seconds() / 3600.0

    @property
    def speed(self) -> float:
        """Tripping speed: travel per hour, slips included (ft/h or m/h)."""
        return self.distance / self.hours if self.hours else 0.0

    @property
    def stands_per_hour(self) -> float:
        """Stands per hour, slips included."""
        return self.stands / self.hours if self.hours else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "direction": self.direction,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "distance": round(self.distance, 2),
            "stands": self.stands,
            "hours": round(self.hours, 4),
            "speed_per_hour": round(self.speed, 1),
            "stands_per_hour": round(self.stands_per_hour, 2),
        }


@dataclass(slots=True)
class Kpis:
    """The KPIs of one range, day or section. Hours by state, footage by drilling state."""

    hours: dict[RigState, float] = field(default_factory=dict)
    footage: dict[RigState, float] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    trips: list[Trip] = field(default_factory=list)

    @property
    def total_hours(self) -> float:
        """Hours covered by data."""
        return sum(self.hours.values())

    @property
    def rotary_hours(self) -> float:
        """On-bottom hours rotating."""
        return self.hours.get(RigState.ROTARY_DRILLING, 0.0)

    @property
    def slide_hours(self) -> float:
        """On-bottom hours sliding."""
        return self.hours.get(RigState.SLIDE_DRILLING, 0.0)

    @property
    def on_bottom_hours(self) -> float:
        """Rotary plus slide hours."""
        return self.rotary_hours + self.slide_hours

    @property
    def total_footage(self) -> float:
        """New hole made, rotary plus slide."""
        return sum(self.footage.values())

    def rop(self, state: RigState | None = None) -> float | None:
        """On-bottom ROP (per hour), of one drilling state or both; ``None`` without on-bottom time."""
        hours = self.on_bottom_hours if state is None else self.hours.get(state, 0.0)
        made = self.total_footage if state is None else self.footage.get(state, 0.0)
        return made / hours if hours > 0 else None

    @property
    def flat_hours(self) -> float:
        """Hours not on bottom."""
        return self.total_hours - self.on_bottom_hours

    @property
    def circulating_hours(self) -> float:
        """Hours circulating."""
        return self.hours.get(RigState.CIRCULATING, 0.0)

    def tripping(self, direction: str) -> dict[str, float | None]:
        """Speed (per hour) and stands per hour of all trips ``"in"`` or ``"out"`` together."""
        trips = [t for t in self.trips if t.direction == direction]
        hours = sum(t.hours for t in trips)
        distance = sum(t.distance for t in trips)
        stands = sum(t.stands for t in trips)
        return {
            "trips": len(trips),
            "hours": round(hours, 4),
            "distance": round(distance, 2),
            "stands": stands,
            "speed_per_hour": round(distance / hours, 1) if hours else None,
            "stands_per_hour": round(stands / hours, 2) if hours else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready KPIs (hours rounded to 0.1 s, depths to 0.01)."""

        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(x, n)

        s2s = [c.slips_to_slips for c in self.connections]
        w2w = [c.weight_to_weight for c in self.connections]
        return {
            "hours": {s.value: r(h) for s, h in sorted(self.hours.items()) if h},
            "total_hours": r(self.total_hours),
            "on_bottom_hours": {"rotary": r(self.rotary_hours), "slide": r(self.slide_hours)},
            "footage": {
                "rotary": r(self.footage.get(RigState.ROTARY_DRILLING, 0.0), 2),
                "slide": r(self.footage.get(RigState.SLIDE_DRILLING, 0.0), 2),
                "total": r(self.total_footage, 2),
            },
            "on_bottom_rop": {
                "total": r(self.rop(), 2),
                "rotary": r(self.rop(RigState.ROTARY_DRILLING), 2),
                "slide": r(self.rop(RigState.SLIDE_DRILLING), 2),
            },
            "flat_hours": r(self.flat_hours),
            "circulating_hours": r(self.circulating_hours),
            "connections": {
                "count": len(self.connections),
                "slips_to_slips_avg_s": r(sum(s2s) / len(s2s), 1) if s2s else None,
                "weight_to_weight_avg_s": r(sum(w2w) / len(w2w), 1) if w2w else None,
                "list": [c.to_dict() for c in self.connections],
            },
            "tripping": {
                "in": self.tripping("in"),
                "out": self.tripping("out"),
                "list": [t.to_dict() for t in self.trips],
            },
        }


@dataclass(slots=True)
class KpiReport:
    """KPIs of the whole range, of each UTC day and of each section given."""

    total: Kpis
    days: dict[date, Kpis]
    sections: dict[str, Kpis]
    metric: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "units": {"depth": "m" if self.metric else "ft", "speed": "m/h" if self.metric else "ft/h"},
            "total": self.total.to_dict(),
            "days": {d.isoformat(): k.to_dict() for d, k in sorted(self.days.items())},
            "sections": {name: k.to_dict() for name, k in self.sections.items()},
        }


@dataclass(slots=True)
class _Run:
    state: RigState
    start: datetime
    end: datetime
    bit_start: float | None
    bit_end: float | None
    hole: float | None
    after_gap: bool


def compute_kpis(
    samples: Iterable[StateSample],
    *,
    sections: Sequence[Section] = (),
    metric: bool = False,
    max_gap: float = 30.0,
) -> KpiReport:
    """The KPIs of classified frames in time order (see the module docstring for the definitions).

    ``sections`` name hole-depth intervals; ``metric`` says the depths are metres (it sets the
    stand length and the report's units); frames further apart than ``max_gap`` seconds leave a gap.
    """
    if max_gap <= 0:
        raise UsageError(f"max_gap must be positive, got {max_gap!r}")
    total = Kpis()
    days: dict[date, Kpis] = {}
    by_section: dict[str, Kpis] = {s.name: Kpis() for s in sections}
    runs: list[_Run] = []
    prev: StateSample | None = None
    gap = True
    for cur in samples:
        if prev is not None:
            dt = (cur.time - prev.time).total_seconds()
            if dt <= 0:
                continue  # out of order or repeated: counts no time
            gap = dt > max_gap
            if not gap:
                _account(prev, cur, dt, total, days, sections, by_section)
        if gap or not runs or runs[-1].state is not cur.state:
            if runs and not gap:
                runs[-1].end = cur.time
            runs.append(
                _Run(cur.state, cur.time, cur.time, cur.bit_depth, cur.bit_depth, cur.hole_depth, gap)
            )
        else:
            run = runs[-1]
            run.end = cur.time
            if cur.bit_depth is not None:
                run.bit_end = cur.bit_depth
                if run.bit_start is None:
                    run.bit_start = cur.bit_depth
        prev = cur
    stand = MIN_STAND_M if metric else MIN_STAND
    for conn in _connections(runs):
        for kpis in _groups(conn.slips_set, conn.hole_depth, total, days, sections, by_section):
            kpis.connections.append(conn)
    for trip, depth in _trips(runs, stand):
        for kpis in _groups(trip.start, depth, total, days, sections, by_section):
            kpis.trips.append(trip)
    return KpiReport(total, days, by_section, metric)


def _day(t: datetime) -> date:
    return t.astimezone(UTC).date()


def _groups(
    t: datetime,
    depth: float | None,
    total: Kpis,
    days: dict[date, Kpis],
    sections: Sequence[Section],
    by_section: dict[str, Kpis],
) -> list[Kpis]:
    out = [total, days.setdefault(_day(t), Kpis())]
    if depth is not None:
        out.extend(by_section[s.name] for s in sections if s.top <= depth < s.bottom)
    return out


def _account(
    prev: StateSample,
    cur: StateSample,
    dt: float,
    total: Kpis,
    days: dict[date, Kpis],
    sections: Sequence[Section],
    by_section: dict[str, Kpis],
) -> None:
    """Give the interval [prev, cur) to prev's state: hours, and footage when drilling."""
    state = prev.state
    made = 0.0
    if state in _DRILLING and prev.hole_depth is not None and cur.hole_depth is not None:
        made = max(0.0, cur.hole_depth - prev.hole_depth)
    # Split at UTC midnight so each day gets its own hours (footage goes to the interval's start).
    start = prev.time
    midnight = datetime.combine(_day(start) + timedelta(days=1), datetime.min.time(), UTC)
    parts = [(start, dt)]
    if cur.time > midnight:
        first = (midnight - start).total_seconds()
        parts = [(start, first), (midnight, dt - first)]
    for i, (at, seconds) in enumerate(parts):
        for kpis in _groups(at, prev.hole_depth, total, days, sections, by_section):
            kpis.hours[state] = kpis.hours.get(state, 0.0) + seconds / 3600.0
            if made and i == 0:
                kpis.footage[state] = kpis.footage.get(state, 0.0) + made


def _connections(runs: list[_Run]) -> list[Connection]:
    out: list[Connection] = []
    off: _Run | None = None  # the last drilling run
    between: list[_Run] = []
    for run in runs:
        if run.after_gap:
            off, between = None, []
        if run.state in _DRILLING:
            slips = [r for r in between if r.state is RigState.IN_SLIPS]
            tripped = any(
                r.state in (RigState.TRIPPING_IN, RigState.TRIPPING_OUT) and _travel(r) >= MIN_STAND_M
                for r in between
            )
            if off is not None and between and len(slips) == 1 and not tripped:
                s = slips[0]
                out.append(Connection(off.end, s.start, s.end, run.start, s.hole))
            off, between = run, []
        elif off is not None:
            between.append(run)
    return out


def _travel(run: _Run) -> float:
    if run.bit_start is None or run.bit_end is None:
        return 0.0
    return abs(run.bit_end - run.bit_start)


def _trips(runs: list[_Run], stand: float) -> list[tuple[Trip, float | None]]:
    out: list[tuple[Trip, float | None]] = []
    i = 0
    while i < len(runs):
        run = runs[i]
        if run.state not in (RigState.TRIPPING_IN, RigState.TRIPPING_OUT):
            i += 1
            continue
        moving = run.state
        members = [run]
        j = i + 1
        # Extend over slips periods that are followed by another move the same way.
        while j + 1 < len(runs) and runs[j].state is RigState.IN_SLIPS and runs[j + 1].state is moving:
            if runs[j].after_gap or runs[j + 1].after_gap:
                break
            members += [runs[j], runs[j + 1]]
            j += 2
        moves = [r for r in members if r.state is moving]
        distance = sum(_travel(r) for r in moves)
        stands = sum(1 for r in moves if _travel(r) >= stand)
        if stands:
            moving_h = sum((r.end - r.start).total_seconds() for r in moves) / 3600.0
            direction = "in" if moving is RigState.TRIPPING_IN else "out"
            trip = Trip(direction, members[0].start, members[-1].end, distance, stands, moving_h)
            out.append((trip, members[0].hole))
        i = j
    return out
