"""Drilling analytics routes (``data:read``): rig states, KPIs and data quality of a stored range.

Every answer is bounded: a range may span at most :data:`MAX_SPAN` (the work of classifying or
checking it, in a worker thread), rig states come back as at most ``limit`` intervals (a rig
changes state a few hundred times a day) and quality issues as at most ``limit`` issues, with a
``truncated`` flag and where to go on. At most
:data:`~witskit.service.analytics.MAX_RUNNING` analyses run at once; the others wait their turn
(up to 20 s, 16 of them at most), then answer 429.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from witskit.analytics.kpi import Section, compute_kpis
from witskit.analytics.quality import QualityChecker, QualityIssue
from witskit.analytics.rigstate import StateSample
from witskit.errors import UsageError
from witskit.security.rbac import Permission
from witskit.service.analytics import STATES, AnalyticsBusy, LiveAnalytics, StateInterval
from witskit.service.deps import AppContext, Context, guard
from witskit.storage.query import parse_time
from witskit.symbols import default_table

__all__ = ["router"]

router = APIRouter(tags=["analytics"])

#: The longest range one request classifies, measures or checks: a week of 1 Hz data (604,800
#: frames) takes seconds, not minutes; ask week by week for longer.
MAX_SPAN: Final = timedelta(days=7)
#: The range when none is given: the last day.
DEFAULT_SPAN: Final = timedelta(days=1)
#: Intervals or issues per answer by default, and at most (about 100 bytes each: 5 MB at most).
DEFAULT_LIMIT: Final = 10_000
MAX_LIMIT: Final = 50_000
#: Well sections per KPI request.
MAX_SECTIONS: Final = 20

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "Unknown source"},
    422: {"description": "Bad times, range longer than 7 days, bad section or limit"},
    429: {"description": "Too many analyses running and waiting; try again (Retry-After)"},
}
READ: Final = guard(Permission.READ_DATA, responses=_ERRORS)

SourceQ = Annotated[str, Query(min_length=1, max_length=255, description="Source (rig) name")]
StartQ = Annotated[
    str | None,
    Query(max_length=64, description="Inclusive start, ISO 8601 (naive: UTC; none: a day before end)"),
]
EndQ = Annotated[
    str | None, Query(max_length=64, description="Exclusive end, ISO 8601 (naive: UTC; none: now)")
]
LimitQ = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"At most this many rows (at most {MAX_LIMIT})")
]


class IntervalOut(BaseModel):
    """One state from ``start`` to ``end``."""

    start: datetime
    end: datetime
    state: str


class RigStateOut(BaseModel):
    """The rig states of a range, as intervals in time order.

    ``stored`` intervals come from the live classification (``witskit run``); ``computed`` ones
    were classified from the stored points now (history stored before the service classified it:
    the part of the range before the first stored interval, up to 7 days of it).
    """

    source: str
    start: datetime
    end: datetime
    states: list[str]
    intervals: list[IntervalOut]
    stored: int
    computed: int
    truncated: bool
    next_start: datetime | None


class KpiOut(BaseModel):
    """The drilling KPIs of a range (``kpis``: the report of ``witskit analyze kpi --format json``)."""

    source: str
    start: datetime
    end: datetime
    frames: int
    kpis: dict[str, Any]


class IssueOut(BaseModel):
    """One data-quality issue of one channel (``code`` empty: the whole record)."""

    code: str
    mnemonic: str
    kind: str
    start: datetime
    end: datetime
    count: int
    detail: str


class QualityOut(BaseModel):
    """The data-quality issues of a range, by start time; ``counts`` per kind (of all, truncated or not)."""

    source: str
    start: datetime
    end: datetime
    frames: int
    counts: dict[str, int]
    issues: list[IssueOut]
    truncated: bool


async def _range(
    context: AppContext, source: str, start: str | None, end: str | None
) -> tuple[datetime, datetime]:
    """The range asked for, checked: a known source, start before end, at most MAX_SPAN."""
    if "\x00" in source or source not in {s.name for s in await context.store.sources()}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {source!r}")
    hi = parse_time(end, "end") or datetime.now(UTC)
    lo = parse_time(start, "start") or hi - DEFAULT_SPAN
    if lo >= hi:
        raise UsageError(f"start ({lo.isoformat()}) must be before end ({hi.isoformat()})")
    if hi - lo > MAX_SPAN:
        raise UsageError(
            f"the range spans {(hi - lo).total_seconds() / 86400:.1f} days; at most "
            f"{MAX_SPAN.days} days per request (ask for it a week at a time)"
        )
    return lo, hi


def _analytics(context: AppContext) -> LiveAnalytics:
    if context.analytics is None:  # pragma: no cover - every Service builds one
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "analytics are not available here")
    return context.analytics


def _busy(exc: AnalyticsBusy) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "5"})


@router.get("/data/rig-state", response_model=RigStateOut, summary="Rig states of a range", **READ)
async def rig_state(
    context: Context, source: SourceQ, start: StartQ = None, end: EndQ = None, limit: LimitQ = DEFAULT_LIMIT
) -> RigStateOut:
    """What the rig was doing over ``[start, end)``, as intervals of one state each (the states of
    ``states``, defined in docs/analytics.md).

    Stored states (classified live) are returned as they are; the part of the range before them
    (history imported or stored before the service classified it) is classified from the stored
    points now. At most ``limit`` intervals: ``truncated`` then says so and ``next_start`` is
    where to ask from next.
    """
    lo, hi = await _range(context, source, start, end)
    analytics = _analytics(context)
    stored = await analytics.tables.stored_rig_states(source, lo, hi, limit)
    computed: list[StateInterval] = []
    first = stored[0].start if stored else hi
    if first > lo:
        try:
            async with analytics.running():
                computed = await analytics.computed_intervals(source, max(lo, first - MAX_SPAN), first, limit)
        except AnalyticsBusy as exc:
            raise _busy(exc) from None
    intervals = [*computed, *stored]
    truncated = len(intervals) > limit
    following = intervals[limit].start if truncated else None
    intervals = intervals[:limit]
    return RigStateOut(
        source=source,
        start=lo,
        end=hi,
        states=list(STATES),
        intervals=[IntervalOut(start=i.start, end=i.end, state=i.state) for i in intervals],
        stored=len(intervals) - min(len(computed), len(intervals)),
        computed=min(len(computed), len(intervals)),
        truncated=truncated,
        next_start=following,
    )


def _section(text: str) -> Section:
    name, sep, rest = text.rpartition(":")
    top, sep2, bottom = rest.partition("-")
    try:
        if not sep or not sep2 or not name:
            raise ValueError
        upper, lower = float(top), float(bottom)
    except ValueError:
        raise UsageError(f"section {text!r}: expected NAME:TOP-BOTTOM, e.g. '12-1/4in:1500-6200'") from None
    return Section(name, upper, lower)


@router.get("/data/kpi", response_model=KpiOut, summary="Drilling KPIs of a range", **READ)
async def kpi(
    context: Context,
    source: SourceQ,
    start: StartQ = None,
    end: EndQ = None,
    section: Annotated[
        list[str] | None,
        Query(
            max_length=200,
            description="A well section NAME:TOP-BOTTOM (hole depth, feed units); repeat, "
            f"at most {MAX_SECTIONS}",
        ),
    ] = None,
) -> KpiOut:
    """On-bottom hours, footage and ROP, connections (each listed), tripping speed, flat and
    circulating time over ``[start, end)``, per UTC day and per well section (docs/analytics.md
    defines each). The stored points of the range are classified again: KPIs need every frame's
    depths."""
    sections = [_section(s) for s in section or []]
    if len(sections) > MAX_SECTIONS:
        raise UsageError(f"at most {MAX_SECTIONS} sections per request")
    lo, hi = await _range(context, source, start, end)
    analytics = _analytics(context)
    settings = analytics.settings_for(source)
    count = [0]

    def measure(rows: Iterator[StateSample]) -> dict[str, Any]:
        def counted() -> Iterator[StateSample]:
            for row in rows:
                count[0] += 1
                yield row

        report = compute_kpis(counted(), sections=sections, metric=settings.metric, max_gap=settings.max_gap)
        return report.to_dict()

    try:
        async with analytics.running():
            data = await analytics.classify_stored(source, lo, hi, measure)
    except AnalyticsBusy as exc:
        raise _busy(exc) from None
    return KpiOut(source=source, start=lo, end=hi, frames=count[0], kpis=data)


@router.get("/data/quality", response_model=QualityOut, summary="Data-quality issues of a range", **READ)
async def quality(
    context: Context, source: SourceQ, start: StartQ = None, end: EndQ = None, limit: LimitQ = DEFAULT_LIMIT
) -> QualityOut:
    """Gaps, null runs, frozen values, spikes, out-of-range readings and clock problems of the
    stored frames of ``[start, end)`` (``witskit analyze quality``'s checks; docs/analytics.md).
    At most ``limit`` issues (the first found), by start time; ``counts`` counts every issue by kind."""
    lo, hi = await _range(context, source, start, end)
    analytics = _analytics(context)
    checker = QualityChecker()
    decoder = analytics.decoder()
    issues: list[QualityIssue] = []
    counts: dict[str, int] = {}
    frames = 0

    def take(found: list[QualityIssue]) -> None:
        for issue in found:
            counts[issue.kind.value] = counts.get(issue.kind.value, 0) + 1
            if len(issues) <= limit:
                issues.append(issue)

    try:
        async with analytics.running():
            async for page in analytics.tables.stored_frames(source, lo, hi):
                frames += len(page)
                take([i for raw in page for i in checker.feed(decoder.decode(raw))])
                await asyncio.sleep(0)  # a page is a few milliseconds of work: let others in
            take(checker.finish())
    except AnalyticsBusy as exc:
        raise _busy(exc) from None
    issues.sort(key=lambda i: (i.start, i.code, i.kind.value))
    table = default_table()
    out = []
    for i in issues[:limit]:
        sym = table.get(i.code) if i.code else None
        out.append(
            IssueOut(
                code=i.code,
                mnemonic=sym.name if sym is not None else "",
                kind=i.kind.value,
                start=i.start,
                end=i.end,
                count=i.count,
                detail=i.detail,
            )
        )
    return QualityOut(
        source=source,
        start=lo,
        end=hi,
        frames=frames,
        counts=counts,
        issues=out,
        truncated=sum(counts.values()) > limit,
    )
